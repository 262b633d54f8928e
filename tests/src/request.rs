//! Building requests ([`req`], [`RequestExt`]) and checking responses
//! ([`assert_ok`], [`assert_err`], ...).

use bytes::Bytes;

use crate::{ErrCode, Request, Response, Verb};

/// A request with `verb` and nothing else; add fields with the
/// [`RequestExt`] builder methods.
pub fn req(verb: Verb) -> Request {
    Request {
        verb: Some(verb as i32),
        ..Default::default()
    }
}

/// Builder-style setters for [`Request`].
pub trait RequestExt {
    /// Sets the path.
    fn path(self, p: &str) -> Self;
    /// Sets the rev.
    fn rev(self, r: i64) -> Self;
    /// Sets the rev if `Some`.
    fn rev_opt(self, r: Option<i64>) -> Self;
    /// Sets the value.
    fn value(self, v: &[u8]) -> Self;
    /// Sets the offset.
    fn offset(self, o: i32) -> Self;
    /// Sets the tag.
    fn tag(self, t: i32) -> Self;
}

impl RequestExt for Request {
    fn path(mut self, p: &str) -> Self {
        self.path = Some(p.into());
        self
    }
    fn rev(mut self, r: i64) -> Self {
        self.rev = Some(r);
        self
    }
    fn rev_opt(mut self, r: Option<i64>) -> Self {
        self.rev = r;
        self
    }
    fn value(mut self, v: &[u8]) -> Self {
        self.value = Some(Bytes::copy_from_slice(v));
        self
    }
    fn offset(mut self, o: i32) -> Self {
        self.offset = Some(o);
        self
    }
    fn tag(mut self, t: i32) -> Self {
        self.tag = Some(t);
        self
    }
}

/// The error code of a response as an [`ErrCode`] (`None` on success;
/// panics on a code that is not in the protocol).
pub fn err_of(r: &Response) -> Option<ErrCode> {
    r.err_code
        .map(|c| ErrCode::try_from(c).unwrap_or_else(|_| panic!("unknown err_code {c} in {r:?}")))
}

/// Panics unless `r` is an error with `code`.
pub fn assert_err(r: &Response, code: ErrCode) {
    assert_eq!(err_of(r), Some(code), "expected {code:?}, got {r:?}");
}

/// Panics unless `r` has no error.
pub fn assert_ok(r: &Response) {
    assert_eq!(err_of(r), None, "expected success, got {r:?}");
}

/// The value of a response as bytes (empty if absent).
pub fn value_of(r: &Response) -> Vec<u8> {
    r.value.as_ref().map(|v| v.to_vec()).unwrap_or_default()
}
