//! Files made of checksummed records (`doozer_proto::record`): the data
//! directory's meta file, log segments and snapshots, and backup images.
//! The targets build them from the fuzzer's bytes one record at a time,
//! each framed with its right checksum, so that a mutation changes what a
//! record says rather than only breaking its checksum; other operations
//! damage the bytes as a crash or a bad disk would.
//!
//! Operations on a file (`op % 8`; 7 is left to the target):
//!
//! | op % 8  | what                                                        |
//! |---------|-------------------------------------------------------------|
//! | 0, 1, 2 | a record: a type (`b`, one of [`KINDS`]), then a payload of `n: u16` bytes |
//! | 3       | an image trailer with the right count and checksum of the image file records so far |
//! | 4       | `n: u8` raw bytes                                           |
//! | 5       | the byte at `i: u16` (modulo the length) xor `x: u8` (not 0) |
//! | 6       | the last `n: u8` bytes cut off                              |

use doozer_proto::record::{encode_record, kind, Records};

use crate::input::Input;

/// The record types the operations choose from: every type doozer
/// writes, and one it never does.
pub const KINDS: [u8; 12] = [
    kind::IMAGE_HEADER,
    kind::IMAGE_FILE,
    kind::IMAGE_TRAILER,
    kind::META,
    kind::SEGMENT_HEADER,
    kind::PROMISE,
    kind::VOTE,
    kind::APPLIED,
    kind::FLOOR,
    kind::CHECKPOINT,
    kind::REPLAYED,
    0xff,
];

/// One file being built.
#[derive(Debug, Clone, Default)]
pub struct FileBytes {
    /// Its bytes so far.
    pub bytes: Vec<u8>,
    /// Image file records framed so far.
    image_files: u64,
    /// The CRC-32 of their bytes, framing included (what an image trailer
    /// holds).
    image_crc: crc32fast::Hasher,
}

impl FileBytes {
    /// Applies operation `op` (`op % 8` below 7), reading its arguments.
    pub fn op(&mut self, op: u8, input: &mut Input) {
        match op % 8 {
            0..=2 => {
                let kind = *input.pick(&KINDS);
                let payload = input.long_bytes();
                self.record(kind, payload);
            }
            3 => self.trailer(),
            4 => self.bytes.extend_from_slice(input.short_bytes()),
            5 => {
                let (i, x) = (usize::from(input.u16()), input.byte().max(1));
                if !self.bytes.is_empty() {
                    let i = i % self.bytes.len();
                    self.bytes[i] ^= x;
                }
            }
            _ => {
                let n = usize::from(input.byte());
                self.bytes.truncate(self.bytes.len().saturating_sub(n));
            }
        }
    }

    /// Appends a record of type `kind`, framed and checksummed.
    pub fn record(&mut self, kind: u8, payload: &[u8]) {
        let start = self.bytes.len();
        if encode_record(&mut self.bytes, kind, payload).is_err() {
            return;
        }
        if kind == kind::IMAGE_FILE {
            self.image_files += 1;
            self.image_crc.update(&self.bytes[start..]);
        }
    }

    /// Appends an image trailer for the image file records so far.
    pub fn trailer(&mut self) {
        // message Trailer { uint64 files = 1; fixed32 checksum = 2; }
        let mut payload = vec![0x08];
        let mut n = self.image_files;
        while n >= 0x80 {
            payload.push((n as u8) | 0x80);
            n >>= 7;
        }
        payload.push(n as u8);
        payload.push(0x15);
        let crc = self.image_crc.clone().finalize();
        payload.extend_from_slice(&crc.to_le_bytes());
        self.record(kind::IMAGE_TRAILER, &payload);
    }
}

/// The operations that rebuild `bytes`, a file of whole records, record
/// by record (seeds: a mutation of one then keeps the others' checksums).
/// A trailer is rebuilt as the computed one; bytes after the last whole
/// record stay raw.
pub fn ops_of(bytes: &[u8]) -> Vec<u8> {
    let mut ops = Vec::new();
    let mut records = Records::new(bytes);
    let mut end = 0;
    while let Some(Ok(rec)) = records.next() {
        if rec.payload.len() > usize::from(u16::MAX) {
            break;
        }
        if rec.kind == kind::IMAGE_TRAILER {
            ops.push(3);
        } else {
            let k = KINDS.iter().position(|k| *k == rec.kind).unwrap_or(11);
            ops.push(0);
            ops.push(k as u8);
            ops.extend_from_slice(&(rec.payload.len() as u16).to_be_bytes());
            ops.extend_from_slice(rec.payload);
        }
        end = rec.end as usize;
    }
    for chunk in bytes[end..].chunks(255) {
        ops.push(4);
        ops.push(chunk.len() as u8);
        ops.extend_from_slice(chunk);
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_rebuilt_from_its_ops_is_the_same() {
        let mut f = FileBytes::default();
        f.record(kind::IMAGE_HEADER, b"header");
        f.record(kind::IMAGE_FILE, b"one");
        f.record(kind::IMAGE_FILE, b"two");
        f.trailer();
        f.bytes.extend_from_slice(b"torn");
        let ops = ops_of(&f.bytes);
        let mut input = Input::new(&ops);
        let mut g = FileBytes::default();
        while let Some(op) = input.next_byte() {
            g.op(op, &mut input);
        }
        assert_eq!(g.bytes, f.bytes);
    }
}
