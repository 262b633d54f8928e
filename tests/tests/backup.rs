//! Backup and restore (docs/storage.md#backups): `doozer backup FILE|-`
//! from a CAL and from a slave while a client keeps writing, checked
//! against the cluster's own history and against what the writer was
//! acknowledged; `doozerd -restore FILE` seeding a new cluster whose files
//! keep their bodies and revs; damaged images and `-restore -a` refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use doozer_proto::image::{ImageHeader, ImageKind, ImageReader, ImageWriter};
use doozer_proto::record::Records;
use doozer_tests::cluster::{call_timeout, get_at, node_id, Cluster, CLUSTER_DEADLINE};
use doozer_tests::*;

/// A file as WALK and images hold it: (path, rev, body).
type File = (String, i64, Vec<u8>);

/// Reads a backup image whole, checking every record.
fn read_image(data: &[u8]) -> (ImageHeader, Vec<File>) {
    let (mut r, header) = ImageReader::open(data).unwrap_or_else(|e| panic!("image: {e}"));
    let mut files = Vec::new();
    while let Some(f) = r.next_file().unwrap_or_else(|e| panic!("image: {e}")) {
        files.push((f.path, f.rev, f.body.to_vec()));
    }
    (header, files)
}

fn outside_ctl(files: &[File]) -> Vec<File> {
    files
        .iter()
        .filter(|(p, _, _)| !p.starts_with("/ctl/"))
        .cloned()
        .collect()
}

/// Runs `doozer backup FILE` against `node`; returns the image's bytes,
/// after checking the summary line on stderr against them.
fn backup_to_file(node: &Doozerd, file: &Path) -> Vec<u8> {
    let shown = file.display().to_string();
    let out = doozer(node, &["backup", &shown], b"");
    out.expect_code(0);
    assert!(out.stdout.is_empty(), "backup to a file prints nothing");
    let data = std::fs::read(file).expect("the backup file");
    let (header, files) = read_image(&data);
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "backup of rev {}: {} files, {} bytes written to {shown}",
            header.rev,
            files.len(),
            data.len()
        )
    );
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    assert!(!Path::new(&tmp).exists(), "FILE.tmp left behind");
    data
}

/// Writes to `/app/k<i mod 40>` one at a time on `conn` until stopped,
/// recording every acknowledged write; stops itself when one fails.
struct Writer {
    acked: Arc<Mutex<Vec<File>>>,
    failed: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Writer {
    fn start(mut conn: RawConn) -> Writer {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, f, s) = (acked.clone(), failed.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut i = 0u64;
            while !s.load(Ordering::SeqCst) {
                let path = format!("/app/k{}", i % 40);
                let body = format!("value {i}").into_bytes();
                let r = call_timeout(
                    &mut conn,
                    req(Verb::Set).path(&path).rev(-1).value(&body),
                    CLUSTER_DEADLINE,
                );
                match r {
                    Some(r) if r.err_code.is_none() && r.rev.is_some() => {
                        a.lock().unwrap().push((path, r.rev.unwrap(), body));
                    }
                    other => {
                        *f.lock().unwrap() = Some(format!("SET {path}: {other:?}"));
                        return;
                    }
                }
                i += 1;
            }
        });
        Writer {
            acked,
            failed,
            stop,
            thread: Some(thread),
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until at least `n` writes are acknowledged.
    fn wait_for(&self, n: usize) {
        poll_until(
            CLUSTER_DEADLINE,
            &format!("{n} writes acknowledged"),
            || {
                if let Some(e) = self.failed.lock().unwrap().as_ref() {
                    panic!("the writer failed: {e}");
                }
                (self.acked() >= n).then_some(())
            },
        );
    }

    /// Stops the writer; returns every acknowledged write, in order.
    fn finish(mut self) -> Vec<File> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("the writer thread");
        }
        if let Some(e) = self.failed.lock().unwrap().as_ref() {
            panic!("the writer failed: {e}");
        }
        self.acked.lock().unwrap().clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Also when the test fails first: the thread ends at its next write.
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The writer's files as of `rev`: each path's last acknowledged write
/// at or before it.
fn acked_at(acked: &[File], rev: i64) -> Vec<File> {
    let mut last: BTreeMap<String, File> = BTreeMap::new();
    for f in acked.iter().filter(|f| f.1 <= rev) {
        last.insert(f.0.clone(), f.clone());
    }
    last.into_values().collect()
}

/// Checks a backup image taken from a node of `c`: a backup of cluster
/// "local", whose files are exactly the tree at its rev (a WALK at that
/// rev on node 0) and whose `/app` files are the writer's last
/// acknowledged writes at that rev.
fn check_image(c: &Cluster, data: &[u8], acked: &[File]) -> (i64, Vec<File>) {
    let (header, files) = read_image(data);
    assert_eq!(header.kind, ImageKind::Backup);
    assert_eq!((header.cluster.as_str(), header.seqn), ("local", 0));
    assert!(header.sets.is_empty());
    let rev = header.rev;
    let walked = c.d(0).raw().walk_all("/**", Some(rev));
    assert!(
        files == walked,
        "the image at rev {rev} differs from WALK at that rev:\nimage {files:?}\nwalk {walked:?}"
    );
    let app: Vec<File> = files
        .iter()
        .filter(|f| f.0.starts_with("/app/"))
        .cloned()
        .collect();
    assert_eq!(app, acked_at(acked, rev), "the image's /app at rev {rev}");
    (rev, files)
}

/// Starts `doozerd -restore FILE -c restored` on a fresh port and checks
/// the new cluster: every file outside `/ctl` as in the backup, its own
/// `/ctl`, and the next write after the backup's rev. Returns the node.
fn restore_and_check(file: &Path, rev: i64, files: &[File], old_ids: &[String]) -> Doozerd {
    let shown = file.display().to_string();
    let node = Doozerd::builder()
        .args(["-restore", shown.as_str(), "-c", "restored"])
        .start();
    let mut conn = node.raw();
    let all = conn.walk_all("/**", None);
    assert_eq!(
        outside_ctl(&all),
        outside_ctl(files),
        "the restored files outside /ctl"
    );
    // Its own /ctl: the name of -c, its id in slot 0, no old node.
    let id = node_id(&node);
    assert_eq!(conn.must_get("/ctl/name").0, b"restored");
    assert_eq!(conn.must_get("/ctl/cal/0").0, id.as_bytes());
    for (p, _, _) in all.iter().filter(|f| f.0.starts_with("/ctl/")) {
        assert!(
            !old_ids.iter().any(|old| p.contains(old.as_str())),
            "{p} of an old node restored"
        );
    }
    // Every /ctl file the new cluster wrote came after the backup.
    for (p, r, _) in all.iter().filter(|f| f.0.starts_with("/ctl/")) {
        assert!(*r > rev, "{p} at rev {r}, not after the backup's {rev}");
    }
    // No history before the backup's rev (docs/storage.md).
    let r = conn.get("/ctl/name", Some(rev - 1));
    assert_eq!(err_of(&r), Some(ErrCode::TooLate), "{r:?}");
    let next = conn.must_set("/after/restore", 0, b"new");
    assert!(
        next > rev,
        "the first new write at rev {next}, the backup's {rev}"
    );
    assert!(
        node.stderr()
            .contains("the backup is of cluster \"local\"; the restored cluster is \"restored\""),
        "{}",
        node.stderr()
    );
    node
}

#[test]
fn backups_from_a_cal_and_a_slave_during_writes_restore_with_their_revs() {
    let dir = TempDir::new("backup");
    let mut c = Cluster::start(2, &[]);
    let slave = c.attach(0, &[]);
    // Some history before: files created, rewritten and deleted.
    for i in 0..10 {
        c.set(0, &format!("/old/f{i}"), -1, format!("old {i}").as_bytes());
    }
    let mut conn = c.writer(0);
    for i in 0..5 {
        let r = conn.del(&format!("/old/f{i}"), -1);
        assert_eq!(err_of(&r), None, "DEL: {r:?}");
    }
    c.set(0, "/old/empty", -1, b"");

    let writer = Writer::start(c.writer(0));
    writer.wait_for(30);
    let from_cal = dir.path().join("cal.img");
    let from_slave = dir.path().join("slave.img");
    let cal_data = backup_to_file(c.d(1), &from_cal);
    let slave_data = backup_to_file(c.d(slave), &from_slave);
    // Writes went on during and after the backups.
    let n = writer.acked();
    writer.wait_for(n + 30);
    let acked = writer.finish();

    let (cal_rev, cal_files) = check_image(&c, &cal_data, &acked);
    let (slave_rev, slave_files) = check_image(&c, &slave_data, &acked);
    let last = acked.last().expect("acknowledged writes").1;
    assert!(cal_rev < last && slave_rev < last, "writes went on after");
    assert!(cal_files
        .iter()
        .any(|f| f.0 == "/old/empty" && f.2.is_empty()));
    assert!(!cal_files.iter().any(|f| f.0 == "/old/f0"), "deleted");

    let old_ids: Vec<String> = (0..c.nodes.len()).map(|i| c.id(i).to_string()).collect();
    let restored = restore_and_check(&from_slave, slave_rev, &slave_files, &old_ids);
    // The restore procedure: attach more nodes to the restored one.
    let addr = restored.addr().to_string();
    let more = Doozerd::builder()
        .args(["-a", addr.as_str(), "-c", "restored"])
        .start();
    let head = restored.raw().must_set("/after/attach", 0, b"x");
    assert_eq!(get_at(&more, "/after/attach", head).0, b"x");
    assert_eq!(
        outside_ctl(&more.raw().walk_all("/**", Some(head))),
        outside_ctl(&restored.raw().walk_all("/**", Some(head))),
        "the attached node's copy of the restored cluster"
    );
    drop(more);
    drop(restored);

    restore_and_check(&from_cal, cal_rev, &cal_files, &old_ids);
}

/// A single node with a few files and no pulse writes, so the tree stays
/// at one rev between two backups.
fn quiet_node() -> Doozerd {
    let node = Doozerd::start(&["-pulse", "3600"]);
    let mut c = node.raw();
    for i in 0..20 {
        c.must_set(
            &format!("/d{}/f{i}", i % 3),
            -1,
            format!("body {i}").as_bytes(),
        );
    }
    node
}

#[test]
fn a_backup_to_stdout_is_the_same_image() {
    let dir = TempDir::new("backup-stdout");
    let node = quiet_node();
    let file = dir.path().join("b.img");
    let data = backup_to_file(&node, &file);
    let out = doozer(&node, &["backup", "-"], b"");
    out.expect_code(0);
    let (header, files) = read_image(&out.stdout);
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "backup of rev {}: {} files, {} bytes written to stdout",
            header.rev,
            files.len(),
            out.stdout.len()
        )
    );
    assert_eq!(files, node.raw().walk_all("/**", Some(header.rev)));
    assert_eq!(out.stdout, data, "stdout and FILE images differ");
}

/// `doozerd -restore FILE` that must fail at start-up: exit 1 and one
/// line on stderr, which is returned.
fn refused_restore(file: &Path) -> String {
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let shown = file.display().to_string();
    let out = doozerd_run(&["-l", &listen, "-w", "false", "-restore", &shown]);
    out.expect_code(1);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    out.stderr.trim_end().to_string()
}

#[test]
fn damaged_images_are_refused_naming_the_offset() {
    let dir = TempDir::new("backup-damaged");
    let node = quiet_node();
    let file = dir.path().join("b.img");
    let data = backup_to_file(&node, &file);
    drop(node);
    let records: Vec<(u64, u64)> = Records::new(&data)
        .map(|r| {
            let r = r.expect("a good image");
            (r.offset, r.end)
        })
        .collect();

    // Cut short inside its trailer: that record runs past the end.
    let cut = dir.path().join("cut.img");
    let (trailer, _) = *records.last().unwrap();
    std::fs::write(&cut, &data[..data.len() - 2]).unwrap();
    assert_eq!(
        refused_restore(&cut),
        format!(
            "doozerd: cannot restore from {}: the record at byte {trailer} runs past the end of the data",
            cut.display()
        )
    );
    // Cut at a record boundary: no trailer.
    let (fifth, _) = records[5];
    std::fs::write(&cut, &data[..fifth as usize]).unwrap();
    assert_eq!(
        refused_restore(&cut),
        format!(
            "doozerd: cannot restore from {}: the image ends at byte {fifth} without its trailer (cut short)",
            cut.display()
        )
    );

    // One flipped byte in the middle of a file record: its checksum.
    let flipped = dir.path().join("flipped.img");
    let (start, end) = records[records.len() / 2];
    let mut bad = data.clone();
    bad[((start + end) / 2) as usize] ^= 0x20;
    std::fs::write(&flipped, &bad).unwrap();
    assert_eq!(
        refused_restore(&flipped),
        format!(
            "doozerd: cannot restore from {}: bad checksum in the record at byte {start}",
            flipped.display()
        )
    );

    // Not a backup: a data directory's snapshot, and no file at all.
    let snap = dir.path().join("snap.img");
    let header = ImageHeader {
        kind: ImageKind::Snapshot,
        cluster: "local".into(),
        rev: 1,
        seqn: 1,
        sets: vec![(1, vec!["A".into()])],
        former: Vec::new(),
    };
    let w = ImageWriter::new(Vec::new(), &header).unwrap();
    std::fs::write(&snap, w.finish().unwrap()).unwrap();
    assert!(refused_restore(&snap).ends_with("not a backup (make one with doozer backup)"));
    let missing = dir.path().join("missing.img");
    assert!(refused_restore(&missing).starts_with(&format!(
        "doozerd: cannot restore from {}: open: ",
        missing.display()
    )));
}

#[test]
fn restore_refuses_to_join_a_running_cluster() {
    let dir = TempDir::new("backup-flags");
    let file = dir.path().join("b.img");
    std::fs::write(&file, b"never read").unwrap();
    let shown = file.display().to_string();
    let out = doozerd_run(&["-restore", &shown, "-a", "127.0.0.1:1"]);
    out.expect_code(2);
    assert_eq!(
        out.stderr.trim_end(),
        "doozerd: -restore seeds a new cluster: it cannot go with -a (never restore into a running cluster)"
    );
}

#[test]
fn a_failed_backup_leaves_no_file() {
    let dir = TempDir::new("backup-failed");
    let file = dir.path().join("b.img");
    let shown = file.display().to_string();
    // Nothing listens there: the backup fails after FILE.tmp was made.
    let uri = format!("doozer:?ca=127.0.0.1:{}", free_port());
    let out = doozer_with(&[("DOOZER_URI", uri.as_str())], &["backup", &shown], b"");
    out.expect_code(2);
    assert!(out.stderr.starts_with("Error: "), "{}", out.stderr);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // A directory that does not exist: said before connecting.
    let nowhere = dir.path().join("no/such/dir/b.img");
    let out = doozer_with(
        &[("DOOZER_URI", uri.as_str())],
        &["backup", &nowhere.display().to_string()],
        b"",
    );
    out.expect_code(2);
    assert!(
        out.stderr
            .starts_with(&format!("Error: cannot create {}.tmp: ", nowhere.display())),
        "{}",
        out.stderr
    );
}

/// BACKUPs pipelined on one connection stream one after the other, each
/// whole; a client that queues more than a few behind each other (each
/// pins a version of the store) has its connection closed, and the node
/// goes on serving.
#[test]
fn pipelined_backups_stream_in_turn_and_too_many_close_the_connection() {
    let node = Doozerd::start(&[]);
    let mut c = node.raw();
    // 8 MiB: more than the socket buffers take, so a copy streams for as
    // long as the client does not read.
    for i in 0..1000 {
        c.must_set(&format!("/p/{i}"), 0, &[b'x'; 8 << 10]);
    }
    // Three in a row: three whole copies, in order, each ending in READY.
    let mut conn = node.raw();
    let tags: Vec<i32> = (0..3).map(|_| conn.tag()).collect();
    for &t in &tags {
        conn.send(&Request {
            tag: Some(t),
            ..req(Verb::Backup)
        });
    }
    for &t in &tags {
        let first = conn.recv();
        assert_eq!(
            (first.tag, first.flags),
            (Some(t), Some(doozer_proto::flags::SNAPSHOT))
        );
        let mut files = 0;
        loop {
            let r = conn.recv();
            assert_eq!(r.tag, Some(t));
            if r.flags == Some(doozer_proto::flags::READY) {
                break;
            }
            files += 1;
        }
        assert!(files >= 1000, "copy {t}: {files} files");
    }
    // Thirty at once: closed, and the node still answers others.
    let mut greedy = node.raw();
    for _ in 0..30 {
        let t = greedy.tag();
        greedy.send(&Request {
            tag: Some(t),
            ..req(Verb::Backup)
        });
    }
    // Not read meanwhile: reading would let the copies finish.
    poll_until(
        CLUSTER_DEADLINE,
        "the node to refuse the queue of copies",
        || {
            node.stderr()
                .contains("copies waiting behind one another; closing")
                .then_some(())
        },
    );
    greedy.expect_closed(DEADLINE, "thirty copies queued");
    assert!(c.rev() > 0);
}
