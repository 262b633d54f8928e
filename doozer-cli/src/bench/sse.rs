//! Reading one web event stream (`GET /$events/<dir>/`, Server-Sent
//! Events) as SSE mode does: the response head, then each message.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use bytes::BytesMut;
use doozer::Error;

use super::stats::ArrivalLog;

/// The most an HTTP response head may take.
const MAX_HEAD: usize = 16 * 1024;

/// The parse state of one event stream.
#[derive(Default)]
pub(super) struct Sse {
    /// True once the HTTP response head is read.
    head: bool,
    /// True once `event: ready` (the end of the listing) arrived.
    pub(super) ready: bool,
    /// The `event:` and `id:` fields of the message being read.
    event: Vec<u8>,
    id: Option<Vec<u8>>,
}

impl Sse {
    /// Consumes the response head and every complete line in `rbuf`,
    /// recording each `event: change` in `log`.
    pub(super) fn decode(
        &mut self,
        rbuf: &mut BytesMut,
        log: &mut ArrivalLog,
        last_seen: &AtomicI64,
    ) -> Result<(), Error> {
        if !self.head {
            let Some(end) = rbuf.windows(4).position(|w| w == b"\r\n\r\n") else {
                if rbuf.len() > MAX_HEAD {
                    return Err(Error::Protocol("HTTP response head too long".into()));
                }
                return Ok(());
            };
            let head = rbuf.split_to(end + 4);
            let status = head[..].split(|&b| b == b'\r').next().unwrap_or_default();
            if !(status.starts_with(b"HTTP/1.1 200 ") || status.starts_with(b"HTTP/1.0 200 ")) {
                return Err(Error::Protocol(format!(
                    "event stream answered {:?}",
                    String::from_utf8_lossy(status)
                )));
            }
            self.head = true;
        }
        while let Some(nl) = rbuf.iter().position(|&b| b == b'\n') {
            let line = rbuf.split_to(nl + 1);
            let line = &line[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                self.dispatch(log, last_seen)?;
                continue;
            }
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(c) => (&line[..c], &line[c + 1..]),
                None => (line, &b""[..]),
            };
            let value = value.strip_prefix(b" ").unwrap_or(value);
            match field {
                b"event" => self.event = value.to_vec(),
                b"id" => self.id = Some(value.to_vec()),
                _ => {} // data, retry, comments: not needed
            }
        }
        Ok(())
    }

    /// Acts on the message just ended by a blank line.
    fn dispatch(&mut self, log: &mut ArrivalLog, last_seen: &AtomicI64) -> Result<(), Error> {
        let now = Instant::now();
        let event = std::mem::take(&mut self.event);
        let rev = match self.id.take() {
            None => None,
            Some(id) => Some(
                std::str::from_utf8(&id)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| {
                        Error::Protocol(format!("bad event id {:?}", String::from_utf8_lossy(&id)))
                    })?,
            ),
        };
        match (&event[..], rev) {
            (b"change", Some(rev)) => log.arrived(rev, now),
            (b"change", None) => return Err(Error::Protocol("change event without id".into())),
            (b"ready", _) => self.ready = true,
            _ => {} // reset, file, rev, ping
        }
        if let Some(rev) = rev {
            last_seen.fetch_max(rev, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` to a fresh stream in pieces of `step` bytes.
    fn sse_feed(input: &[u8], step: usize) -> (Sse, ArrivalLog, i64, Result<(), Error>) {
        let (mut s, mut log, last) = (Sse::default(), ArrivalLog::default(), AtomicI64::new(0));
        let mut buf = BytesMut::new();
        let mut r = Ok(());
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            r = s.decode(&mut buf, &mut log, &last);
            if r.is_err() {
                break;
            }
        }
        (s, log, last.load(Ordering::Relaxed), r)
    }

    #[test]
    fn sse_stream_is_parsed_in_any_pieces() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n\
retry: 1000\n\n\
event: reset\ndata: {\"rev\": 7}\n\n\
event: file\ndata: {\"path\": \"/bench/sse/k1\", \"body\": \"a\\n\"}\n\n\
event: ready\nid: 7\ndata: {\"rev\": 7}\n\n\
event: change\nid: 8\ndata: {}\n\n\
event: ping\ndata: {}\n\n\
event: change\r\nid: 9\r\ndata: {}\r\n\r\n\
event: change\nid: 9\ndata: {}\n\n\
event: rev\nid: 12\ndata: {}\n\n\
event: change\nid: 13\n";
        for step in [1, 2, 7, input.len()] {
            let (s, log, last, r) = sse_feed(input, step);
            assert!(r.is_ok() && s.head && s.ready, "step {step}");
            let mut revs: Vec<_> = log.seen.keys().copied().collect();
            revs.sort();
            assert_eq!((revs, log.duplicates, last), (vec![8, 9], 1, 12));
        }
    }

    #[test]
    fn sse_errors_are_reported() {
        let (s, _, _, r) = sse_feed(b"HTTP/1.1 404 Not Found\r\n\r\n", 5);
        assert!(!s.ready && r.unwrap_err().to_string().contains("404"));
        let head = "HTTP/1.1 200 OK\r\n\r\n";
        let (_, _, _, r) = sse_feed(format!("{head}event: change\nid: x\n\n").as_bytes(), 3);
        assert!(r.unwrap_err().to_string().contains("bad event id"));
        let (_, _, _, r) = sse_feed(format!("{head}event: change\n\n").as_bytes(), 3);
        assert!(r.is_err());
        let (_, _, _, r) = sse_feed(&[b'x'; MAX_HEAD + 10], 1000);
        assert!(r.is_err());
    }
}
