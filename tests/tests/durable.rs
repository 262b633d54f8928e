//! Durable mode end to end (`-d DIR`, docs/storage.md): real doozerd
//! processes SIGKILLed and started again on the same data directories.
//! Covered: a single node killed under writes keeps every acknowledged
//! write, its id and its rev; a 3-CAL cluster whose every node is killed
//! while a client writes comes back with every acknowledged write and
//! accepts writes again; one CAL restarted rejoins as the same CAL; an
//! emptied DIR makes a new node; a second doozerd on a DIR in use, a
//! different `-c`, a flipped byte inside the log are refused with errors
//! naming what is wrong; a torn tail, and a record missing a page with
//! good records after it, are cut off and logged; writes in a
//! row are answered while the third CAL votes lazily; a node stopped by
//! signals comes back at the rev it stopped at.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use doozer_tests::browser::http_get;
use doozer_tests::cluster::{call_timeout, node_id, signal, Cluster, State, CLUSTER_DEADLINE};
use doozer_tests::*;

/// A node on `dir` with `args`, to be started.
fn with_dir(dir: &Path, args: &[&str]) -> DoozerdBuilder {
    let mut all = vec!["-d", dir.to_str().expect("utf-8 temp path")];
    all.extend_from_slice(args);
    Doozerd::builder().args(all.iter().copied())
}

/// Starts a node on `port` (a free one if `None`) with `-d dir` and
/// `args`.
fn start(port: Option<u16>, dir: &Path, args: &[&str]) -> Doozerd {
    let b = with_dir(dir, args);
    match port {
        Some(p) => b.port(p).start(),
        None => b.start(),
    }
}

fn client(d: &Doozerd) -> doozer::Client {
    doozer::Client::connect(&d.uri()).expect("connect")
}

/// The log segments of a data directory, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .expect("DIR/log")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Where a segment's records end: it is preallocated, so zeros follow
/// (docs/storage.md#preallocation).
fn records_end(seg: &Path) -> usize {
    let bytes = std::fs::read(seg).expect("read segment");
    let end = doozer_proto::record::Records::new(&bytes)
        .map_while(|r| r.ok().map(|r| r.end as usize))
        .last()
        .expect("a segment header");
    assert!(
        bytes[end..].iter().all(|b| *b == 0),
        "zeros after the records"
    );
    end
}

/// A single node killed with SIGKILL right after its last acknowledged
/// write comes back with the same id, every file at its rev, the history
/// `-hist` keeps readable again (the log's older records are replayed
/// without it), and goes on from there.
#[test]
fn a_killed_single_node_keeps_every_acknowledged_write() {
    let dir = TempDir::new("durable-one");
    let hist = ["-hist", "100"];
    let mut d = start(None, dir.path(), &hist);
    let id = node_id(&d);
    let port = d.port();
    let c = client(&d);
    let mut acked = Vec::new();
    for i in 0..200 {
        let path = format!("/d/{}", i % 50);
        let body = format!("v{i}");
        let rev = c
            .set(&path, doozer::rev::CLOBBER, body.clone())
            .expect("set");
        acked.push((path, body, rev));
    }
    let last = acked.last().expect("writes").2;
    drop(c);
    d.kill();
    let d = start(Some(port), dir.path(), &hist);
    assert_eq!(node_id(&d), id, "the same node id after a restart");
    let c = client(&d);
    assert!(c.rev().expect("rev") >= last);
    // The last write of each path is its current body, at its rev.
    let mut latest = std::collections::BTreeMap::new();
    for (p, b, r) in &acked {
        latest.insert(p.clone(), (b.clone(), *r));
    }
    for (p, (b, r)) in &latest {
        let (body, rev) = c.get(p, None).expect("get");
        assert_eq!((&body[..], rev), (b.as_bytes(), *r), "{p}");
    }
    // Each of the last revs reads as it was: the body written then.
    for (p, b, r) in acked.iter().rev().take(15) {
        let (body, rev) = c.get(p, Some(*r)).expect("get at a recent rev");
        assert_eq!((&body[..], rev), (b.as_bytes(), *r), "{p} at {r}");
    }
    let next = c
        .set("/d/after", 0, "x")
        .expect("a write after the restart");
    assert!(next > last, "rev {next} after a restart at {last}");
    assert!(d.stderr().contains("store back at rev"), "{}", d.stderr());
}

/// Writes `/w/<k>/<n>` (a new file each) through `uri` until stopped; every
/// acknowledged write is recorded as (path, rev).
fn writer(uri: String, k: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<(String, i64)>>>) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let Ok(c) = doozer::Client::connect(&uri) else {
            thread::sleep(Duration::from_millis(20));
            continue;
        };
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let path = format!("/w/{k}/{n}");
            match c.set(&path, 0, format!("{n}")) {
                Ok(rev) => acked.lock().unwrap().push((path, rev)),
                Err(e) if e.is_connection_error() => break,
                Err(_) => {}
            }
        }
    }
}

/// Every node of a 3-CAL cluster SIGKILLed while a client writes, then all
/// started again: every acknowledged write is there at its rev, on every
/// node, each node is the CAL it was, and writes go on.
#[test]
fn three_cals_all_killed_under_writes_lose_nothing() {
    let mut c = Cluster::start_durable(3, &[]);
    let ids: Vec<String> = (0..3).map(|i| c.id(i).to_string()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    // Several clients, one on each node.
    let writers: Vec<_> = (0..3)
        .map(|k| {
            let uri = c.uri(k);
            let (stop, acked) = (stop.clone(), acked.clone());
            thread::spawn(move || writer(uri, k, stop, acked))
        })
        .collect();
    poll_until(CLUSTER_DEADLINE, "200 acknowledged writes", || {
        (acked.lock().unwrap().len() >= 200).then_some(())
    });
    for i in 0..3 {
        c.kill(i);
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200);
    for i in 0..3 {
        c.restart(i).expect("restart on its DIR");
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(node_id(c.d(i)), *id, "node {i} kept its id");
        c.wait_cal(i);
    }
    let after = c.set(1, "/after", 0, b"x");
    let last = acked.iter().map(|(_, r)| *r).max().unwrap_or(0);
    assert!(
        after > last,
        "rev {after} after the restart, last ack {last}"
    );
    for i in 0..3 {
        let reader = client(c.d(i));
        for (path, rev) in &acked {
            let (body, at) = reader.get(path, Some(after)).expect("get");
            assert_eq!(at, *rev, "node {i}: {path} at its acknowledged rev");
            let n = path.rsplit('/').next().expect("a name");
            assert_eq!(body, n.as_bytes());
        }
    }
    c.assert_consistent(&[]);
}

/// Lazy votes (docs/storage.md#lazy-votes): writes in a row through one
/// CAL are all answered, on every node at their revs, while the CAL
/// third in each Accept's order sends its vote with its next sync, which
/// `/$metrics` counts.
#[test]
fn writes_in_a_row_are_answered_while_the_third_cal_votes_lazily() {
    let mut c = Cluster::start_durable_with_web(3);
    let revs: Vec<i64> = (0..200)
        .map(|k| c.set(0, &format!("/lazy/{k}"), 0, b"v"))
        .collect();
    let lazy: f64 = (0..3)
        .map(|i| {
            let web = c.d(i).web().expect("the web viewer is on");
            let text = http_get(web, "/$metrics").text();
            let m = prometheus::parse(&text).unwrap_or_else(|e| panic!("/$metrics: {e}\n{text}"));
            m.value("doozer_consensus_lazy_votes_total", &[])
                .unwrap_or_else(|| panic!("node {i}: no lazy vote counter\n{text}"))
        })
        .sum();
    assert!(lazy > 0.0, "no lazy vote in 200 writes in a row");
    for i in 0..3 {
        for (k, rev) in revs.iter().enumerate() {
            assert_eq!(get_at_rev(c.d(i), &format!("/lazy/{k}"), *rev), b"v");
        }
    }
}

/// One CAL killed and started again on its DIR rejoins as the same CAL
/// (same id, same slot), with no operator action; a node whose DIR was
/// emptied is a new node (a new id, a slave).
#[test]
fn a_restarted_cal_rejoins_and_an_emptied_dir_makes_a_new_node() {
    let mut c = Cluster::start_durable(3, &[]);
    let slots = c.slots(0);
    let id1 = c.id(1).to_string();
    c.kill(1);
    c.set(0, "/while-down", 0, b"1");
    c.restart(1).expect("restart on its DIR");
    assert_eq!(node_id(c.d(1)), id1);
    c.wait_cal(1);
    assert_eq!(c.slots(0), slots, "the same CAL slots");
    let rev = c.set(1, "/via-restarted", 0, b"2");
    assert_eq!(get_at_rev(c.d(0), "/via-restarted", rev), b"2");

    let id2 = c.id(2).to_string();
    c.kill(2);
    let dir = c.d(2).data_dir().expect("a durable node");
    std::fs::remove_dir_all(&dir).expect("empty the DIR");
    std::fs::create_dir_all(&dir).expect("mkdir");
    c.restart(2).expect("restart on its DIR");
    let new_id = node_id(c.d(2));
    assert_ne!(new_id, id2, "an emptied DIR makes a new node");
    assert!(
        !c.slots(0).values().any(|v| *v == new_id),
        "the new node is a slave"
    );
    // It follows: a write through a CAL reaches it.
    let rev = c.set(0, "/seen-by-new", 0, b"3");
    assert_eq!(get_at_rev(c.d(2), "/seen-by-new", rev), b"3");
}

/// The number after `prefix` in `log`, if any (the last such line).
fn rev_after(log: &str, prefix: &str) -> Option<i64> {
    let at = log.rfind(prefix)? + prefix.len();
    let digits: String = log[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A node stopped by signals writes what it applied and left waiting for
/// a later sync (docs/storage.md#early-answers) before it exits, so it
/// comes back on its DIR at the rev it stopped at, not a little behind.
/// The CAL that votes lazily under writes through another often has
/// records waiting; stopped (SIGSTOP) with SIGINT and SIGTERM pending, it
/// reads both in one loop iteration and stops at once, with no output in
/// between that would sync them. Rounds until one stop found records
/// waiting (its log says how many it wrote; at most 40 rounds); every
/// round must come back at its stop's rev.
#[test]
fn a_cal_stopped_by_signals_comes_back_at_the_rev_it_stopped_at() {
    let mut c = Cluster::start_durable_with_web(3);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|k| {
            let (uri, stop, acked) = (c.d(0).uri(), Arc::clone(&stop), Arc::clone(&acked));
            thread::spawn(move || writer(uri, k, stop, acked))
        })
        .collect();
    let more_writes = |n: usize| {
        let from = acked.lock().unwrap().len();
        poll_until(CLUSTER_DEADLINE, "more writes", || {
            (acked.lock().unwrap().len() >= from + n).then_some(())
        });
    };
    more_writes(200);
    let lazy_votes = |i: usize| {
        let web = c.d(i).web().expect("the web viewer is on");
        let text = http_get(web, "/$metrics").text();
        let m = prometheus::parse(&text).unwrap_or_else(|e| panic!("/$metrics: {e}\n{text}"));
        m.value("doozer_consensus_lazy_votes_total", &[])
            .unwrap_or_else(|| panic!("node {i}: no lazy vote counter\n{text}"))
    };
    let (lazy, votes) = [1, 2]
        .map(|i| (i, lazy_votes(i)))
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("two CALs");
    assert!(votes > 0.0, "no lazy vote under writes in a row");
    let mut waited = 0;
    let mut rounds = 0;
    while rounds < 40 {
        let round = rounds;
        rounds += 1;
        if round > 0 {
            c.wait_cal(lazy);
            more_writes(100);
        }
        c.stop(lazy);
        let pid = c.d(lazy).pid();
        signal(pid, "INT");
        signal(pid, "TERM");
        c.cont(lazy);
        let status = poll_until(CLUSTER_DEADLINE, "the CAL to exit", || {
            c.nodes[lazy].d.try_wait()
        });
        c.nodes[lazy].state = State::Killed;
        let log = c.d(lazy).stderr();
        assert_eq!(
            status.code(),
            Some(143),
            "SIGTERM after SIGINT stops at once:\n{log}"
        );
        const STOP: &str = "data directory: stopping at rev ";
        let stopped = rev_after(&log, STOP).unwrap_or_else(|| panic!("no stop line:\n{log}"));
        let line = log[log.rfind(STOP).expect("the stop line")..]
            .lines()
            .next();
        // "... at rev N (K records that waited ...)" when K > 0.
        waited = line.and_then(|l| rev_after(l, " (")).unwrap_or(0);

        c.restart(lazy).expect("restart on its DIR");
        let log = c.d(lazy).stderr();
        let back = rev_after(&log, "store back at rev ")
            .unwrap_or_else(|| panic!("no restart line:\n{log}"));
        assert_eq!(
            back, stopped,
            "round {round}: the store on disk after the stop:\n{log}"
        );
        if waited > 0 {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer");
    }
    assert!(waited > 0, "no stop in {rounds} found records waiting");
    // Shown with --nocapture: how many stops it took.
    eprintln!("{rounds} stops; the last wrote {waited} waiting records");
}

/// GET `path` at `rev` (waits until the node reaches it).
fn get_at_rev(d: &Doozerd, path: &str, rev: i64) -> Vec<u8> {
    client(d).get(path, Some(rev)).expect("get").0.to_vec()
}

/// A DIR in use, another cluster's DIR, and a byte flipped inside the log
/// are refused at start-up with one line saying what and where; a torn
/// record at the tail is cut off, logged, and the node starts.
#[test]
fn a_dir_in_use_another_cluster_and_damage_are_refused_a_torn_tail_is_cut() {
    let dir = TempDir::new("durable-refuse");
    let d_str = dir.path().to_str().expect("utf-8").to_string();
    let mut d = start(None, dir.path(), &[]);
    let port = d.port();
    let c = client(&d);
    for i in 0..20 {
        c.set(&format!("/r/{i}"), 0, "x").expect("set");
    }
    drop(c);

    let other_port = free_port().to_string();
    let in_use = doozerd_run(&[
        "-l",
        &format!("127.0.0.1:{other_port}"),
        "-w",
        "false",
        "-d",
        &d_str,
    ]);
    assert_eq!(in_use.code, 1, "{in_use:?}");
    assert!(
        in_use.stderr.contains("in use by another doozerd")
            && in_use.stderr.contains(&format!("pid {}", d.pid())),
        "{}",
        in_use.stderr
    );
    d.kill();

    let other = doozerd_run(&[
        "-l",
        &format!("127.0.0.1:{other_port}"),
        "-w",
        "false",
        "-c",
        "other",
        "-d",
        &d_str,
    ]);
    assert_eq!(other.code, 1, "{other:?}");
    assert!(
        other
            .stderr
            .contains("belongs to cluster \"local\", not -c \"other\""),
        "{}",
        other.stderr
    );

    // Garbage after the last record of the newest segment, as a write
    // cut short leaves: cut off, logged, and every write is still there.
    let seg = segments(dir.path()).pop().expect("a segment");
    let good = records_end(&seg);
    let mut bytes = std::fs::read(&seg).expect("read segment");
    let garbage = [0x00, 0x00, 0x10, 0x00, 0x21, 0xde, 0xad];
    bytes[good..good + garbage.len()].copy_from_slice(&garbage);
    std::fs::write(&seg, &bytes).expect("write segment");
    let d = start(Some(port), dir.path(), &[]);
    let (body, _) = client(&d).get("/r/19", None).expect("get");
    assert_eq!(&body[..], b"x");
    assert!(
        d.stderr().contains("torn by a crash") && d.stderr().contains(&format!("offset {good}")),
        "{}",
        d.stderr()
    );
    drop(d);

    // One byte flipped in the middle of the segment's records: damage a
    // crash cannot explain. Refused, naming the file and the offset.
    let at = records_end(&seg) / 2;
    let mut bytes = std::fs::read(&seg).expect("read segment");
    bytes[at] ^= 0x40;
    std::fs::write(&seg, &bytes).expect("write segment");
    let bad = doozerd_run(&[
        "-l",
        &format!("127.0.0.1:{port}"),
        "-w",
        "false",
        "-d",
        &d_str,
    ]);
    assert_eq!(bad.code, 1, "{bad:?}");
    let name = seg.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        bad.stderr.contains(&name) && bad.stderr.contains("at byte"),
        "{}",
        bad.stderr
    );
}

/// A power failure in one multi-page append can leave a later page of it
/// on disk without an earlier one (docs/storage.md#a-torn-tail-or-damage):
/// a whole zero sector inside a record with good records after it. The
/// node starts, cutting the log at that record and logging it; everything
/// before it is there.
#[test]
fn a_record_missing_a_page_with_good_records_after_it_is_cut_at_start_up() {
    let dir = TempDir::new("durable-lost-page");
    let mut d = start(None, dir.path(), &[]);
    let port = d.port();
    let c = client(&d);
    for i in 0..10 {
        c.set(&format!("/p/{i}"), 0, "x").expect("set");
    }
    let big = vec![b'b'; 3_000];
    for i in 0..3 {
        c.set(&format!("/big/{i}"), 0, big.clone()).expect("set");
    }
    drop(c);
    d.kill();

    // The first record holding a big body: zero the first whole sector
    // inside it, as if that page never reached the disk.
    let seg = segments(dir.path()).pop().expect("a segment");
    let mut bytes = std::fs::read(&seg).expect("read segment");
    let (at, end) = doozer_proto::record::Records::new(&bytes)
        .map_while(|r| r.ok().map(|r| (r.offset as usize, r.end as usize)))
        .find(|(at, end)| end - at > 2_000)
        .expect("a record with a big body");
    let sector = (at / 512 + 1) * 512;
    assert!(sector + 512 <= end);
    bytes[sector..sector + 512].fill(0);
    std::fs::write(&seg, &bytes).expect("write segment");

    let d = start(Some(port), dir.path(), &[]);
    let log = d.stderr();
    assert!(
        log.contains("torn by a crash") && log.contains(&format!("offset {at}")),
        "{log}"
    );
    let c = client(&d);
    let (body, _) = c.get("/p/9", None).expect("get");
    assert_eq!(&body[..], b"x");
    let (_, rev) = c.get("/big/0", None).expect("get");
    assert_eq!(rev, 0, "/big/0 was in the cut records");
}

/// A tmpfs mounted for one test, unmounted (with everything in it) on
/// drop, also when the test fails.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = TempDir::new("durable-full");
        let path = dir.path().to_str().expect("utf-8").to_string();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &path])
            .output()
            .expect("run mount (the tests run as root)");
        assert!(out.status.success(), "mount tmpfs: {out:?}");
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// A full disk: writes are answered OTHER "disk: ..." and nothing
/// unpersisted is acknowledged; reads are served; once space is free
/// again, writes succeed, and everything acknowledged survives a restart.
#[test]
fn a_full_disk_refuses_writes_serves_reads_and_recovers() {
    let fs = Tmpfs::mount("8m");
    let dir = fs.dir.path().join("data");
    let mut d = start(None, &dir, &[]);
    let port = d.port();
    let c = client(&d);
    c.set("/before", 0, "kept").expect("set");
    // Fill the file system up to a few KiB, with a file the test can
    // delete later.
    let filler = fs.dir.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![7u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    // Writes until one is refused. A write whose changes were decided
    // when the disk filled waits for the disk (it is not acknowledged
    // before its records are durable): given up on after a while, its
    // outcome unknown, and the next one goes on a fresh connection.
    let body = vec![b'x'; 40 << 10];
    let mut acked = Vec::new();
    let mut refused = None;
    let mut conn = d.raw();
    for i in 0..400 {
        let set = req(Verb::Set)
            .path(&format!("/full/{i}"))
            .rev(0)
            .value(&body[..]);
        match call_timeout(&mut conn, set, Duration::from_secs(3)) {
            None => conn = d.raw(),
            Some(r) if err_of(&r).is_none() => acked.push((i, r.rev.expect("rev"))),
            Some(r) => {
                refused = Some((err_of(&r), r.err_detail.unwrap_or_default()));
                break;
            }
        }
    }
    let (code, detail) = refused.expect("a write refused once the disk is full");
    assert_eq!(code, Some(ErrCode::Other), "{detail}");
    assert!(detail.starts_with("disk: "), "{detail}");
    assert!(detail.contains("No space left"), "{detail}");
    // Reads are served meanwhile.
    let (b, _) = c
        .get("/before", None)
        .expect("a read while the disk is full");
    assert_eq!(&b[..], b"kept");
    assert!(d
        .stderr()
        .contains("consensus stops and writes are refused"));
    std::fs::remove_file(&filler).expect("free the space");
    let rev = poll_until(CLUSTER_DEADLINE, "writes to succeed again", || {
        c.set("/after-full", 0, "ok").ok()
    });
    assert!(
        d.stderr().contains("writes succeed again"),
        "{}",
        d.stderr()
    );
    drop(c);
    d.kill();
    let d = start(Some(port), &dir, &[]);
    let c = client(&d);
    for (i, r) in &acked {
        let (b, at) = c.get(&format!("/full/{i}"), None).expect("get");
        assert_eq!((b.len(), at), (body.len(), *r), "/full/{i}");
    }
    assert_eq!(c.get("/after-full", None).expect("get").1, rev);
}

/// `-restore` into an empty DIR seeds a durable cluster: after a restart
/// on the DIR alone, the restored files are there at their revs. Into a
/// DIR that holds a store, `-restore` is refused.
#[test]
fn restore_into_a_data_directory_persists_and_never_overwrites_a_store() {
    let src = Doozerd::start(&[]);
    let c = client(&src);
    let mut files = Vec::new();
    for i in 0..10 {
        let p = format!("/keep/{i}");
        files.push((p.clone(), c.set(&p, 0, format!("b{i}")).expect("set")));
    }
    let tmp = TempDir::new("durable-restore");
    let image = tmp.path().join("backup.img");
    let image_s = image.to_str().expect("utf-8");
    doozer(&src, &["backup", image_s], b"").expect_code(0);
    let dir = tmp.path().join("data");
    let mut d = start(None, &dir, &["-restore", image_s]);
    let port = d.port();
    d.kill();
    let d = start(Some(port), &dir, &[]);
    let c = client(&d);
    for (p, rev) in &files {
        assert_eq!(c.get(p, None).expect("get").1, *rev, "{p}");
    }
    drop(c);
    let d_s = dir.to_str().expect("utf-8");
    let listen = format!("127.0.0.1:{}", free_port());
    let out = doozerd_run(&["-l", &listen, "-w", "false", "-d", d_s, "-restore", image_s]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("in use by another doozerd"),
        "{}",
        out.stderr
    );
    drop(d);
    let out = doozerd_run(&["-l", &listen, "-w", "false", "-d", d_s, "-restore", image_s]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("already holds a store"),
        "{}",
        out.stderr
    );
}
