//! [`Pipeline`]: one connection driven by one thread, no background
//! thread, no tag bookkeeping. The caller chooses tags, buffers requests
//! with [`Pipeline::send`], writes them with [`Pipeline::flush`] and reads
//! responses (in completion order) with [`Pipeline::recv`]. This keeps many
//! requests in flight at the cost of a few syscalls, which is what the
//! benchmark needs.
//!
//! ```no_run
//! use doozer::{Pipeline, Request, Verb};
//! # fn main() -> doozer::Result<()> {
//! let mut p = Pipeline::connect("127.0.0.1:8046")?;
//! for tag in 0..10 {
//!     p.send(&Request { tag: Some(tag), verb: Some(Verb::Rev as i32), ..Default::default() });
//! }
//! p.flush()?;
//! for _ in 0..10 {
//!     let resp = p.recv()?;
//!     println!("tag {:?} rev {:?}", resp.tag, resp.rev);
//! }
//! # Ok(())
//! # }
//! ```

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use bytes::BytesMut;
use doozer_proto::{encode_frame, FrameDecoder, Request, Response};
use prost::Message;

use crate::error::{Error, Result};
use crate::tls::{Stream, TlsClient};

/// A bare pipelined connection (see the [module docs](self)).
pub struct Pipeline {
    stream: Stream,
    wbuf: BytesMut,
    rbuf: BytesMut,
    chunk: Box<[u8]>,
    decoder: FrameDecoder,
    read_timeout: Option<Duration>,
}

impl Pipeline {
    /// Connects to `addr` (`host:port`) over plain TCP.
    pub fn connect(addr: &str) -> Result<Pipeline> {
        Pipeline::connect_with(addr, None)
    }

    /// Connects to `addr` (`host:port`), over TLS when `tls` is given (the
    /// node's certificate must name the host of `addr`).
    pub fn connect_with(addr: &str, tls: Option<&TlsClient>) -> Result<Pipeline> {
        let stream = Stream::connect(addr, tls).map_err(|source| Error::Connect {
            addr: addr.to_string(),
            source,
        })?;
        Ok(Pipeline {
            stream,
            wbuf: BytesMut::with_capacity(64 * 1024),
            rbuf: BytesMut::with_capacity(64 * 1024),
            chunk: vec![0u8; 64 * 1024].into_boxed_slice(),
            decoder: FrameDecoder::default(),
            read_timeout: None,
        })
    }

    /// Buffers `req` (sent on the next [`Pipeline::flush`]). The caller
    /// sets the tag and must not reuse one still outstanding.
    pub fn send(&mut self, req: &Request) {
        encode_frame(req, &mut self.wbuf);
    }

    /// Writes every buffered request.
    pub fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf)?;
            self.stream.flush()?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// The connection and whatever has been read from it but not yet
    /// decoded, for a caller that goes on driving the connection itself
    /// (the watch benchmark follows many connections from one thread; a
    /// slave follows its CAL from the event loop). With TLS, the session
    /// may hold more decrypted bytes. Buffered requests not yet flushed
    /// are dropped.
    pub fn into_parts(self) -> (Stream, BytesMut) {
        (self.stream, self.rbuf)
    }

    /// The next response, blocking until it arrives.
    pub fn recv(&mut self) -> Result<Response> {
        self.set_timeout(None)?;
        loop {
            if let Some(r) = self.try_recv()? {
                return Ok(r);
            }
            self.fill()?;
        }
    }

    /// The next response if it has already been read off the socket;
    /// never blocks. Lets a caller handle a burst of responses, then send
    /// their successors in one write.
    pub fn try_recv(&mut self) -> Result<Option<Response>> {
        match self.decoder.decode(&mut self.rbuf) {
            Ok(Some(frame)) => Response::decode(frame)
                .map(Some)
                .map_err(|e| Error::Protocol(format!("bad response: {e}"))),
            Ok(None) => Ok(None),
            Err(e) => Err(Error::Protocol(e.to_string())),
        }
    }

    /// The next response, or `None` if none arrived within `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Response>> {
        if let Some(r) = self.try_recv()? {
            return Ok(Some(r));
        }
        // A zero read timeout means "block forever" to the OS.
        self.set_timeout(Some(timeout.max(Duration::from_micros(1))))?;
        match self.fill() {
            Ok(()) => self.try_recv(),
            Err(Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        if self.read_timeout != t {
            self.stream.set_read_timeout(t)?;
            self.read_timeout = t;
        }
        Ok(())
    }

    /// One read from the socket into the receive buffer.
    fn fill(&mut self) -> Result<()> {
        loop {
            match self.stream.read(&mut self.chunk) {
                Ok(0) => {
                    return Err(Error::ConnectionClosed(
                        "server closed the connection".into(),
                    ))
                }
                Ok(n) => {
                    self.rbuf.extend_from_slice(&self.chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }
}
