//! How a command fails: [`Failure`], and the exit status and message each
//! kind of failure gives.

use std::io;

use doozer::Error;

/// Why a command failed; each maps to one exit status and message.
#[derive(Debug)]
pub enum Failure {
    /// Bad command line: a hint on stderr, status 127.
    Usage(String),
    /// An error from the cluster or the connection: `Error: ...`.
    Doozer(Error),
    /// stat/find of a missing path.
    NotFound(String),
    /// Any other one-line error (`Error: ...`, status 2).
    Other(String),
    /// stdout was closed by the reader: stop quietly.
    BrokenPipe,
    /// `doozer status` found the cluster unhealthy: one line per reason,
    /// status 2.
    Unhealthy(Vec<String>),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Doozer(e)
    }
}

impl From<io::Error> for Failure {
    /// Only used for stdout writes: a closed pipe is a normal way to stop.
    fn from(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Other(format!("writing output: {e}"))
        }
    }
}

/// The exit status and stderr text of a failure.
pub fn report(f: &Failure) -> (u8, Option<String>) {
    match f {
        Failure::BrokenPipe => (0, None),
        Failure::Usage(msg) => (
            127,
            Some(format!("doozer: {msg}\nRun 'doozer -h' for usage.")),
        ),
        Failure::NotFound(path) => (2, Some(format!("No such file or directory: {path}"))),
        Failure::Doozer(e) => (
            if e.is_rev_mismatch() { 1 } else { 2 },
            Some(format!("Error: {e}")),
        ),
        Failure::Other(msg) => (2, Some(format!("Error: {msg}"))),
        Failure::Unhealthy(reasons) => (
            2,
            Some(
                reasons
                    .iter()
                    .map(|r| format!("unhealthy: {r}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use doozer::ErrCode;

    #[test]
    fn failures_map_to_exit_statuses() {
        let exit_status = |f: Failure| report(&f).0;
        let mismatch = Error::from_wire(ErrCode::RevMismatch as i32, None);
        assert_eq!(exit_status(Failure::Doozer(mismatch)), 1);
        let noent = Error::from_wire(ErrCode::Noent as i32, None);
        assert_eq!(exit_status(Failure::Doozer(noent)), 2);
        assert_eq!(exit_status(Failure::Doozer(Error::Timeout)), 2);
        assert_eq!(exit_status(Failure::NotFound("/x".into())), 2);
        assert_eq!(exit_status(Failure::Usage("x".into())), 127);
        let pipe = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(exit_status(Failure::from(pipe)), 0);
        let (_, msg) = report(&Failure::Doozer(Error::from_wire(
            ErrCode::RevMismatch as i32,
            None,
        )));
        assert_eq!(msg.as_deref(), Some("Error: rev mismatch"));
        let (_, msg) = report(&Failure::NotFound("/x".into()));
        assert_eq!(msg.as_deref(), Some("No such file or directory: /x"));
        let (_, msg) = report(&Failure::Doozer(Error::Timeout));
        assert_eq!(msg.as_deref(), Some("Error: timeout"));
        let (status, msg) = report(&Failure::Unhealthy(vec!["a".into(), "b".into()]));
        assert_eq!(status, 2);
        assert_eq!(msg.as_deref(), Some("unhealthy: a\nunhealthy: b"));
    }
}
