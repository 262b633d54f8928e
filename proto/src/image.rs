//! Images: a consistent copy of the whole tree at one rev
//! (docs/storage.md#images). The same format serves the snapshots of a
//! data directory (kind [`ImageKind::Snapshot`]) and backups
//! (`doozer backup`, kind [`ImageKind::Backup`]).
//!
//! An image is a sequence of [records](crate::record):
//!
//! 1. one header ([`kind::IMAGE_HEADER`]): magic, format version, kind,
//!    cluster name, rev, seqn and the CAL sets of the window;
//! 2. one record per file ([`kind::IMAGE_FILE`]): path, rev, body, in the
//!    tree's depth-first order (names sorted bytewise), each path once;
//! 3. one trailer ([`kind::IMAGE_TRAILER`]): the number of files and the
//!    CRC-32 of every file record's bytes (framing included), so an image
//!    cut short, or missing or holding extra records, is detected;
//!
//! and nothing after the trailer.
//!
//! [`ImageWriter`] streams an image out file by file; [`ImageReader`]
//! reads one back file by file, validating everything: every error names
//! the byte offset of the record it is about.
//!
//! Reference `.proto` text of the payloads:
//!
//! ```text
//! message Header {
//!   string magic = 1;             // "doozer-image"
//!   uint32 version = 2;           // IMAGE_FORMAT_VERSION
//!   ImageKind kind = 3;           // SNAPSHOT = 1, BACKUP = 2
//!   string cluster = 4;
//!   int64 rev = 5;                // the store's rev the image is as of
//!   uint64 seqn = 6;              // the consensus seqn it is as of (0 in a backup)
//!   repeated CalSetAt sets = 7;   // the CAL sets of the window (none in a backup)
//!   repeated FormerNode former = 8; // nodes whose files were deleted (none in a backup)
//! }
//! message CalSetAt { uint64 seqn = 1; repeated string ids = 2; }
//! message FormerNode { string id = 1; string addr = 2; }
//! message ImageFile { string path = 1; int64 rev = 2; bytes body = 3; }
//! message Trailer { uint64 files = 1; fixed32 checksum = 2; }
//! ```

use std::cmp::Ordering;
use std::io::{self, Read, Write};

use bytes::Bytes;
use prost::Message;

use crate::record::{encode_message, kind, OwnedRecord, RecordError, RecordReader};

/// The format version this build writes and reads. It changes when a
/// reader of the old version would misread the new format (a field's
/// meaning, a new record type that must not be skipped); adding an
/// optional field older readers may ignore does not change it.
pub const IMAGE_FORMAT_VERSION: u32 = 1;

/// The header's first field, so an image is recognised (and `strings`
/// shows what a file is).
pub const IMAGE_MAGIC: &str = "doozer-image";

/// What an image is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum ImageKind {
    /// A snapshot in a data directory: carries the seqn and CAL sets.
    Snapshot = 1,
    /// A backup (`doozer backup`): the tree and its rev only.
    Backup = 2,
}

impl ImageKind {
    /// The kind a header's number names, if any.
    // A plain number on the wire rather than a prost enumeration: prost
    // would take the first variant as the default and leave it out of the
    // encoding, so a missing kind would read as a snapshot.
    pub fn from_number(n: i32) -> Option<ImageKind> {
        match n {
            1 => Some(ImageKind::Snapshot),
            2 => Some(ImageKind::Backup),
            _ => None,
        }
    }
}

/// The header of an image: what it is a copy of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageHeader {
    /// Snapshot or backup.
    pub kind: ImageKind,
    /// The name of the cluster the tree belongs to.
    pub cluster: String,
    /// The store's rev the tree is as of (every file's rev is at most it).
    pub rev: i64,
    /// The consensus seqn the tree is as of; 0 in a backup.
    pub seqn: u64,
    /// The CAL sets of the consensus window at `seqn`, as (first seqn,
    /// sorted node ids), seqns increasing; empty in a backup.
    pub sets: Vec<(u64, Vec<String>)>,
    /// Nodes whose `/ctl/node/<id>` files were deleted (kicked, left),
    /// as (id, peer address): a CAL of the window may be one, and its
    /// datagrams are taken only from its address. Empty in a backup.
    /// Added in format version 1 as an optional field: older readers
    /// skip it.
    pub former: Vec<(String, String)>,
}

/// One file of an image.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ImageFile {
    /// The file's full path.
    #[prost(string, tag = "1")]
    pub path: String,
    /// The rev that last wrote it.
    #[prost(int64, tag = "2")]
    pub rev: i64,
    /// Its body.
    #[prost(bytes = "bytes", tag = "3")]
    pub body: Bytes,
}

/// The header record's payload.
#[derive(Clone, PartialEq, prost::Message)]
struct HeaderMsg {
    #[prost(string, tag = "1")]
    magic: String,
    #[prost(uint32, tag = "2")]
    version: u32,
    #[prost(int32, tag = "3")]
    kind: i32,
    #[prost(string, tag = "4")]
    cluster: String,
    #[prost(int64, tag = "5")]
    rev: i64,
    #[prost(uint64, tag = "6")]
    seqn: u64,
    #[prost(message, repeated, tag = "7")]
    sets: Vec<CalSetAt>,
    #[prost(message, repeated, tag = "8")]
    former: Vec<FormerNode>,
}

/// One former node of the header.
#[derive(Clone, PartialEq, prost::Message)]
struct FormerNode {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    addr: String,
}

/// One CAL set of the header.
#[derive(Clone, PartialEq, prost::Message)]
struct CalSetAt {
    #[prost(uint64, tag = "1")]
    seqn: u64,
    #[prost(string, repeated, tag = "2")]
    ids: Vec<String>,
}

/// The trailer record's payload.
#[derive(Clone, PartialEq, prost::Message)]
struct TrailerMsg {
    #[prost(uint64, tag = "1")]
    files: u64,
    #[prost(fixed32, tag = "2")]
    checksum: u32,
}

/// Why an image cannot be read. Each names a byte offset, except a
/// version this build does not read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A record is torn, damaged or unreadable.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The data does not start with an image header.
    #[error("not a doozer image: {why} at byte {offset}")]
    NotAnImage {
        /// Where the offending record starts.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// The image's format version is not the one this build reads.
    #[error(
        "image format version {found} is not supported (this doozer reads version {supported})"
    )]
    Version {
        /// The version in the image.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A record's payload does not decode.
    #[error("bad {what} record at byte {offset}: {source}")]
    Decode {
        /// Where the record starts.
        offset: u64,
        /// Which record ("header", "file", "trailer").
        what: &'static str,
        /// The decoder's complaint.
        source: prost::DecodeError,
    },
    /// The header decodes but says something impossible.
    #[error("bad image header at byte {offset}: {why}")]
    BadHeader {
        /// Where the header starts.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// A record of a type that has no place here.
    #[error("unexpected record of type {kind} at byte {offset}")]
    Unexpected {
        /// Where the record starts.
        offset: u64,
        /// Its type byte.
        kind: u8,
    },
    /// A file record is not a valid file of the image.
    #[error("bad file {path:?} at byte {offset}: {why}")]
    BadFile {
        /// Where the record starts.
        offset: u64,
        /// The path it names.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The data ends before the trailer.
    #[error("the image ends at byte {offset} without its trailer (cut short)")]
    Truncated {
        /// Where the data ends.
        offset: u64,
    },
    /// The trailer does not match the files read.
    #[error("the trailer at byte {offset} does not match the image: {why}")]
    Trailer {
        /// Where the trailer starts.
        offset: u64,
        /// What does not match.
        why: String,
    },
    /// Bytes follow the trailer.
    #[error("data after the image's trailer at byte {offset}")]
    TrailingData {
        /// Where the extra data starts.
        offset: u64,
    },
}

impl ImageError {
    /// The byte offset the error is about (0 for a version error: the
    /// header's).
    pub fn offset(&self) -> u64 {
        match self {
            ImageError::Record(e) => e.offset(),
            ImageError::Version { .. } => 0,
            ImageError::NotAnImage { offset, .. }
            | ImageError::Decode { offset, .. }
            | ImageError::BadHeader { offset, .. }
            | ImageError::Unexpected { offset, .. }
            | ImageError::BadFile { offset, .. }
            | ImageError::Truncated { offset }
            | ImageError::Trailer { offset, .. }
            | ImageError::TrailingData { offset } => *offset,
        }
    }
}

/// The order of paths in an image: depth first, the names of a directory
/// sorted bytewise, which is comparing the paths name by name.
fn path_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// What is wrong with a header, if anything.
fn header_problem(h: &ImageHeader) -> Option<String> {
    if h.rev < 0 {
        return Some(format!("negative rev {}", h.rev));
    }
    if h.kind == ImageKind::Backup && (h.seqn != 0 || !h.sets.is_empty() || !h.former.is_empty()) {
        return Some("a backup carries no seqn, no CAL sets and no former nodes".into());
    }
    if h.sets.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Some("CAL sets not in increasing seqn order".into());
    }
    if h.sets.iter().any(|(_, ids)| ids.is_empty()) {
        return Some("an empty CAL set".into());
    }
    None
}

/// What is wrong with a file that follows `prev` in an image at `rev`.
fn file_problem(path: &str, file_rev: i64, rev: i64, prev: Option<&str>) -> Option<String> {
    if !path.starts_with('/') {
        return Some("the path does not start with '/'".into());
    }
    if file_rev < 1 || file_rev > rev {
        return Some(format!("rev {file_rev} is outside 1..={rev}"));
    }
    if prev.is_some_and(|p| path_order(p, path) != Ordering::Less) {
        return Some("out of order or repeated (paths must be in depth-first order)".into());
    }
    None
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

/// Writes an image file by file to `W` (wrap a file in a `BufWriter`;
/// nothing is held in memory beyond one file).
#[derive(Debug)]
pub struct ImageWriter<W: Write> {
    w: W,
    rev: i64,
    /// One record's bytes, reused.
    buf: Vec<u8>,
    files: u64,
    /// CRC-32 of every file record so far.
    crc: crc32fast::Hasher,
    /// The last path written: the next must come after it.
    prev: Option<String>,
    bytes: u64,
}

impl<W: Write> ImageWriter<W> {
    /// Starts an image: writes the header. A header that a reader would
    /// refuse (negative rev, a backup with a seqn, ...) is `InvalidInput`.
    pub fn new(mut w: W, header: &ImageHeader) -> io::Result<ImageWriter<W>> {
        if let Some(why) = header_problem(header) {
            return Err(invalid(why));
        }
        let msg = HeaderMsg {
            magic: IMAGE_MAGIC.into(),
            version: IMAGE_FORMAT_VERSION,
            kind: header.kind as i32,
            cluster: header.cluster.clone(),
            rev: header.rev,
            seqn: header.seqn,
            sets: header
                .sets
                .iter()
                .map(|(seqn, ids)| CalSetAt {
                    seqn: *seqn,
                    ids: ids.clone(),
                })
                .collect(),
            former: header
                .former
                .iter()
                .map(|(id, addr)| FormerNode {
                    id: id.clone(),
                    addr: addr.clone(),
                })
                .collect(),
        };
        let mut buf = Vec::new();
        encode_message(&mut buf, kind::IMAGE_HEADER, &msg).map_err(|e| invalid(e.to_string()))?;
        w.write_all(&buf)?;
        Ok(ImageWriter {
            w,
            rev: header.rev,
            bytes: buf.len() as u64,
            buf,
            files: 0,
            crc: crc32fast::Hasher::new(),
            prev: None,
        })
    }

    /// Writes one file. Files must come in the tree's depth-first order
    /// (as `walk` yields them), each once, with a rev in `1..=rev` of the
    /// header; anything else is `InvalidInput` and nothing is written.
    pub fn file(&mut self, path: &str, rev: i64, body: &[u8]) -> io::Result<()> {
        if let Some(why) = file_problem(path, rev, self.rev, self.prev.as_deref()) {
            return Err(invalid(format!("file {path:?}: {why}")));
        }
        self.buf.clear();
        let msg = FileRef { path, rev, body };
        encode_message(&mut self.buf, kind::IMAGE_FILE, &msg)
            .map_err(|e| invalid(e.to_string()))?;
        self.w.write_all(&self.buf)?;
        self.crc.update(&self.buf);
        self.files += 1;
        self.bytes += self.buf.len() as u64;
        match &mut self.prev {
            Some(p) => {
                p.clear();
                p.push_str(path);
            }
            None => self.prev = Some(path.to_string()),
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Ends the image: writes the trailer and flushes. Returns the writer
    /// (to sync a file, say).
    pub fn finish(mut self) -> io::Result<W> {
        let msg = TrailerMsg {
            files: self.files,
            checksum: self.crc.clone().finalize(),
        };
        self.buf.clear();
        encode_message(&mut self.buf, kind::IMAGE_TRAILER, &msg)
            .map_err(|e| invalid(e.to_string()))?;
        self.w.write_all(&self.buf)?;
        self.w.flush()?;
        Ok(self.w)
    }
}

/// A file to encode, borrowed: encodes exactly as [`ImageFile`] does,
/// without copying the path and body first.
#[derive(Debug)]
struct FileRef<'a> {
    path: &'a str,
    rev: i64,
    body: &'a [u8],
}

impl FileRef<'_> {
    fn field_len(tag_and_len: usize, len: usize) -> usize {
        if len == 0 {
            0 // proto3: a default value is not written
        } else {
            tag_and_len + prost::encoding::encoded_len_varint(len as u64) + len
        }
    }
}

impl Message for FileRef<'_> {
    fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
        use prost::encoding::{encode_key, encode_varint, int64, WireType};
        if !self.path.is_empty() {
            encode_key(1, WireType::LengthDelimited, buf);
            encode_varint(self.path.len() as u64, buf);
            buf.put_slice(self.path.as_bytes());
        }
        if self.rev != 0 {
            int64::encode(2, &self.rev, buf);
        }
        if !self.body.is_empty() {
            encode_key(3, WireType::LengthDelimited, buf);
            encode_varint(self.body.len() as u64, buf);
            buf.put_slice(self.body);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        // Only ever encoded (ImageFile is what is decoded): skip.
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        let rev = if self.rev == 0 {
            0
        } else {
            prost::encoding::int64::encoded_len(2, &self.rev)
        };
        Self::field_len(1, self.path.len()) + rev + Self::field_len(1, self.body.len())
    }

    fn clear(&mut self) {
        self.path = "";
        self.rev = 0;
        self.body = &[];
    }
}

/// Reads an image file by file from `R` (wrap a file in a `BufReader`),
/// validating every record.
#[derive(Debug)]
pub struct ImageReader<R> {
    records: RecordReader<R>,
    rev: i64,
    files: u64,
    crc: crc32fast::Hasher,
    prev: Option<String>,
    done: bool,
}

/// Decodes a record's payload as `M`.
fn decode<M: Message + Default>(rec: &OwnedRecord, what: &'static str) -> Result<M, ImageError> {
    M::decode(rec.payload.clone()).map_err(|source| ImageError::Decode {
        offset: rec.offset,
        what,
        source,
    })
}

/// The header a header record holds, checked.
fn header_of(rec: &OwnedRecord) -> Result<ImageHeader, ImageError> {
    let not_image = |why: String| ImageError::NotAnImage {
        offset: rec.offset,
        why,
    };
    if rec.kind != kind::IMAGE_HEADER {
        return Err(not_image(format!("a record of type {}", rec.kind)));
    }
    let msg: HeaderMsg = decode(rec, "header")?;
    if msg.magic != IMAGE_MAGIC {
        return Err(not_image("no image magic in the header".into()));
    }
    if msg.version != IMAGE_FORMAT_VERSION {
        return Err(ImageError::Version {
            found: msg.version,
            supported: IMAGE_FORMAT_VERSION,
        });
    }
    let bad = |why: String| ImageError::BadHeader {
        offset: rec.offset,
        why,
    };
    let kind = ImageKind::from_number(msg.kind)
        .ok_or_else(|| bad(format!("unknown kind {}", msg.kind)))?;
    let header = ImageHeader {
        kind,
        cluster: msg.cluster,
        rev: msg.rev,
        seqn: msg.seqn,
        sets: msg.sets.into_iter().map(|s| (s.seqn, s.ids)).collect(),
        former: msg.former.into_iter().map(|f| (f.id, f.addr)).collect(),
    };
    match header_problem(&header) {
        Some(why) => Err(bad(why)),
        None => Ok(header),
    }
}

impl<R: Read> ImageReader<R> {
    /// Reads and checks the header. An unknown format version is
    /// [`ImageError::Version`]; data that is not an image at all is
    /// [`ImageError::NotAnImage`].
    pub fn open(r: R) -> Result<(ImageReader<R>, ImageHeader), ImageError> {
        let mut records = RecordReader::new(r);
        let Some(rec) = records.next_record()? else {
            return Err(ImageError::Truncated { offset: 0 });
        };
        let header = header_of(&rec)?;
        let reader = ImageReader {
            records,
            rev: header.rev,
            files: 0,
            crc: crc32fast::Hasher::new(),
            prev: None,
            done: false,
        };
        Ok((reader, header))
    }

    /// The next file; `Ok(None)` once the trailer is read and checked
    /// (and nothing follows it). A file is checked before it is returned:
    /// its path starts with `/`, its rev is in `1..=rev` of the header,
    /// and it comes after the previous file in depth-first order.
    pub fn next_file(&mut self) -> Result<Option<ImageFile>, ImageError> {
        if self.done {
            return Ok(None);
        }
        let offset = self.records.offset();
        let Some(rec) = self.records.next_record()? else {
            return Err(ImageError::Truncated { offset });
        };
        match rec.kind {
            kind::IMAGE_FILE => self.file(&rec).map(Some),
            kind::IMAGE_TRAILER => {
                self.trailer(&rec)?;
                self.done = true;
                Ok(None)
            }
            other => Err(ImageError::Unexpected {
                offset: rec.offset,
                kind: other,
            }),
        }
    }

    /// Files read so far.
    pub fn files(&self) -> u64 {
        self.files
    }

    /// The byte offset of the next record: before [`ImageReader::next_file`],
    /// where the file it returns starts (to name it in an error of the
    /// caller's own).
    pub fn offset(&self) -> u64 {
        self.records.offset()
    }

    fn file(&mut self, rec: &OwnedRecord) -> Result<ImageFile, ImageError> {
        let f: ImageFile = decode(rec, "file")?;
        if let Some(why) = file_problem(&f.path, f.rev, self.rev, self.prev.as_deref()) {
            return Err(ImageError::BadFile {
                offset: rec.offset,
                path: f.path,
                why,
            });
        }
        self.crc.update(&rec.framed_header());
        self.crc.update(&rec.payload);
        self.files += 1;
        match &mut self.prev {
            Some(p) => {
                p.clear();
                p.push_str(&f.path);
            }
            None => self.prev = Some(f.path.clone()),
        }
        Ok(f)
    }

    fn trailer(&mut self, rec: &OwnedRecord) -> Result<(), ImageError> {
        let t: TrailerMsg = decode(rec, "trailer")?;
        let mismatch = |why: String| ImageError::Trailer {
            offset: rec.offset,
            why,
        };
        if t.files != self.files {
            return Err(mismatch(format!(
                "it counts {} files, the image holds {}",
                t.files, self.files
            )));
        }
        let crc = self.crc.clone().finalize();
        if t.checksum != crc {
            return Err(mismatch(format!(
                "checksum of the files {:08x}, computed {crc:08x}",
                t.checksum
            )));
        }
        let end = self.records.offset();
        let mut extra = [0u8; 1];
        let more = loop {
            match self.records.get_mut().read(&mut extra) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(RecordError::Io {
                        offset: end,
                        source,
                    }
                    .into())
                }
            }
        };
        if more > 0 {
            return Err(ImageError::TrailingData { offset: end });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
