//! Length-prefixed framing: a 4-byte big-endian length `n`, then `n` bytes.
//!
//! Decoding is two-phase (check that a whole frame is buffered, then split
//! it off), so a partial read never desynchronises the stream, and the
//! claimed length is checked against [`MAX_FRAME_LEN`] before any buffer is
//! grown for it.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The largest frame body accepted: 1 MiB of value plus room for the other
/// fields of a message.
pub const MAX_FRAME_LEN: usize = (1 << 20) + 4096;

/// Why a stream of frames cannot be read any further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix claims more than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The claimed length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
}

/// Splits complete frames off a receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            max_len: MAX_FRAME_LEN,
        }
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_len` bytes.
    pub fn with_max_len(max_len: usize) -> Self {
        FrameDecoder { max_len }
    }

    /// The next complete frame body in `buf`, removing it from `buf`;
    /// `Ok(None)` if more bytes are needed. An oversized length prefix is an
    /// error at once, before the body has arrived.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > self.max_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_len,
            });
        }
        if buf.len() < 4 + len {
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

/// Appends `msg` to `out` as one frame.
pub fn encode_frame<M: prost::Message>(msg: &M, out: &mut BytesMut) {
    let len = msg.encoded_len();
    out.reserve(4 + len);
    out.put_u32(len as u32);
    // Cannot fail: capacity was reserved above.
    let _ = msg.encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Request, Verb};

    #[test]
    fn frame_bytes_are_length_then_body() {
        let req = Request {
            tag: Some(1),
            verb: Some(Verb::Rev as i32),
            ..Default::default()
        };
        let mut out = BytesMut::new();
        encode_frame(&req, &mut out);
        assert_eq!(&out[..], &[0, 0, 0, 4, 0x08, 0x01, 0x10, 0x05]);
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let d = FrameDecoder::default();
        let mut buf = BytesMut::from(&[0u8, 0, 0][..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&[3, b'a', b'b']);
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&[b'c', 0, 0]);
        assert_eq!(d.decode(&mut buf), Ok(Some(Bytes::from_static(b"abc"))));
        assert_eq!(&buf[..], &[0, 0]);
    }

    #[test]
    fn oversized_frame_is_refused_before_its_body_arrives() {
        let d = FrameDecoder::default();
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: MAX_FRAME_LEN
            })
        );
        // nothing was reserved for the claimed size
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn frame_at_the_limit_is_accepted() {
        let d = FrameDecoder::with_max_len(8);
        let mut buf = BytesMut::new();
        buf.put_u32(8);
        buf.extend_from_slice(&[1; 8]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap().len(), 8);
        buf.put_u32(9);
        assert!(d.decode(&mut buf).is_err());
    }
}
