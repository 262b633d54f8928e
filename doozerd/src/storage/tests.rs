//! Tests of the data directory, on real files in temporary directories.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use doozer_proto::image::{ImageError, ImageHeader, ImageKind};
use doozer_proto::record::{encode_record, kind, RecordError, Records};

use super::*;
use crate::store::{Mutation, Store};

/// A directory under the system temp dir, removed with its contents when
/// dropped (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        TempDir(std::env::temp_dir().join(format!("doozerd-storage-{name}-{pid}-{n}-{nanos}")))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn meta() -> Meta {
    Meta {
        id: "node1".into(),
        cluster: "test".into(),
    }
}

/// A new data directory in `dir`, initialised.
fn fresh(dir: &Path) -> DataDir {
    match DataDir::open(dir).unwrap() {
        Opened::Fresh(f) => f.init(&meta()).unwrap(),
        Opened::Existing(..) => panic!("{} is not fresh", dir.display()),
    }
}

/// Opens an initialised directory again.
fn reopen(dir: &Path) -> (DataDir, Recovered) {
    match DataDir::open(dir).unwrap() {
        Opened::Existing(d, r) => (d, r),
        Opened::Fresh(_) => panic!("{} is fresh", dir.display()),
    }
}

/// The error opening `dir` gives.
fn open_err(dir: &Path) -> StorageError {
    match DataDir::open(dir) {
        Err(e) => e,
        Ok(_) => panic!("{} opened", dir.display()),
    }
}

fn applied(seqn: u64) -> Record {
    Record::Applied {
        seqn,
        value: Bytes::from(format!("value of {seqn}")),
    }
}

fn applied_run(seqns: std::ops::RangeInclusive<u64>) -> Vec<Record> {
    seqns.map(applied).collect()
}

fn segment(dir: &Path, index: u64) -> PathBuf {
    dir.join("log").join(format!("{index:016x}.log"))
}

fn snapshot_file(dir: &Path, seqn: u64) -> PathBuf {
    dir.join("snap").join(format!("{seqn:016x}.snap"))
}

/// Where each record of a file starts (up to the zeros a segment is
/// preallocated with).
fn offsets(path: &Path) -> Vec<u64> {
    let data = std::fs::read(path).unwrap();
    Records::new(&data)
        .map_while(|r| r.ok().map(|r| r.offset))
        .collect()
}

/// Where a segment's records end: the zeros it was preallocated with
/// start there.
fn data_end(path: &Path) -> u64 {
    let data = std::fs::read(path).unwrap();
    let end = Records::new(&data)
        .map_while(|r| r.ok().map(|r| r.end))
        .last()
        .unwrap();
    assert!(data[end as usize..].iter().all(|b| *b == 0));
    end
}

fn flip(path: &Path, at: u64) {
    let mut data = std::fs::read(path).unwrap();
    data[at as usize] ^= 0x40;
    std::fs::write(path, data).unwrap();
}

/// A store holding `files` files of `body_len` bytes, at rev `files`.
fn store_with(files: usize, body_len: usize) -> Store {
    let mut store = Store::new(1);
    for i in 0..files {
        let m = Mutation::Set {
            path: format!("/d{}/f{i}", i % 10),
            rev: -1,
            body: Bytes::from(vec![b'a' + (i % 26) as u8; body_len]),
        };
        store.apply(i as i64 + 1, &m);
    }
    store
}

fn header(seqn: u64, rev: i64) -> ImageHeader {
    ImageHeader {
        kind: ImageKind::Snapshot,
        cluster: "test".into(),
        rev,
        seqn,
        sets: vec![(1, vec!["node1".into()])],
        former: Vec::new(),
    }
}

/// Waits for the snapshot being written.
fn wait_snapshot(d: &mut DataDir) -> u64 {
    wait_snapshot_result(d).unwrap()
}

/// Waits (at most 60 s) for the snapshot being written: its result.
fn wait_snapshot_result(d: &mut DataDir) -> Result<u64, StorageError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = d.poll_snapshot() {
            return r;
        }
        assert!(Instant::now() < deadline, "snapshot never finished");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn appended_records_come_back_in_order() {
    let t = TempDir::new("round-trip");
    let mut want = vec![
        Record::Promise {
            seqn: 1,
            round: 3,
            cal: 0,
        },
        Record::Vote {
            seqn: 1,
            round: 3,
            cal: 0,
            value: Bytes::from_static(b"v"),
        },
        applied(1),
        Record::Floor { seqn: 51 },
    ];
    {
        let mut d = fresh(t.path());
        d.append(&want[..2]).unwrap();
        d.append(&want[2..]).unwrap();
        d.append(&[]).unwrap();
    }
    let (mut d, r) = reopen(t.path());
    assert_eq!(r.meta, meta());
    assert_eq!(d.meta(), &meta());
    assert!(r.snapshot.is_none());
    assert!(r.torn.is_none());
    assert_eq!(r.records, want);
    d.append(&[applied(2)]).unwrap();
    drop(d);
    want.push(applied(2));
    assert_eq!(reopen(t.path()).1.records, want);
}

#[test]
fn an_initialised_directory_without_records_is_existing() {
    let t = TempDir::new("empty");
    drop(fresh(t.path()));
    let (_, r) = reopen(t.path());
    assert!(r.records.is_empty());
    assert!(r.snapshot.is_none());
}

#[test]
fn a_second_open_finds_the_directory_locked() {
    let t = TempDir::new("lock");
    let _d = fresh(t.path());
    let err = open_err(t.path());
    let pid = std::process::id();
    assert!(
        matches!(err, StorageError::Locked { pid: Some(p), .. } if p == pid),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&t.path().display().to_string()), "{msg}");
    assert!(msg.contains(&format!("pid {pid}")), "{msg}");
    drop(_d);
    reopen(t.path());
}

#[test]
fn a_file_where_the_directory_should_be_is_refused_as_not_a_directory() {
    let t = TempDir::new("not-dir");
    std::fs::create_dir_all(t.path()).unwrap();
    let file = t.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let msg = open_err(&file).to_string();
    assert!(
        msg.contains(&file.display().to_string()) && msg.contains("Not a directory"),
        "{msg}"
    );
}

#[test]
fn garbage_after_the_last_record_is_cut() {
    let t = TempDir::new("garbage");
    let mut d = fresh(t.path());
    d.append(&applied_run(1..=3)).unwrap();
    drop(d);
    let seg = segment(t.path(), 1);
    let end = data_end(&seg);
    let len = std::fs::metadata(&seg).unwrap().len();
    // Right after the last record, and at the end of the file.
    let mut data = std::fs::read(&seg).unwrap();
    data[end as usize..end as usize + 37].fill(0xab);
    data.extend_from_slice(&[0xcd; 5]);
    std::fs::write(&seg, data).unwrap();

    let (mut d, r) = reopen(t.path());
    let torn = r.torn.unwrap();
    assert_eq!(
        (torn.file, torn.offset, torn.bytes_dropped),
        (seg.clone(), end, len + 5 - end)
    );
    // Cut there, then preallocated again: zeros after the records.
    assert_eq!(data_end(&seg), end);
    assert_eq!(r.records, applied_run(1..=3));
    d.append(&[applied(4)]).unwrap();
    drop(d);
    let (_, r) = reopen(t.path());
    assert!(r.torn.is_none());
    assert_eq!(r.records, applied_run(1..=4));
}

#[test]
fn zeros_after_the_last_record_are_room_not_a_torn_tail() {
    // A segment is preallocated with zeros; a file system may also leave
    // zeros after a crash (the length grew, the data did not arrive).
    let t = TempDir::new("zeros");
    let mut d = fresh(t.path());
    d.append(&applied_run(1..=2)).unwrap();
    drop(d);
    let seg = segment(t.path(), 1);
    let end = data_end(&seg);
    assert!(std::fs::metadata(&seg).unwrap().len() >= SEGMENT_BYTES);
    let mut data = std::fs::read(&seg).unwrap();
    data.extend_from_slice(&[0; 4096]);
    std::fs::write(&seg, data).unwrap();
    let (mut d, r) = reopen(t.path());
    assert!(r.torn.is_none());
    assert_eq!(r.records, applied_run(1..=2));
    // The next append goes right after the last record.
    d.append(&[applied(3)]).unwrap();
    drop(d);
    assert!(data_end(&seg) > end);
    assert_eq!(reopen(t.path()).1.records, applied_run(1..=3));
}

#[test]
fn a_record_cut_in_the_middle_is_cut_off() {
    let t = TempDir::new("cut");
    let mut d = fresh(t.path());
    d.append(&applied_run(1..=3)).unwrap();
    drop(d);
    let seg = segment(t.path(), 1);
    let end = data_end(&seg);
    let last = *offsets(&seg).last().unwrap();
    // Its last 5 bytes never arrived: zeros, as preallocated.
    let mut data = std::fs::read(&seg).unwrap();
    data[end as usize - 5..end as usize].fill(0);
    // Dropped: up to the last non-zero byte of the cut record.
    let nonzero_end = data[..end as usize].iter().rposition(|b| *b != 0).unwrap() as u64 + 1;
    assert!(nonzero_end > last);
    std::fs::write(&seg, data).unwrap();
    let (_, r) = reopen(t.path());
    let torn = r.torn.unwrap();
    assert_eq!(
        (torn.offset, torn.bytes_dropped),
        (last, nonzero_end - last)
    );
    assert_eq!(r.records, applied_run(1..=2));
}

/// An Applied record whose value is `len` bytes: several sectors.
fn applied_big(seqn: u64, len: usize) -> Record {
    Record::Applied {
        seqn,
        value: Bytes::from(vec![b'v'; len]),
    }
}

/// docs/storage.md#a-torn-tail-or-damage: a power failure in one
/// multi-page append may leave a later page of it on disk without an
/// earlier one. A whole zero sector in the first bad record, or zeros from
/// its start to a sector boundary, with good records after it, is such an
/// append: cut off from the bad record, everything before it kept.
#[test]
fn a_multi_page_append_missing_a_page_is_cut_off() {
    for zero_the_start in [false, true] {
        let t = TempDir::new("torn-pages");
        let mut d = fresh(t.path());
        d.append(&applied_run(1..=2)).unwrap();
        d.append(&[
            applied_big(3, 3_000),
            applied_big(4, 3_000),
            applied_big(5, 3_000),
        ])
        .unwrap();
        drop(d);
        let seg = segment(t.path(), 1);
        let at = offsets(&seg)[3]; // [0] is the header; seqn 3's record
        let mut data = std::fs::read(&seg).unwrap();
        let boundary = (at as usize / 512 + 1) * 512;
        if zero_the_start {
            // The append's first sector lost: zeros from the record's start.
            assert!(boundary - at as usize >= 9);
            data[at as usize..boundary].fill(0);
        } else {
            // A sector inside the record lost.
            data[boundary..boundary + 512].fill(0);
        }
        let nonzero_end = data.iter().rposition(|b| *b != 0).unwrap() as u64 + 1;
        std::fs::write(&seg, data).unwrap();

        let (mut d, r) = reopen(t.path());
        let torn = r.torn.expect("cut off");
        assert_eq!(
            (torn.file, torn.offset, torn.bytes_dropped),
            (seg.clone(), at, nonzero_end - at)
        );
        assert_eq!(r.records, applied_run(1..=2));
        d.append(&[applied(3)]).unwrap();
        drop(d);
        assert_eq!(reopen(t.path()).1.records, applied_run(1..=3));
    }
}

/// Zeros shorter than a record's header before a sector boundary (its
/// length field), and zeros that do not fill a sector, followed by good
/// records: damage, refused.
#[test]
fn a_few_zeros_in_an_earlier_record_are_damage_not_a_lost_page() {
    // Seqn 3's record placed 4 bytes before a sector boundary: the size of
    // seqn 2's record grows byte for byte with its value (200 to 711
    // bytes: the same length of varints).
    let size_of_2 = |len: usize| {
        let t = TempDir::new("sizes");
        let mut d = fresh(t.path());
        d.append(&[applied(1), applied_big(2, len), applied(3)])
            .unwrap();
        drop(d);
        let o = offsets(&segment(t.path(), 1));
        (o[2], o[3] - o[2])
    };
    let (at2, base) = size_of_2(200);
    let want = (at2 + base) / 512 * 512 + 512 + 508;
    let len = 200 + ((want - at2 - base) % 512) as usize;
    let t = TempDir::new("few-zeros");
    let mut d = fresh(t.path());
    d.append(&[applied(1), applied_big(2, len)]).unwrap();
    d.append(&[applied_big(3, 3_000), applied_big(4, 3_000)])
        .unwrap();
    drop(d);
    let seg = segment(t.path(), 1);
    let at = offsets(&seg)[3];
    assert_eq!(at % 512, 508);
    let mut data = std::fs::read(&seg).unwrap();
    data[at as usize..at as usize + 4].fill(0);
    let next = at as usize + 4;
    data[next + 6..next + 506].fill(0);
    std::fs::write(&seg, data).unwrap();
    let err = open_err(t.path());
    assert!(
        matches!(&err, StorageError::Record { file, source } if *file == seg && source.offset() == at),
        "{err}"
    );
}

#[test]
fn a_torn_segment_header_is_rewritten() {
    let t = TempDir::new("torn-header");
    drop(fresh(t.path()));
    let seg = segment(t.path(), 1);
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(3).unwrap();
    drop(f);
    // The header's length field, little-endian: its high bytes are zeros.
    let head = std::fs::read(&seg).unwrap();
    let nonzero = head.iter().rposition(|b| *b != 0).unwrap() as u64 + 1;
    let (mut d, r) = reopen(t.path());
    assert_eq!(r.torn.unwrap().bytes_dropped, nonzero);
    d.append(&[applied(1)]).unwrap();
    drop(d);
    assert_eq!(reopen(t.path()).1.records, vec![applied(1)]);
}

#[test]
fn a_flipped_byte_in_an_earlier_record_stops_start_up() {
    let t = TempDir::new("flip-log");
    let mut d = fresh(t.path());
    for s in 1..=3 {
        d.append(&[applied(s)]).unwrap();
    }
    drop(d);
    let seg = segment(t.path(), 1);
    let second = offsets(&seg)[2]; // [0] is the header
    flip(&seg, second + 12);
    let err = open_err(t.path());
    assert!(
        matches!(&err, StorageError::Record { file, source: RecordError::Checksum { offset } }
            if *file == seg && *offset == second),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&seg.display().to_string()) && msg.contains(&format!("byte {second}")),
        "{msg}"
    );
}

#[test]
fn a_damaged_length_in_an_earlier_record_stops_start_up() {
    // A length pointing past the end looks torn, but good records follow.
    let t = TempDir::new("flip-len");
    let mut d = fresh(t.path());
    d.append(&applied_run(1..=3)).unwrap();
    drop(d);
    let seg = segment(t.path(), 1);
    let second = offsets(&seg)[2];
    flip(&seg, second + 2);
    assert!(matches!(open_err(t.path()), StorageError::Record { .. }));
}

#[test]
fn damage_in_a_segment_before_the_last_stops_start_up() {
    let t = TempDir::new("flip-old-segment");
    let mut d = fresh(t.path());
    let body = Bytes::from(vec![7u8; 100_000]);
    for s in 1..=12 {
        d.append(&[Record::Applied {
            seqn: s,
            value: body.clone(),
        }])
        .unwrap();
    }
    assert!(d.usage().segments >= 2);
    drop(d);
    let seg = segment(t.path(), 1);
    // The last record of segment 1, damaged in its last byte: a torn
    // tail, had it been the last segment.
    flip(&seg, data_end(&seg) - 1);
    let err = open_err(t.path());
    assert!(
        matches!(&err, StorageError::Record { file, .. } if *file == seg),
        "{err}"
    );
}

#[test]
fn a_flipped_byte_in_the_snapshot_stops_start_up() {
    let t = TempDir::new("flip-snap");
    let mut d = fresh(t.path());
    d.append(&applied_run(1..=5)).unwrap();
    let store = store_with(20, 10);
    assert!(d.start_snapshot(header(5, store.rev()), store.head().clone()));
    assert_eq!(wait_snapshot(&mut d), 5);
    drop(d);
    let snap = snapshot_file(t.path(), 5);
    let at = std::fs::metadata(&snap).unwrap().len() / 2;
    flip(&snap, at);
    let err = open_err(t.path());
    assert!(
        matches!(&err, StorageError::Image { file, source } if *file == snap && source.offset() <= at),
        "{err}"
    );
}

#[test]
fn a_missing_snapshot_stops_start_up() {
    let t = TempDir::new("missing-snap");
    let mut d = fresh(t.path());
    let store = store_with(3, 10);
    d.checkpoint(header(100, store.rev()), store.head(), &[])
        .unwrap();
    d.append(&applied_run(101..=102)).unwrap();
    drop(d);
    std::fs::remove_file(snapshot_file(t.path(), 100)).unwrap();
    let err = open_err(t.path());
    assert!(
        matches!(
            err,
            StorageError::MissingSnapshot {
                needed: 100,
                newest: None,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_gap_in_the_applied_changes_stops_start_up() {
    let t = TempDir::new("gap");
    let mut d = fresh(t.path());
    d.append(&[applied(1), applied(2), applied(2), applied(4)])
        .unwrap();
    drop(d);
    let seg = segment(t.path(), 1);
    let fourth = offsets(&seg)[4];
    let err = open_err(t.path());
    assert!(
        matches!(&err, StorageError::Gap { file, offset, expected: 3, found: 4 } if *file == seg && *offset == fourth),
        "{err}"
    );
}

fn replayed(seqn: u64) -> Record {
    Record::Replayed {
        seqn,
        value: Bytes::from(format!("changes of {seqn}")),
    }
}

#[test]
fn replayed_and_applied_changes_are_one_sequence() {
    // A slave replays its stream, then is promoted and applies decided
    // values: one run of seqns, each kind kept as written.
    let t = TempDir::new("replayed");
    let mut d = fresh(t.path());
    d.append(&[replayed(1), replayed(2), applied(2), applied(3)])
        .unwrap();
    d.append(&[Record::Floor { seqn: 9 }, replayed(4)]).unwrap();
    drop(d);
    let (mut d, r) = reopen(t.path());
    assert_eq!(
        r.records,
        vec![
            replayed(1),
            replayed(2),
            applied(3),
            Record::Floor { seqn: 9 },
            replayed(4)
        ]
    );
    // A gap is a gap whichever kind is on either side of it.
    d.append(&[replayed(6)]).unwrap();
    drop(d);
    let err = open_err(t.path());
    assert!(
        matches!(
            err,
            StorageError::Gap {
                expected: 5,
                found: 6,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn replayed_records_before_a_checkpoint_are_void() {
    let t = TempDir::new("replayed-void");
    let mut d = fresh(t.path());
    d.append(&[replayed(1), replayed(2)]).unwrap();
    let copy = store_with(2, 1);
    let seg1 = std::fs::read(segment(t.path(), 1)).unwrap();
    d.checkpoint(header(50, copy.rev()), copy.head(), &[])
        .unwrap();
    d.append(&[replayed(51), applied(52)]).unwrap();
    drop(d);
    std::fs::write(segment(t.path(), 1), seg1).unwrap(); // as if never deleted
    let (_, r) = reopen(t.path());
    assert_eq!(
        r.records,
        vec![Record::Checkpoint { seqn: 50 }, replayed(51), applied(52)]
    );
}

#[test]
fn applied_changes_starting_late_need_a_snapshot() {
    let t = TempDir::new("late");
    let mut d = fresh(t.path());
    d.append(&applied_run(5..=6)).unwrap();
    drop(d);
    let err = open_err(t.path());
    assert!(
        matches!(
            err,
            StorageError::MissingSnapshot {
                needed: 4,
                newest: None,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_unknown_format_version_is_refused() {
    let t = TempDir::new("version");
    drop(fresh(t.path()));
    // Meta of version 3: version 3, id "n".
    let mut meta3 = Vec::new();
    encode_record(&mut meta3, kind::META, &[0x08, 3, 0x12, 1, b'n']).unwrap();
    std::fs::write(t.path().join("meta"), &meta3).unwrap();
    let err = open_err(t.path());
    assert!(
        matches!(
            err,
            StorageError::Version {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("version 3") && msg.contains("versions 1 to 2"),
        "{msg}"
    );

    // A segment of version 3.
    let t = TempDir::new("version-seg");
    drop(fresh(t.path()));
    let mut seg3 = Vec::new();
    encode_record(&mut seg3, kind::SEGMENT_HEADER, &[0x08, 3, 0x10, 1]).unwrap();
    std::fs::write(segment(t.path(), 1), &seg3).unwrap();
    assert!(matches!(
        open_err(t.path()),
        StorageError::Version { found: 3, .. }
    ));
}

#[test]
fn a_version_1_directory_is_read_and_goes_on_in_version_2() {
    // Version 1 wrote no zeros after a segment's last record.
    let t = TempDir::new("version-1");
    let mut d = fresh(t.path());
    d.append(&applied_run(1..=3)).unwrap();
    drop(d);
    let mut meta1 = Vec::new();
    encode_record(&mut meta1, kind::META, &[0x08, 1, 0x12, 1, b'n']).unwrap();
    std::fs::write(t.path().join("meta"), &meta1).unwrap();
    let seg = segment(t.path(), 1);
    let records = offsets(&seg);
    let mut v1 = Vec::new();
    encode_record(&mut v1, kind::SEGMENT_HEADER, &[0x08, 1, 0x10, 1]).unwrap();
    let data = std::fs::read(&seg).unwrap();
    v1.extend_from_slice(&data[records[1] as usize..data_end(&seg) as usize]);
    std::fs::write(&seg, &v1).unwrap();

    let (mut d, r) = reopen(t.path());
    assert!(r.torn.is_none());
    assert_eq!(r.records, applied_run(1..=3));
    // Taken up where it ended, preallocated again.
    assert!(std::fs::metadata(&seg).unwrap().len() >= SEGMENT_BYTES);
    d.append(&[applied(4)]).unwrap();
    drop(d);
    assert_eq!(reopen(t.path()).1.records, applied_run(1..=4));
}

#[test]
fn a_log_without_meta_is_refused_and_an_empty_dir_is_fresh() {
    let t = TempDir::new("no-meta");
    assert!(matches!(DataDir::open(t.path()).unwrap(), Opened::Fresh(_)));
    let mut d = fresh(t.path());
    d.append(&[applied(1)]).unwrap();
    drop(d);
    std::fs::remove_file(t.path().join("meta")).unwrap();
    assert!(matches!(
        open_err(t.path()),
        StorageError::MissingMeta { .. }
    ));
}

#[test]
fn a_failed_write_leaves_no_garbage_once_retried() {
    let t = TempDir::new("enospc");
    let mut d = fresh(t.path());
    d.append(&[applied(1)]).unwrap();
    d.inject_fault(Fault::WriteAfter(10));
    let batch = applied_run(2..=4);
    let err = d.append(&batch).unwrap_err();
    assert!(matches!(err, StorageError::Io { op: "write", .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("disk: write ") && msg.contains("No space left on device"),
        "{msg}"
    );
    d.append(&batch).unwrap();
    d.append(&[applied(5)]).unwrap();
    drop(d);
    let (_, r) = reopen(t.path());
    assert!(r.torn.is_none());
    assert_eq!(r.records, applied_run(1..=5));
}

#[test]
fn a_failed_sync_is_written_again_and_kept_once() {
    let t = TempDir::new("eio");
    let mut d = fresh(t.path());
    d.inject_fault(Fault::Sync);
    let err = d.append(&applied_run(1..=2)).unwrap_err();
    assert!(matches!(err, StorageError::Io { op: "sync", .. }), "{err}");
    d.append(&applied_run(1..=2)).unwrap();
    drop(d);
    let (_, r) = reopen(t.path());
    assert_eq!(r.records, applied_run(1..=2));
    // Each record once on disk, not only once after recovery's de-duplication.
    assert_eq!(offsets(&segment(t.path(), 1)).len(), 3);
}

#[test]
fn a_failed_write_never_retried_is_a_torn_tail() {
    let t = TempDir::new("enospc-crash");
    let mut d = fresh(t.path());
    d.append(&[applied(1)]).unwrap();
    d.inject_fault(Fault::WriteAfter(10));
    assert!(d.append(&applied_run(2..=3)).is_err());
    drop(d); // the process dies here
    let (_, r) = reopen(t.path());
    assert_eq!(r.torn.unwrap().bytes_dropped, 10);
    assert_eq!(r.records, vec![applied(1)]);
}

/// Appends `n` Applied records of `value_len` bytes from `from`, one
/// append each, with a promise for a seqn ahead every tenth.
fn append_applied(d: &mut DataDir, from: u64, n: u64, value_len: usize) {
    for s in from..from + n {
        let mut batch = vec![Record::Applied {
            seqn: s,
            value: Bytes::from(vec![(s % 251) as u8; value_len]),
        }];
        if s % 10 == 0 {
            batch.push(Record::Promise {
                seqn: s + 5,
                round: 1,
                cal: 0,
            });
        }
        d.append(&batch).unwrap();
    }
}

#[test]
fn rollover_and_snapshots_keep_every_record_after_the_snapshot() {
    let t = TempDir::new("rollover");
    let mut d = fresh(t.path());
    append_applied(&mut d, 1, 100, 30_000); // about 3 MiB: 3 or more segments
    let before = d.usage().segments;
    assert!(before >= 3, "{before} segments");
    drop(d);
    let (mut d, r) = reopen(t.path());
    assert_eq!(
        r.records
            .iter()
            .filter(|r| matches!(r, Record::Applied { .. }))
            .count(),
        100
    );

    let store = store_with(10, 10);
    assert!(d.start_snapshot(header(70, store.rev()), store.head().clone()));
    assert!(
        !d.start_snapshot(header(70, store.rev()), store.head().clone()),
        "one at a time"
    );
    assert_eq!(wait_snapshot(&mut d), 70);
    assert!(d.usage().segments < before, "old segments deleted");
    assert_eq!(d.usage().snapshots, 1);
    append_applied(&mut d, 101, 5, 10);
    drop(d);

    let (_, r) = reopen(t.path());
    assert_eq!(r.snapshot.as_ref().unwrap().0.seqn, 70);
    assert_eq!(r.snapshot.as_ref().unwrap().1.len(), 10);
    let applied: Vec<u64> = r
        .records
        .iter()
        .filter(|r| matches!(r, Record::Applied { .. }))
        .map(Record::seqn)
        .collect();
    assert_eq!(applied, (71..=105).collect::<Vec<_>>());
    for s in (70..=100).step_by(10) {
        let p = Record::Promise {
            seqn: s + 5,
            round: 1,
            cal: 0,
        };
        assert!(r.records.contains(&p), "promise for {} kept", s + 5);
    }

    // The snapshot gone, the log's applied changes start after a hole.
    std::fs::remove_file(snapshot_file(t.path(), 70)).unwrap();
    let err = open_err(t.path());
    assert!(matches!(err, StorageError::MissingSnapshot { .. }), "{err}");
}

/// Waits (at most 60 s) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The `.tmp` files in DIR/log.
fn log_leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect();
    found.sort();
    found
}

#[test]
fn a_roll_renames_the_spare_made_ahead_and_a_left_spare_is_removed_at_start() {
    use std::os::unix::fs::MetadataExt;
    let t = TempDir::new("spare");
    let mut d = fresh(t.path());
    // Segment 2 is made ahead, under a temporary name, on a helper thread.
    let spare = segment(t.path(), 2).with_extension("tmp");
    wait_until("the spare is made", || {
        std::fs::metadata(&spare).is_ok_and(|m| m.len() >= SEGMENT_BYTES)
    });
    let ino = std::fs::metadata(&spare).unwrap().ino();
    // Nine 30,000-byte appends fill segment 1; the tenth rolls over.
    append_applied(&mut d, 1, 10, 30_000);
    assert_eq!(d.usage().segments, 2);
    assert_eq!(
        std::fs::metadata(segment(t.path(), 2)).unwrap().ino(),
        ino,
        "segment 2 is the spare, renamed"
    );
    drop(d);
    // The spare for segment 3 went with the directory; one a crash left
    // behind is removed at the next start, and read by nobody.
    assert_eq!(log_leftovers(t.path()), Vec::<PathBuf>::new());
    let left = segment(t.path(), 3).with_extension("tmp");
    std::fs::write(&left, b"a spare cut short by a crash").unwrap();
    let (_, r) = reopen(t.path());
    let applied: Vec<u64> = (r.records.iter())
        .filter(|r| matches!(r, Record::Applied { .. }))
        .map(Record::seqn)
        .collect();
    assert_eq!(applied, (1..=10).collect::<Vec<_>>());
    assert!(
        !log_leftovers(t.path()).contains(&left),
        "leftover spare removed"
    );
}

#[test]
fn segments_a_snapshot_could_not_remove_are_removed_by_the_next_in_order() {
    let t = TempDir::new("remove-prefix");
    let mut d = fresh(t.path());
    append_applied(&mut d, 1, 100, 30_000); // about 3 MiB: 12 segments
    let before = d.usage().segments;
    assert!(before >= 4, "{before} segments");
    // Segment 2 cannot be removed: a directory stands in its place.
    let (seg2, aside) = (segment(t.path(), 2), t.path().join("seg2-aside"));
    std::fs::rename(&seg2, &aside).unwrap();
    std::fs::create_dir(&seg2).unwrap();
    std::fs::write(seg2.join("x"), b"x").unwrap();
    let store = store_with(10, 10);
    assert!(d.start_snapshot(header(70, store.rev()), store.head().clone()));
    let err = wait_snapshot_result(&mut d).expect_err("segment 2 cannot be removed");
    assert!(err.to_string().contains("0000000000000002.log"), "{err}");
    // Segment 1 went; nothing after segment 2 did: always a prefix.
    assert!(!segment(t.path(), 1).exists());
    assert!(segment(t.path(), 3).exists());
    assert_eq!(d.usage().segments, before - 1);
    assert_eq!(d.usage().snapshots, 1);
    // Once it can be, the next snapshot removes segment 2 and the rest.
    std::fs::remove_dir_all(&seg2).unwrap();
    std::fs::rename(&aside, &seg2).unwrap();
    assert!(d.start_snapshot(header(71, store.rev()), store.head().clone()));
    assert_eq!(wait_snapshot(&mut d), 71);
    assert!(!seg2.exists());
    let after = d.usage().segments;
    assert!(after < before - 1, "{after} segments");
    assert_eq!(d.usage().snapshots, 1);
    drop(d);
    let (d, r) = reopen(t.path());
    assert_eq!(d.usage().segments, after);
    let applied: Vec<u64> = (r.records.iter())
        .filter(|r| matches!(r, Record::Applied { .. }))
        .map(Record::seqn)
        .collect();
    assert_eq!(applied, (72..=100).collect::<Vec<_>>());
}

#[test]
fn a_checkpoint_drops_the_old_log_and_snapshots() {
    let t = TempDir::new("checkpoint");
    let mut d = fresh(t.path());
    append_applied(&mut d, 1, 60, 30_000);
    let old = store_with(5, 10);
    assert!(d.start_snapshot(header(40, old.rev()), old.head().clone()));
    wait_snapshot(&mut d);
    let copy = store_with(8, 10);
    let promise = Record::Promise {
        seqn: 1001,
        round: 2,
        cal: 1,
    };
    d.checkpoint(
        header(1000, copy.rev()),
        copy.head(),
        std::slice::from_ref(&promise),
    )
    .unwrap();
    assert_eq!(d.usage().segments, 1);
    assert_eq!(d.usage().snapshots, 1);
    d.append(&applied_run(1001..=1002)).unwrap();
    drop(d);

    let (_, r) = reopen(t.path());
    let (h, files) = r.snapshot.unwrap();
    assert_eq!((h.seqn, h.rev, files.len()), (1000, 8, 8));
    let mut want = vec![Record::Checkpoint { seqn: 1000 }, promise];
    want.extend(applied_run(1001..=1002));
    assert_eq!(r.records, want);
    assert!(!snapshot_file(t.path(), 40).exists());
}

#[test]
fn applied_records_before_a_checkpoint_are_void() {
    // A crash inside `checkpoint`, after the new segment was written but
    // before the old ones were deleted, leaves both on disk.
    let t = TempDir::new("void");
    let mut d = fresh(t.path());
    d.append(&applied_run(1..=3)).unwrap();
    let copy = store_with(2, 1);
    let seg1 = std::fs::read(segment(t.path(), 1)).unwrap();
    d.checkpoint(header(50, copy.rev()), copy.head(), &[])
        .unwrap();
    d.append(&[applied(51)]).unwrap();
    drop(d);
    std::fs::write(segment(t.path(), 1), seg1).unwrap(); // as if never deleted
    let (_, r) = reopen(t.path());
    assert_eq!(
        r.records,
        vec![Record::Checkpoint { seqn: 50 }, applied(51)]
    );
}

#[test]
fn a_missing_segment_between_two_stops_start_up() {
    let t = TempDir::new("missing-seg");
    let mut d = fresh(t.path());
    append_applied(&mut d, 1, 80, 30_000);
    drop(d);
    std::fs::remove_file(segment(t.path(), 2)).unwrap();
    let err = open_err(t.path());
    assert!(
        matches!(err, StorageError::MissingSegment { index: 2, .. }),
        "{err}"
    );
}

#[test]
fn snapshots_are_due_by_log_growth() {
    let t = TempDir::new("due");
    let mut d = fresh(t.path());
    assert!(!d.snapshot_due());
    append_applied(&mut d, 1, 40, 30_000);
    assert!(d.snapshot_due());
    let store = store_with(10, 10);
    d.start_snapshot(header(40, store.rev()), store.head().clone());
    assert!(!d.snapshot_due(), "one in progress");
    wait_snapshot(&mut d);
    assert!(
        !d.snapshot_due(),
        "the log was counted from the snapshot's start"
    );
}

#[test]
fn a_large_image_is_written_and_read_back() {
    let t = TempDir::new("large");
    let store = store_with(100_000, 100);
    let mut d = fresh(t.path());
    let started = Instant::now();
    assert!(d.start_snapshot(header(1, store.rev()), store.head().clone()));
    wait_snapshot(&mut d);
    let wrote = started.elapsed();
    let bytes = d.usage().snapshot_bytes;
    d.append(&[applied(2)]).unwrap();
    drop(d);
    let started = Instant::now();
    let (_, r) = reopen(t.path());
    let read = started.elapsed();
    let (h, files) = r.snapshot.unwrap();
    assert_eq!(files.len(), 100_000);
    assert_eq!(h.rev, 100_000);
    let want: Vec<_> = store
        .head()
        .walk_all(&crate::store::Glob::parse("/**").unwrap());
    assert!(files
        .iter()
        .zip(&want)
        .all(|(f, w)| f.path == w.path && f.rev == w.rev && f.body == w.body));
    println!(
        "100,000-file image ({bytes} bytes): written in {:.0} ms, read back in {:.0} ms",
        wrote.as_secs_f64() * 1e3,
        read.as_secs_f64() * 1e3
    );
}

/// Writes for [`the_directory_stays_a_few_times_the_store`]:
/// `DOOZER_STORAGE_WRITES` or 50,000 (the acceptance figure, 1,000,000,
/// takes minutes).
fn bounded_writes() -> u64 {
    std::env::var("DOOZER_STORAGE_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

#[test]
fn the_directory_stays_a_few_times_the_store() {
    // Many writes over a fixed set of files, a snapshot whenever due: the
    // directory never holds more than a few times the store. The loop
    // waits for each snapshot before its next append, as if snapshots
    // were written faster than the log grows, so the bound does not
    // depend on this machine's timing (a real node writes far less per
    // second than this loop).
    const FILES: usize = 1000;
    const BODY: usize = 1000;
    const BATCH: u64 = 250;
    let writes = bounded_writes();
    let t = TempDir::new("bounded");
    let mut store = store_with(FILES, BODY);
    let mut d = fresh(t.path());
    let mut seqn = 0;
    let mut most = 0;
    while seqn < writes {
        let mut batch = Vec::new();
        for _ in 0..BATCH {
            seqn += 1;
            let m = Mutation::Set {
                path: format!("/d{}/f{}", seqn % 10, seqn % FILES as u64),
                rev: -1,
                body: Bytes::from(vec![b'x'; BODY]),
            };
            store.apply(store.rev() + 1, &m);
            batch.push(Record::Applied {
                seqn,
                value: m.encode(),
            });
        }
        d.append(&batch).unwrap();
        let u = d.usage();
        most = most.max(u.log_bytes + u.snapshot_bytes);
        if d.snapshot_due() {
            d.start_snapshot(header(seqn, store.rev()), store.head().clone());
            wait_snapshot(&mut d);
        }
    }
    let snap = d.usage().snapshot_bytes;
    println!(
        "{writes} writes over {FILES} files of {BODY} bytes: the directory held at most {most} bytes, {:.1} x a snapshot",
        most as f64 / snap as f64
    );
    // A snapshot, the log up to a snapshot's size (the policy), the
    // segment holding the last snapshot's seqn, one batch.
    assert!(
        most < 4 * snap + 2 * SEGMENT_BYTES,
        "{most} bytes for a snapshot of {snap}"
    );
}

#[test]
fn image_errors_from_the_snapshot_name_the_file() {
    let t = TempDir::new("snap-kind");
    let mut d = fresh(t.path());
    let store = store_with(2, 1);
    d.checkpoint(header(9, store.rev()), store.head(), &[])
        .unwrap();
    drop(d);
    // Truncated: the image's trailer is gone.
    let snap = snapshot_file(t.path(), 9);
    let len = std::fs::metadata(&snap).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&snap).unwrap();
    f.set_len(len - 1).unwrap();
    drop(f);
    let err = open_err(t.path());
    assert!(
        matches!(&err, StorageError::Image { file, source: ImageError::Record(RecordError::Torn { .. }) } if *file == snap),
        "{err}"
    );
}

#[test]
fn a_replica_job_comes_back_as_it_restores() {
    use crate::consensus::CalSet;
    use crate::replica::SnapshotJob;
    let t = TempDir::new("job");
    let mut d = fresh(t.path());
    let store = store_with(20, 3);
    let set = CalSet::new(vec!["node1".into(), "node2".into()]).unwrap();
    let job = SnapshotJob {
        seqn: 30,
        rev: store.rev(),
        sets: vec![(1, set.clone())],
        former: vec![("node0".into(), "127.0.0.1:8046".parse().unwrap())],
        tree: store.head().clone(),
        records: vec![Record::Floor { seqn: 31 }],
    };
    d.checkpoint_job(&job).unwrap();
    drop(d);
    let (_, mut r) = reopen(t.path());
    assert_eq!(r.snapshot.as_ref().unwrap().0.cluster, "test");
    let restored = r.take_restored().unwrap().unwrap();
    assert_eq!((restored.seqn, restored.rev), (30, store.rev()));
    assert_eq!(restored.sets, vec![(1, set)]);
    assert_eq!(restored.former, job.former);
    let want = store
        .head()
        .walk_all(&crate::store::Glob::parse("/**").unwrap());
    assert_eq!(restored.files.len(), want.len());
    assert!(restored
        .files
        .iter()
        .zip(&want)
        .all(|(f, w)| f.path == w.path && f.rev == w.rev && f.body == w.body));
    assert_eq!(
        r.records,
        vec![Record::Checkpoint { seqn: 30 }, Record::Floor { seqn: 31 }]
    );
    assert!(r.take_restored().unwrap().is_none(), "taken once");
}

#[test]
fn a_cal_set_the_replica_cannot_use_names_the_snapshot() {
    let t = TempDir::new("job-bad-set");
    let mut d = fresh(t.path());
    let store = store_with(1, 1);
    let mut h = header(5, store.rev());
    h.sets = vec![(1, (0..65).map(|i| format!("n{i:02}")).collect())];
    d.checkpoint(h, store.head(), &[]).unwrap();
    drop(d);
    let (_, mut r) = reopen(t.path());
    let err = r.take_restored().unwrap_err();
    assert!(
        matches!(&err, StorageError::BadRecord { file, offset: 0, .. } if *file == snapshot_file(t.path(), 5)),
        "{err}"
    );
}
