//! Checksummed records: the one framing of every file doozer writes
//! (docs/storage.md#records): the data directory's meta file, log
//! segments and snapshots, and backup images.
//!
//! A record is
//!
//! ```text
//! [len: u32 LE][crc: u32 LE][type: u8][payload: len - 1 bytes]
//! ```
//!
//! where `len` counts the type byte and the payload, and `crc` is the
//! CRC-32 (IEEE, as `crc32fast` computes it) of the type byte and the
//! payload. Payloads are protobuf messages; the type byte says which.
//!
//! Decoding never trusts a length before checking it: a record claiming
//! more than [`MAX_RECORD_LEN`] is an error before anything is allocated,
//! so garbage never makes a reader allocate gigabytes. Every error names
//! the byte offset of the record it is about.

use std::io::{self, Read, Write};

use bytes::Bytes;

/// Bytes before a record's type byte: the length and the checksum.
pub const RECORD_HEADER_LEN: usize = 8;

/// The largest `len` (type byte and payload) a record may claim: 64 MiB,
/// far above anything doozer writes (a file body is at most 1 MiB), and
/// low enough that a damaged length never makes a reader allocate much.
pub const MAX_RECORD_LEN: usize = 64 << 20;

/// The type bytes of every record doozer writes, in one place so two
/// kinds of record never share one: a file of one kind put where another
/// is expected is refused at its first record.
pub mod kind {
    /// Image: the header (first record of a snapshot or backup).
    pub const IMAGE_HEADER: u8 = 1;
    /// Image: one file of the tree.
    pub const IMAGE_FILE: u8 = 2;
    /// Image: the trailer (last record).
    pub const IMAGE_TRAILER: u8 = 3;
    /// Data directory: the meta file's only record.
    pub const META: u8 = 16;
    /// Log segment: the header (first record of every segment).
    pub const SEGMENT_HEADER: u8 = 32;
    /// Log: an acceptor's promise.
    pub const PROMISE: u8 = 33;
    /// Log: an acceptor's vote.
    pub const VOTE: u8 = 34;
    /// Log: a value this node applied.
    pub const APPLIED: u8 = 35;
    /// Log: a proposer's floor.
    pub const FLOOR: u8 = 36;
    /// Log: the store was replaced by a snapshot (a copy).
    pub const CHECKPOINT: u8 = 37;
    /// Log: changes this node applied as its follow stream carried them
    /// (a slave): not the bytes consensus decided.
    pub const REPLAYED: u8 = 38;
}

/// Why a record cannot be read. Each names the byte offset where the
/// record starts.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The record runs past the end of the data (a write cut short, or a
    /// damaged length).
    #[error("the record at byte {offset} runs past the end of the data")]
    Torn {
        /// Where the record starts.
        offset: u64,
    },
    /// The checksum does not match the record's bytes.
    #[error("bad checksum in the record at byte {offset}")]
    Checksum {
        /// Where the record starts.
        offset: u64,
    },
    /// The length claims more than [`MAX_RECORD_LEN`].
    #[error(
        "the record at byte {offset} claims {len} bytes, more than the limit of {MAX_RECORD_LEN}"
    )]
    TooLarge {
        /// Where the record starts.
        offset: u64,
        /// The length it claims.
        len: u64,
    },
    /// The length is 0: there is not even a type byte (zeros where a
    /// record should be).
    #[error("the record at byte {offset} is empty (length 0)")]
    Empty {
        /// Where the record starts.
        offset: u64,
    },
    /// Reading failed.
    #[error("read at byte {offset}: {source}")]
    Io {
        /// Where the record being read starts.
        offset: u64,
        /// The cause.
        source: io::Error,
    },
}

impl RecordError {
    /// The byte offset of the record the error is about.
    pub fn offset(&self) -> u64 {
        match self {
            RecordError::Torn { offset }
            | RecordError::Checksum { offset }
            | RecordError::TooLarge { offset, .. }
            | RecordError::Empty { offset }
            | RecordError::Io { offset, .. } => *offset,
        }
    }
}

/// The CRC-32 of a record's type byte and payload.
fn checksum(kind: u8, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    h.finalize()
}

/// The `len` of a record with `payload`, if within [`MAX_RECORD_LEN`].
fn record_len(payload_len: usize) -> Option<u32> {
    let len = payload_len.checked_add(1)?;
    if len > MAX_RECORD_LEN {
        return None;
    }
    u32::try_from(len).ok()
}

/// Appends one record of type `kind` with `payload` to `out`.
/// A payload over the limit is refused (`TooLarge`, offset = where it
/// would have started in `out`) and nothing is appended.
pub fn encode_record(out: &mut Vec<u8>, kind: u8, payload: &[u8]) -> Result<(), RecordError> {
    let Some(len) = record_len(payload.len()) else {
        return Err(RecordError::TooLarge {
            offset: out.len() as u64,
            len: payload.len() as u64 + 1,
        });
    };
    out.reserve(RECORD_HEADER_LEN + 1 + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(kind, payload).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends one record of type `kind` holding the encoded `msg` to `out`,
/// encoding the message in place (no intermediate buffer).
pub fn encode_message(
    out: &mut Vec<u8>,
    kind: u8,
    msg: &impl prost::Message,
) -> Result<(), RecordError> {
    let start = out.len();
    let payload_len = msg.encoded_len();
    let Some(len) = record_len(payload_len) else {
        return Err(RecordError::TooLarge {
            offset: start as u64,
            len: payload_len as u64 + 1,
        });
    };
    out.reserve(RECORD_HEADER_LEN + 1 + payload_len);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // the checksum, once the payload is there
    out.push(kind);
    msg.encode_raw(out);
    let crc = crc32fast::hash(&out[start + RECORD_HEADER_LEN..]);
    out[start + 4..start + RECORD_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Writes one record of type `kind` with `payload` to `w`.
pub fn write_record<W: Write>(w: &mut W, kind: u8, payload: &[u8]) -> io::Result<()> {
    let Some(len) = record_len(payload.len()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a record of {} bytes exceeds the limit", payload.len()),
        ));
    };
    let mut head = [0u8; RECORD_HEADER_LEN + 1];
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4..8].copy_from_slice(&checksum(kind, payload).to_le_bytes());
    head[8] = kind;
    w.write_all(&head)?;
    w.write_all(payload)
}

/// One record found in a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Where the record starts.
    pub offset: u64,
    /// Its type byte (see [`kind`]).
    pub kind: u8,
    /// Its payload.
    pub payload: &'a [u8],
    /// The offset just past it: where the next record starts.
    pub end: u64,
}

/// The length a record header at `offset` claims, checked against the
/// limit.
fn checked_len(header: &[u8; RECORD_HEADER_LEN], offset: u64) -> Result<usize, RecordError> {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len == 0 {
        return Err(RecordError::Empty { offset });
    }
    if len > MAX_RECORD_LEN {
        return Err(RecordError::TooLarge {
            offset,
            len: len as u64,
        });
    }
    Ok(len)
}

/// The record starting at `offset` in `data`; `Ok(None)` when `offset` is
/// exactly the end of `data` (a clean end). `offset` counts from the start
/// of `data`.
pub fn decode_record(data: &[u8], offset: usize) -> Result<Option<RecordRef<'_>>, RecordError> {
    let at = offset as u64;
    let rest = data.get(offset..).unwrap_or_default();
    if rest.is_empty() {
        return Ok(None);
    }
    let Some(header) = rest.first_chunk::<RECORD_HEADER_LEN>() else {
        return Err(RecordError::Torn { offset: at });
    };
    let len = checked_len(header, at)?;
    let Some(body) = rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
        return Err(RecordError::Torn { offset: at });
    };
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if crc32fast::hash(body) != crc {
        return Err(RecordError::Checksum { offset: at });
    }
    Ok(Some(RecordRef {
        offset: at,
        kind: body[0],
        payload: &body[1..],
        end: at + (RECORD_HEADER_LEN + len) as u64,
    }))
}

/// Whether a complete record with a valid checksum starts at `offset` in
/// `data` (recovery uses it to tell a torn tail from damage before it).
pub fn is_record_at(data: &[u8], offset: usize) -> bool {
    matches!(decode_record(data, offset), Ok(Some(_)))
}

/// An iterator over the records of a byte slice, from its start: yields
/// each record, or the first error and then nothing.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    data: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> Records<'a> {
    /// The records of `data`.
    pub fn new(data: &'a [u8]) -> Records<'a> {
        Records {
            data,
            offset: 0,
            failed: false,
        }
    }

    /// Where the next record starts (after an error: where the bad record
    /// starts).
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordRef<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match decode_record(self.data, self.offset) {
            Ok(Some(r)) => {
                self.offset = r.end as usize;
                Some(Ok(r))
            }
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// One record read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Where the record starts in the stream.
    pub offset: u64,
    /// Its type byte (see [`kind`]).
    pub kind: u8,
    /// Its checksum (as stored; it matched).
    pub crc: u32,
    /// Its payload.
    pub payload: Bytes,
}

impl OwnedRecord {
    /// The record's bytes as they were framed: length, checksum, type,
    /// payload (for checksums over whole records).
    pub fn framed_header(&self) -> [u8; RECORD_HEADER_LEN + 1] {
        let len = self.payload.len() as u32 + 1;
        let mut head = [0u8; RECORD_HEADER_LEN + 1];
        head[..4].copy_from_slice(&len.to_le_bytes());
        head[4..8].copy_from_slice(&self.crc.to_le_bytes());
        head[8] = self.kind;
        head
    }
}

/// Reads records one by one from a stream (wrap a file in a
/// `BufReader`), keeping count of the offset.
#[derive(Debug)]
pub struct RecordReader<R> {
    r: R,
    offset: u64,
}

/// Reads until `buf` is full or the stream ends; the number of bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl<R: Read> RecordReader<R> {
    /// A reader at offset 0 of `r`.
    pub fn new(r: R) -> RecordReader<R> {
        RecordReader { r, offset: 0 }
    }

    /// Where the next record starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The stream, to read past the records.
    pub fn into_inner(self) -> R {
        self.r
    }

    /// The stream, to look past the last record (the offset does not
    /// follow what is read through it).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.r
    }

    /// The next record; `Ok(None)` at a clean end (the stream ends where a
    /// record would start). After an error the reader's position is
    /// unspecified: stop reading.
    pub fn next_record(&mut self) -> Result<Option<OwnedRecord>, RecordError> {
        let at = self.offset;
        let io = |source| RecordError::Io { offset: at, source };
        let mut header = [0u8; RECORD_HEADER_LEN];
        match read_full(&mut self.r, &mut header).map_err(io)? {
            0 => return Ok(None),
            RECORD_HEADER_LEN => {}
            _ => return Err(RecordError::Torn { offset: at }),
        }
        let len = checked_len(&header, at)?;
        // Read through `take` rather than allocating `len` up front: a
        // damaged length at the end of a short stream allocates no more
        // than the stream holds.
        let mut body = Vec::new();
        let got = (&mut self.r)
            .take(len as u64)
            .read_to_end(&mut body)
            .map_err(io)?;
        if got < len {
            return Err(RecordError::Torn { offset: at });
        }
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if crc32fast::hash(&body) != crc {
            return Err(RecordError::Checksum { offset: at });
        }
        self.offset += (RECORD_HEADER_LEN + len) as u64;
        let kind = body[0];
        let payload = Bytes::from(body).slice(1..);
        Ok(Some(OwnedRecord {
            offset: at,
            kind,
            crc,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn record_matches_hand_computed_bytes() {
        let mut out = Vec::new();
        encode_record(&mut out, 7, b"hi").unwrap();
        // crc32(07 68 69), IEEE: computed independently with Python's zlib.crc32
        let crc = crc32fast::hash(&[7, b'h', b'i']);
        assert_eq!(crc, 0x6344_f7c4);
        #[rustfmt::skip]
        let want = vec![
            3, 0, 0, 0,             // len: type + 2 bytes
            0xc4, 0xf7, 0x44, 0x63, // crc, little endian
            7,                      // type
            b'h', b'i',             // payload
        ];
        assert_eq!(out, want);
        let r = decode_record(&out, 0).unwrap().unwrap();
        assert_eq!((r.offset, r.kind, r.payload, r.end), (0, 7, &b"hi"[..], 11));
        assert!(decode_record(&out, 11).unwrap().is_none());
    }

    #[test]
    fn message_encoding_equals_payload_encoding() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct M {
            #[prost(uint64, tag = "1")]
            a: u64,
            #[prost(string, tag = "2")]
            b: String,
        }
        let m = M {
            a: 300,
            b: "x".into(),
        };
        let mut one = vec![9u8]; // something already in the buffer
        encode_message(&mut one, 5, &m).unwrap();
        let mut two = vec![9u8];
        encode_record(&mut two, 5, &prost::Message::encode_to_vec(&m)).unwrap();
        assert_eq!(one, two);
        let mut three = vec![9u8];
        write_record(&mut three, 5, &prost::Message::encode_to_vec(&m)).unwrap();
        assert_eq!(one, three);
    }

    #[test]
    fn errors_name_the_offset_of_the_bad_record() {
        let mut out = Vec::new();
        encode_record(&mut out, 1, b"first").unwrap();
        let second = out.len();
        encode_record(&mut out, 2, b"second").unwrap();
        let mut flipped = out.clone();
        flipped[second + 10] ^= 1;
        let errs: Vec<_> = Records::new(&flipped).collect();
        assert!(errs[0].is_ok());
        assert!(
            matches!(errs[1], Err(RecordError::Checksum { offset }) if offset == second as u64)
        );
        assert_eq!(errs.len(), 2);

        let cut = &out[..out.len() - 1];
        let last = Records::new(cut).last().unwrap();
        assert!(matches!(last, Err(RecordError::Torn { offset }) if offset == second as u64));

        let mut zeros = out.clone();
        zeros.extend_from_slice(&[0; 12]);
        let last = Records::new(&zeros).last().unwrap();
        assert!(matches!(last, Err(RecordError::Empty { offset }) if offset == out.len() as u64));

        let mut huge = out.clone();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 5]);
        let last = Records::new(&huge).last().unwrap();
        assert!(matches!(
            last,
            Err(RecordError::TooLarge { offset, len }) if offset == out.len() as u64 && len == u32::MAX as u64
        ));
    }

    #[test]
    fn stream_reader_agrees_with_slice_decoder() {
        let mut out = Vec::new();
        for i in 0..5u8 {
            encode_record(&mut out, i + 1, &vec![i; i as usize * 3]).unwrap();
        }
        let mut r = RecordReader::new(&out[..]);
        let mut n = 0;
        for want in Records::new(&out) {
            let want = want.unwrap();
            let got = r.next_record().unwrap().unwrap();
            assert_eq!(got.offset, want.offset);
            assert_eq!(got.kind, want.kind);
            assert_eq!(&got.payload[..], want.payload);
            let mut framed = got.framed_header().to_vec();
            framed.extend_from_slice(&got.payload);
            assert_eq!(&framed[..], &out[want.offset as usize..want.end as usize]);
            n += 1;
        }
        assert_eq!(n, 5);
        assert!(r.next_record().unwrap().is_none());
        assert_eq!(r.offset(), out.len() as u64);
    }

    #[test]
    fn a_huge_claimed_length_allocates_nothing_before_failing() {
        // 60 MiB claimed, 3 bytes present: a torn record, not an allocation.
        let mut data = ((60u32 << 20) + 1).to_le_bytes().to_vec();
        data.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3]);
        let mut r = RecordReader::new(&data[..]);
        assert!(matches!(
            r.next_record(),
            Err(RecordError::Torn { offset: 0 })
        ));
    }

    #[test]
    fn oversized_payload_is_refused_when_encoding() {
        let big = vec![0u8; MAX_RECORD_LEN];
        let mut out = vec![1, 2];
        assert!(matches!(
            encode_record(&mut out, 1, &big),
            Err(RecordError::TooLarge { offset: 2, .. })
        ));
        assert_eq!(out, vec![1, 2]);
        assert!(write_record(&mut Vec::new(), 1, &big).is_err());
    }

    proptest! {
        #[test]
        fn any_records_round_trip(recs in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..8)) {
            let mut out = Vec::new();
            for (k, p) in &recs {
                encode_record(&mut out, *k, p).unwrap();
            }
            let got: Vec<(u8, Vec<u8>)> = Records::new(&out).map(|r| {
                let r = r.unwrap();
                (r.kind, r.payload.to_vec())
            }).collect();
            prop_assert_eq!(got, recs);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let slice_results: Vec<_> = Records::new(&data).map(|r| r.map(|r| r.end)).collect();
            let mut r = RecordReader::new(&data[..]);
            for res in slice_results {
                match (res, r.next_record()) {
                    (Ok(end), Ok(Some(_))) => prop_assert_eq!(end, r.offset()),
                    (Err(a), Err(b)) => prop_assert_eq!(a.offset(), b.offset()),
                    (a, b) => prop_assert!(false, "slice {a:?} vs stream {b:?}"),
                }
            }
        }
    }
}
