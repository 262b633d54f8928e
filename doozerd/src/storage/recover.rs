//! Reading the log back at start-up (docs/storage.md#recovery): every
//! segment's records, a torn tail cut off, damage refused, and the
//! applied changes checked for continuity.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use doozer_proto::record::{is_record_at, kind, RecordError, Records, RECORD_HEADER_LEN};

use super::log::Segment;
use super::record::{storage_format_readable, Record, SegmentHeader, STORAGE_FORMAT_VERSION};
use super::StorageError;

/// What a crash cut off the end of the log at start-up: never
/// acknowledged (it was not synced), dropped, and worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    /// The segment that was cut.
    pub file: PathBuf,
    /// Where the torn record started: the segment's new length.
    pub offset: u64,
    /// How many bytes were dropped.
    pub bytes_dropped: u64,
}

/// A record read back, with where it is (for errors).
#[derive(Debug)]
pub(super) struct Placed {
    pub record: Record,
    /// Index into the segments read.
    pub segment: usize,
    pub offset: u64,
}

/// One segment's records.
struct SegmentRead {
    records: Vec<(u64, Record)>,
    /// The length of the good part: where the next append goes.
    good: u64,
    torn: Option<Torn>,
}

/// What a record with a good checksum but the wrong content is.
fn bad(path: &Path, offset: u64, why: String) -> StorageError {
    StorageError::BadRecord {
        file: path.to_path_buf(),
        offset,
        why,
    }
}

/// Checks a segment's first record: a header of this format version,
/// naming this segment.
fn check_header(path: &Path, index: u64, rec_kind: u8, payload: Bytes) -> Result<(), StorageError> {
    if rec_kind != kind::SEGMENT_HEADER {
        return Err(bad(
            path,
            0,
            format!("a record of type {rec_kind} where the segment header should be"),
        ));
    }
    let h = SegmentHeader::decode(payload).map_err(|e| bad(path, 0, e.to_string()))?;
    if !storage_format_readable(h.version) {
        return Err(StorageError::Version {
            file: path.to_path_buf(),
            found: h.version,
            supported: STORAGE_FORMAT_VERSION,
        });
    }
    if h.index != index {
        return Err(bad(
            path,
            0,
            format!("the header says segment {:016x}", h.index),
        ));
    }
    Ok(())
}

/// The unit a disk writes whole or not at all: the smallest sector size.
/// A page of an append that never reached the disk reads back as whole
/// zero sectors (segments are preallocated with zeros).
const SECTOR: usize = 512;

/// Whether the bytes from a bad record's start `at` to `next`, where a
/// good record starts, show a page of the last append that never reached
/// the disk: a chunk of them between 512-byte sector boundaries that ends
/// at a boundary and is all zeros, at least the record's header long.
/// A record's header is never zero, and damage to a synced record (a
/// flipped bit, a bad block read back as garbage) does not zero a whole
/// sector (docs/storage.md#a-torn-tail-or-damage).
fn unwritten_sector_in(data: &[u8], at: usize, next: usize) -> bool {
    let mut start = at;
    while start < next {
        let end = (start / SECTOR + 1) * SECTOR;
        if end > next {
            // The chunk holding `next`: its sector was written.
            return false;
        }
        let chunk = &data[start..end];
        if chunk.len() > RECORD_HEADER_LEN && chunk.iter().all(|b| *b == 0) {
            return true;
        }
        start = end;
    }
    false
}

/// What to do about a bad record at the start of `at` in a segment:
/// nothing but zeros from there on is the preallocated room after the
/// last append, `Ok(None)`; in the last segment, with no complete record
/// with a good checksum anywhere after it, or with a whole zero sector
/// between it and the next good one (a multi-page append cut by a power
/// failure: its pages reach the disk in no set order), it is a tail torn
/// by a crash and `Ok(Some(Torn))`, counting the bytes up to the last
/// non-zero one; else damage, an error naming the file and offset.
fn torn_or_damaged(
    path: &Path,
    data: &[u8],
    err: RecordError,
    last: bool,
) -> Result<Option<Torn>, StorageError> {
    let at = err.offset();
    let Some(nonzero_end) = data.iter().rposition(|b| *b != 0).map(|i| i as u64 + 1) else {
        return Ok(None);
    };
    if nonzero_end <= at {
        return Ok(None);
    }
    let next_good = (at as usize + 1..data.len()).find(|o| is_record_at(data, *o));
    let damaged =
        !last || next_good.is_some_and(|next| !unwritten_sector_in(data, at as usize, next));
    if damaged {
        return Err(StorageError::Record {
            file: path.to_path_buf(),
            source: err,
        });
    }
    Ok(Some(Torn {
        file: path.to_path_buf(),
        offset: at,
        bytes_dropped: nonzero_end - at,
    }))
}

/// Reads segment `index` at `path`; `last` if no segment follows it (only
/// there can a tail be torn).
fn read_segment(path: &Path, index: u64, last: bool) -> Result<SegmentRead, StorageError> {
    let data = Bytes::from(std::fs::read(path).map_err(StorageError::io(path, "read"))?);
    let mut records = Vec::new();
    let mut torn = None;
    let mut good = 0;
    for rec in Records::new(&data) {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                torn = torn_or_damaged(path, &data, e, last)?;
                break;
            }
        };
        let payload = data.slice_ref(rec.payload);
        if rec.offset == 0 {
            check_header(path, index, rec.kind, payload)?;
        } else {
            match Record::decode(rec.kind, payload) {
                Ok(Some(r)) => records.push((rec.offset, r)),
                Ok(None) => {
                    return Err(bad(
                        path,
                        rec.offset,
                        format!("unknown record type {}", rec.kind),
                    ))
                }
                Err(e) => return Err(bad(path, rec.offset, e.to_string())),
            }
        }
        good = rec.end;
    }
    if good == 0 && !last {
        return Err(bad(path, 0, "an empty segment before the last one".into()));
    }
    Ok(SegmentRead {
        records,
        good,
        torn,
    })
}

/// Cuts `path` to `len` bytes, durably.
fn cut(path: &Path, len: u64) -> Result<(), StorageError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(StorageError::io(path, "open"))?;
    f.set_len(len).map_err(StorageError::io(path, "truncate"))?;
    f.sync_all().map_err(StorageError::io(path, "sync"))
}

/// The whole log, read back.
#[derive(Debug)]
pub(super) struct LogRead {
    /// The segments, oldest first (a torn tail already cut).
    pub segments: Vec<Segment>,
    /// Their records, in order.
    pub placed: Vec<Placed>,
    /// What was cut off the last segment.
    pub torn: Option<Torn>,
}

/// Reads every segment of the log (`found`: numbered paths, sorted),
/// cutting a torn tail off the last one. Segments must be consecutive.
pub(super) fn read_log(log_dir: &Path, found: &[(u64, PathBuf)]) -> Result<LogRead, StorageError> {
    let mut segments = Vec::with_capacity(found.len());
    let mut placed = Vec::new();
    let mut torn = None;
    for (i, (index, path)) in found.iter().enumerate() {
        if let Some(prev) = segments.last().map(|s: &Segment| s.index) {
            if *index != prev + 1 {
                return Err(StorageError::MissingSegment {
                    dir: log_dir.to_path_buf(),
                    index: prev + 1,
                });
            }
        }
        let last = i + 1 == found.len();
        let read = read_segment(path, *index, last)?;
        if let Some(t) = read.torn {
            cut(path, t.offset)?;
            torn = Some(t);
        }
        let max_seqn = read
            .records
            .iter()
            .map(|(_, r)| r.seqn())
            .max()
            .unwrap_or(0);
        placed.extend(read.records.into_iter().map(|(offset, record)| Placed {
            record,
            segment: i,
            offset,
        }));
        segments.push(Segment {
            index: *index,
            path: path.clone(),
            max_seqn,
            bytes: read.good,
        });
    }
    Ok(LogRead {
        segments,
        placed,
        torn,
    })
}

/// The records to hand back after checking continuity: with `snapshot`
/// the seqn of the newest snapshot (0 without one), the applied records
/// (Applied and Replayed, one sequence: a slave that became a CAL goes
/// from one to the other) after the newest Checkpoint must run
/// snapshot+1, snapshot+2, ... without a gap. Returned: every acceptor
/// and Checkpoint record as it is, and exactly the applied records to
/// replay (void ones, those the snapshot covers and repeats dropped).
pub(super) fn check_continuity(
    snapshot: Option<u64>,
    placed: Vec<Placed>,
    segments: &[Segment],
) -> Result<Vec<Record>, StorageError> {
    let base = snapshot.unwrap_or(0);
    let file = |p: &Placed| segments[p.segment].path.clone();
    let newest_checkpoint = placed
        .iter()
        .rposition(|p| matches!(p.record, Record::Checkpoint { .. }));
    if let Some(i) = newest_checkpoint {
        let c = placed[i].record.seqn();
        if snapshot.is_none_or(|s| s < c) {
            return Err(StorageError::MissingSnapshot {
                file: file(&placed[i]),
                offset: placed[i].offset,
                needed: c,
                newest: snapshot,
            });
        }
    }
    let first_live = newest_checkpoint.unwrap_or(0);
    let mut last = base;
    // Whether a live applied record came before: if not, one above
    // base+1 means the snapshot it follows is missing, else a gap.
    let mut seen = false;
    let mut out = Vec::with_capacity(placed.len());
    for (i, p) in placed.into_iter().enumerate() {
        let seqn = match p.record {
            Record::Applied { seqn, .. } | Record::Replayed { seqn, .. } => seqn,
            _ => {
                out.push(p.record);
                continue;
            }
        };
        if i < first_live {
            continue; // void: the store was replaced after it
        }
        let first = !seen;
        seen = true;
        if seqn <= last {
            continue; // covered by the snapshot, or a repeat
        }
        if seqn > last + 1 {
            return Err(if first {
                StorageError::MissingSnapshot {
                    file: file(&p),
                    offset: p.offset,
                    needed: seqn - 1,
                    newest: snapshot,
                }
            } else {
                StorageError::Gap {
                    file: file(&p),
                    offset: p.offset,
                    expected: last + 1,
                    found: seqn,
                }
            });
        }
        last = seqn;
        out.push(p.record);
    }
    Ok(out)
}
