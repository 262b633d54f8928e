use super::*;
use crate::record::{encode_record, Records};
use proptest::prelude::*;

fn snapshot_header() -> ImageHeader {
    ImageHeader {
        kind: ImageKind::Snapshot,
        cluster: "c".into(),
        rev: 2,
        seqn: 3,
        sets: vec![(3, vec!["a".into(), "b".into()])],
        former: Vec::new(),
    }
}

/// The small image of the known-bytes test.
fn small_image() -> Vec<u8> {
    let mut w = ImageWriter::new(Vec::new(), &snapshot_header()).unwrap();
    w.file("/a", 1, b"x").unwrap();
    w.file("/d/e", 2, b"").unwrap();
    w.finish().unwrap()
}

/// Every file of `data`, or the first error.
fn read_all(data: &[u8]) -> Result<(ImageHeader, Vec<ImageFile>), ImageError> {
    let (mut r, header) = ImageReader::open(data)?;
    let mut files = Vec::new();
    while let Some(f) = r.next_file()? {
        files.push(f);
    }
    Ok((header, files))
}

fn file(path: &str, rev: i64, body: &str) -> ImageFile {
    ImageFile {
        path: path.into(),
        rev,
        body: Bytes::from(body.to_string()),
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn small_image_matches_known_bytes() {
    // Computed independently (Python: zlib.crc32 and protobuf bytes by
    // hand; see docs/storage.md#images): the format cannot change by
    // accident.
    let want = hex(concat!(
        // header record: len 36, crc, type 1; magic, version 1, kind 1
        // (snapshot), cluster "c", rev 2, seqn 3, set (3, [a, b])
        "24000000",
        "a6b0084f",
        "01",
        "0a0c646f6f7a65722d696d616765",
        "1001",
        "1801",
        "220163",
        "2802",
        "3003",
        "3a08",
        "0803",
        "120161",
        "120162",
        // file record: "/a", rev 1, body "x"
        "0a000000",
        "2cbe0144",
        "02",
        "0a022f61",
        "1001",
        "1a0178",
        // file record: "/d/e", rev 2, empty body (not written)
        "09000000",
        "43a7b925",
        "02",
        "0a042f642f65",
        "1002",
        // trailer: 2 files, crc32 of the two file records (fixed32)
        "08000000",
        "fb7f7397",
        "03",
        "0802",
        "15b0abcaf2",
    ));
    assert_eq!(small_image(), want);
    let (header, files) = read_all(&want).unwrap();
    assert_eq!(header, snapshot_header());
    assert_eq!(files, vec![file("/a", 1, "x"), file("/d/e", 2, "")]);
}

#[test]
fn round_trip_of_a_backup() {
    let header = ImageHeader {
        kind: ImageKind::Backup,
        cluster: "prod".into(),
        rev: 1000,
        seqn: 0,
        sets: vec![],
        former: Vec::new(),
    };
    let files = vec![
        file("/a", 5, "one"),
        file("/a.b", 7, ""),
        file("/ctl/name", 1, "prod"),
        file("/z/y/x", 1000, &"b".repeat(100_000)),
    ];
    let mut w = ImageWriter::new(Vec::new(), &header).unwrap();
    for f in &files {
        w.file(&f.path, f.rev, &f.body).unwrap();
    }
    let written = w.bytes();
    let data = w.finish().unwrap();
    assert!(data.len() as u64 > written);
    let (h, got) = read_all(&data).unwrap();
    assert_eq!(h, header);
    assert_eq!(got, files);
    // offset() names where each file's record starts.
    let starts: Vec<u64> = Records::new(&data[..]).map(|r| r.unwrap().offset).collect();
    let (mut r, _) = ImageReader::open(&data[..]).unwrap();
    for start in &starts[1..=files.len()] {
        assert_eq!(r.offset(), *start);
        r.next_file().unwrap().unwrap();
    }
}

#[test]
fn an_empty_tree_is_an_image_too() {
    let header = ImageHeader {
        kind: ImageKind::Backup,
        cluster: String::new(),
        rev: 0,
        seqn: 0,
        sets: vec![],
        former: Vec::new(),
    };
    let data = ImageWriter::new(Vec::new(), &header)
        .unwrap()
        .finish()
        .unwrap();
    let (h, files) = read_all(&data).unwrap();
    assert_eq!(h, header);
    assert!(files.is_empty());
}

#[test]
fn paths_are_ordered_name_by_name() {
    // Depth first: "/a/b" (in directory "a") comes before "/a.b".
    assert_eq!(path_order("/a/b", "/a.b"), Ordering::Less);
    assert_eq!(path_order("/a", "/a/b"), Ordering::Less);
    assert_eq!(path_order("/b", "/a/b"), Ordering::Greater);
    assert_eq!(path_order("/a", "/a"), Ordering::Equal);
}

#[test]
fn writer_refuses_what_a_reader_would_refuse() {
    let mut w = ImageWriter::new(Vec::new(), &snapshot_header()).unwrap();
    w.file("/b", 1, b"").unwrap();
    let refused = |r: io::Result<()>| r.is_err_and(|e| e.kind() == io::ErrorKind::InvalidInput);
    assert!(refused(w.file("/a", 1, b"")), "out of order");
    assert!(refused(w.file("/b", 1, b"")), "repeated");
    assert!(refused(w.file("/c", 3, b"")), "rev past the header's");
    assert!(refused(w.file("/c", 0, b"")), "rev 0");
    assert!(refused(w.file("c", 1, b"")), "relative path");
    let mut bad = snapshot_header();
    bad.kind = ImageKind::Backup;
    assert!(
        ImageWriter::new(Vec::new(), &bad).is_err(),
        "backup with a seqn"
    );
    let mut bad = snapshot_header();
    bad.rev = -1;
    assert!(ImageWriter::new(Vec::new(), &bad).is_err());
}

/// The offset where the record holding byte `i` starts.
fn record_start(data: &[u8], i: usize) -> u64 {
    Records::new(data)
        .map(|r| r.unwrap())
        .find(|r| (r.offset..r.end).contains(&(i as u64)))
        .unwrap()
        .offset
}

#[test]
fn a_cut_at_any_byte_is_an_error() {
    let data = small_image();
    for cut in 0..data.len() {
        let err = read_all(&data[..cut]).expect_err("a cut image must not read");
        // Cut at a record boundary: the image lacks its trailer; inside a
        // record: that record is torn.
        let at_boundary = Records::new(&data).any(|r| r.unwrap().offset == cut as u64);
        match err {
            ImageError::Truncated { offset } => {
                assert!(at_boundary, "cut {cut}");
                assert_eq!(offset, cut as u64);
            }
            ImageError::Record(RecordError::Torn { offset }) => {
                assert!(!at_boundary, "cut {cut}");
                assert_eq!(offset, record_start(&data, cut));
            }
            e => panic!("cut {cut}: unexpected {e}"),
        }
    }
}

#[test]
fn a_flipped_byte_anywhere_is_an_error_at_its_record() {
    let data = small_image();
    for i in 0..data.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = data.clone();
            bad[i] ^= mask;
            let err = read_all(&bad).expect_err("a damaged image must not read");
            assert_eq!(
                err.offset(),
                record_start(&data, i),
                "byte {i} ^ {mask:#x}: {err}"
            );
        }
    }
}

#[test]
fn extra_data_and_missing_records_are_errors() {
    let data = small_image();
    let mut extra = data.clone();
    extra.push(0);
    assert!(matches!(
        read_all(&extra),
        Err(ImageError::TrailingData { offset }) if offset == data.len() as u64
    ));

    // A whole file record dropped (records still well framed): the
    // trailer's count and checksum catch it.
    let recs: Vec<_> = Records::new(&data).map(|r| r.unwrap()).collect();
    let mut dropped = data[..recs[1].end as usize].to_vec();
    dropped.extend_from_slice(&data[recs[2].end as usize..]);
    assert!(matches!(
        read_all(&dropped),
        Err(ImageError::Trailer { .. })
    ));

    // Files swapped: out of order.
    let mut swapped = data[..recs[0].end as usize].to_vec();
    swapped.extend_from_slice(&data[recs[2].offset as usize..recs[2].end as usize]);
    swapped.extend_from_slice(&data[recs[1].offset as usize..recs[1].end as usize]);
    swapped.extend_from_slice(&data[recs[3].offset as usize..]);
    let err = read_all(&swapped).unwrap_err();
    assert!(matches!(err, ImageError::BadFile { .. }), "{err}");
}

/// An image whose header record holds `msg`, then an empty trailer.
fn image_with_header(msg: &HeaderMsg) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(&mut out, kind::IMAGE_HEADER, msg).unwrap();
    let t = TrailerMsg {
        files: 0,
        checksum: crc32fast::Hasher::new().finalize(),
    };
    encode_message(&mut out, kind::IMAGE_TRAILER, &t).unwrap();
    out
}

fn header_msg() -> HeaderMsg {
    HeaderMsg {
        magic: IMAGE_MAGIC.into(),
        version: IMAGE_FORMAT_VERSION,
        kind: ImageKind::Backup as i32,
        cluster: "c".into(),
        rev: 5,
        seqn: 0,
        sets: vec![],
        former: vec![],
    }
}

#[test]
fn former_nodes_come_back_as_written() {
    let header = ImageHeader {
        former: vec![("old".into(), "127.0.0.1:8046".into())],
        ..snapshot_header()
    };
    let data = ImageWriter::new(Vec::new(), &header)
        .unwrap()
        .finish()
        .unwrap();
    // Field 8, 21 bytes: id "old" (field 1), addr (field 2).
    let field = hex("42150a036f6c64120e3132372e302e302e313a38303436");
    assert!(data.windows(field.len()).any(|w| w == field));
    let (_, read) = ImageReader::open(&data[..]).unwrap();
    assert_eq!(read, header);
}

#[test]
fn a_backup_with_former_nodes_is_refused() {
    let data = image_with_header(&HeaderMsg {
        former: vec![FormerNode {
            id: "a".into(),
            addr: "127.0.0.1:8046".into(),
        }],
        ..header_msg()
    });
    let err = ImageReader::open(&data[..]).unwrap_err().to_string();
    assert!(err.contains("no former nodes"), "{err}");
}

#[test]
fn unknown_version_is_refused_naming_it() {
    let data = image_with_header(&HeaderMsg {
        version: 2,
        ..header_msg()
    });
    let err = read_all(&data).unwrap_err();
    assert!(matches!(
        err,
        ImageError::Version {
            found: 2,
            supported: 1
        }
    ));
    assert_eq!(
        err.to_string(),
        "image format version 2 is not supported (this doozer reads version 1)"
    );
    assert!(read_all(&image_with_header(&header_msg())).is_ok());
}

#[test]
fn other_data_is_not_an_image() {
    let data = image_with_header(&HeaderMsg {
        magic: "something".into(),
        ..header_msg()
    });
    assert!(matches!(
        read_all(&data),
        Err(ImageError::NotAnImage { offset: 0, .. })
    ));
    let mut other = Vec::new();
    encode_record(&mut other, kind::META, b"").unwrap();
    assert!(matches!(
        read_all(&other),
        Err(ImageError::NotAnImage { offset: 0, .. })
    ));
    assert!(matches!(
        read_all(b"hello, world"),
        Err(ImageError::Record(_))
    ));
    assert!(matches!(
        read_all(b""),
        Err(ImageError::Truncated { offset: 0 })
    ));
    let kind9 = image_with_header(&HeaderMsg {
        kind: 9,
        ..header_msg()
    });
    assert!(matches!(
        read_all(&kind9),
        Err(ImageError::BadHeader { offset: 0, .. })
    ));
    let unordered = image_with_header(&HeaderMsg {
        kind: ImageKind::Snapshot as i32,
        seqn: 9,
        sets: vec![
            CalSetAt {
                seqn: 5,
                ids: vec!["a".into()],
            },
            CalSetAt {
                seqn: 5,
                ids: vec!["b".into()],
            },
        ],
        ..header_msg()
    });
    assert!(matches!(
        read_all(&unordered),
        Err(ImageError::BadHeader { .. })
    ));
}

#[test]
fn a_record_of_another_kind_among_the_files_is_an_error() {
    let data = small_image();
    let recs: Vec<_> = Records::new(&data).map(|r| r.unwrap()).collect();
    let mut odd = data[..recs[1].end as usize].to_vec();
    let at = odd.len() as u64;
    encode_record(&mut odd, kind::VOTE, b"").unwrap();
    odd.extend_from_slice(&data[recs[1].end as usize..]);
    assert!(matches!(
        read_all(&odd),
        Err(ImageError::Unexpected { offset, kind: kind::VOTE }) if offset == at
    ));
}

/// Sorted, distinct paths of a tree: no path is a directory of another.
fn tree_paths() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set("(/[a-c.]{1,2}){1,3}", 0..20).prop_map(|set| {
        let mut paths: Vec<String> = Vec::new();
        let mut all: Vec<String> = set.into_iter().collect();
        all.sort_by(|a, b| path_order(a, b));
        for p in all {
            // Keep only leaves: drop a path that is a directory of a kept
            // one, or under a kept file.
            let clash = paths
                .iter()
                .any(|q| p.starts_with(&format!("{q}/")) || q.starts_with(&format!("{p}/")));
            if !clash {
                paths.push(p);
            }
        }
        paths
    })
}

proptest! {
    #[test]
    fn any_tree_round_trips(paths in tree_paths(), rev in 1i64..1000, seqn in 0u64..5) {
        let header = ImageHeader {
            kind: ImageKind::Snapshot,
            cluster: "c".into(),
            rev,
            seqn,
            sets: (0..seqn).map(|s| (s * 2, vec![format!("n{s}")])).collect(),
            former: Vec::new(),
        };
        let files: Vec<ImageFile> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| file(p, 1 + (i as i64 % rev), &p.repeat(i % 3)))
            .collect();
        let mut w = ImageWriter::new(Vec::new(), &header).unwrap();
        for f in &files {
            w.file(&f.path, f.rev, &f.body).unwrap();
        }
        let data = w.finish().unwrap();
        let (h, got) = read_all(&data).unwrap();
        prop_assert_eq!(h, header);
        prop_assert_eq!(got, files);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        prop_assert!(read_all(&data).is_err());
    }
}
