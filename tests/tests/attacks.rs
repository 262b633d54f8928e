//! Hostile and careless clients (issue 12; docs/behaviour.md, "Limits";
//! docs/reliability.md, "Hostile clients"): every attack of the issue,
//! scaled down to run in seconds, against real `doozerd` processes on
//! 127.0.0.1. Each checks that the node stays alive and answers, that its
//! peak resident memory (VmHWM) stays under [`RSS_BOUND_KIB`], that a
//! fresh client's GET during the attack is answered within [`GET_BOUND`],
//! and that the node told the attacker what docs/behaviour.md says.
//!
//! The attacks run one at a time (they measure latency and memory; two
//! at once on a small machine would measure each other).

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use doozer_tests::attack::{self, Report, WalkAt, FILE_BODY};
use doozer_tests::*;

/// Peak resident memory any attacked node may reach here: a quarter of
/// what the smallest attack of the issue took (970 MB), and the target
/// of the full-size runs (`scripts/attack`).
const RSS_BOUND_KIB: u64 = 256 << 10;
/// The slowest a fresh client's GET (or SET) may be during an attack.
/// Generous: debug builds on a busy 2-core machine; the full-size runs
/// report the real figures.
const GET_BOUND: Duration = Duration::from_secs(2);
/// Files of 48 KiB making the 19 MB store.
const FILES_19MB: usize = 400;
/// How long the unread attacks are held while the prober measures.
const HOLD: Duration = Duration::from_millis(1500);

static SERIAL: Mutex<()> = Mutex::new(());

/// One attack at a time, also after another test failed.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks what every attack must keep: the node alive and answering,
/// its peak RSS under the bound, every probe answered within the bound.
fn check(rep: &Report) {
    eprintln!("{}\n{}", Report::HEAD, rep.row());
    assert!(rep.alive, "{}: the node died or does not answer", rep.name);
    assert!(
        rep.peak_rss_kib > 0 && rep.peak_rss_kib <= RSS_BOUND_KIB,
        "{}: peak RSS {} KiB, bound {RSS_BOUND_KIB} KiB",
        rep.name,
        rep.peak_rss_kib
    );
    let p = &rep.probes;
    assert!(
        p.timeouts == 0 && p.failures.is_empty(),
        "{}: a fresh client was not answered: {} timeouts, failures {:?}",
        rep.name,
        p.timeouts,
        p.failures
    );
    assert!(
        p.get_ms.len() >= 3,
        "{}: only {} probes",
        rep.name,
        p.get_ms.len()
    );
    assert!(
        p.slowest() <= GET_BOUND,
        "{}: a fresh client waited {:?} (bound {GET_BOUND:?})",
        rep.name,
        p.slowest()
    );
}

/// What the attacker was answered, by kind, for failure messages.
fn answers(rep: &Report) -> String {
    format!("{}: answered {:?}", rep.name, rep.answers)
}

/// A node with its web viewer on a free port.
fn with_web() -> (Doozerd, SocketAddr) {
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    (Doozerd::builder().web(&web.to_string()).start(), web)
}

/// Item 1: 20,000 pipelined GETs of a 48 KiB file never read; 120 FOLLOW
/// frames on one connection (one copy, 119 refusals held behind it).
#[test]
fn pipelined_gets_and_follow_frames_never_read() {
    let _s = serial();
    let mut d = Doozerd::start(&[]);
    check(&attack::get_unread(&mut d, 20_000, HOLD));

    let mut d = Doozerd::start(&[]);
    let rep = attack::follow_frames(&mut d, FILES_19MB, 120, HOLD);
    check(&rep);
    let t = &rep.answers;
    assert!(attack::has(t, "SNAPSHOT", 1), "{}", answers(&rep));
    assert!(attack::has(t, "READY", 1), "{}", answers(&rep));
    assert!(t["FILE"] >= FILES_19MB, "{}", answers(&rep));
    assert!(
        attack::has(t, attack::ALREADY_FOLLOWS, 119),
        "{}",
        answers(&rep)
    );
}

/// Item 2: 300 FOLLOWs on one connection make one copy; 60 FOLLOW
/// connections that never read each get their copy a chunk at a time;
/// the 257th follower is refused.
#[test]
fn follows_on_one_connection_and_unread_followers() {
    let _s = serial();
    let mut d = Doozerd::start(&[]);
    let rep = attack::follow_frames(&mut d, FILES_19MB, 300, Duration::from_millis(500));
    check(&rep);
    assert!(
        attack::has(&rep.answers, "SNAPSHOT", 1),
        "{}",
        answers(&rep)
    );
    assert!(
        attack::has(&rep.answers, attack::ALREADY_FOLLOWS, 299),
        "{}",
        answers(&rep)
    );

    let mut d = Doozerd::start(&[]);
    let rep = attack::follow_unread(&mut d, FILES_19MB, 60, HOLD);
    check(&rep);
    assert!(
        attack::has(&rep.answers, "SNAPSHOT", 60),
        "{}",
        answers(&rep)
    );

    let d = Doozerd::start(&[]);
    let t = attack::followers_limit(&d, 257);
    assert_eq!(t.get("SNAPSHOT"), Some(&256), "{t:?}");
    assert_eq!(t.get(attack::TOO_MANY_FOLLOWERS), Some(&1), "{t:?}");
}

/// Item 3: 100 connections × 200 unread GETs of 48 KiB, and 500 × 20
/// (a drained write buffer is freed: each once held 1 MB of answers, and
/// 500 of them kept 470 MiB); 20,000 WAITs on one connection (1,000 wait,
/// the rest are refused);
/// 1,000 WAITs on a 4,000-byte glob (about 1 MiB of them wait);
/// 100 GETs at a future rev with 1 MiB values (answered with the file).
#[test]
fn unread_connections_waits_and_future_reads() {
    let _s = serial();
    let mut d = Doozerd::start(&[]);
    check(&attack::gets_many_conns(&mut d, 100, 200, HOLD));

    let mut d = Doozerd::start(&[]);
    check(&attack::gets_many_conns(&mut d, 500, 20, HOLD));

    let mut d = Doozerd::start(&[]);
    let rep = attack::waits_one_conn(&mut d, 20_000);
    check(&rep);
    assert_eq!(rep.answers.len(), 1, "{}", answers(&rep));
    assert!(
        attack::has(&rep.answers, attack::TOO_MANY_ON_CONN, 19_000),
        "{}",
        answers(&rep)
    );

    let mut d = Doozerd::start(&[]);
    let (len, total) = (4_000, 1_000);
    let rep = attack::waits_long_glob(&mut d, 10, total / 10, len);
    check(&rep);
    assert_eq!(rep.answers.len(), 1, "{}", answers(&rep));
    let refused = rep.answers.get(attack::TOO_MANY_ON_NODE).copied();
    let waiting = total - refused.unwrap_or(0);
    let fit = (1 << 20) / len; // 1 MiB of glob text
    assert!(
        (fit - 1..=fit + 1).contains(&waiting),
        "{waiting} WAITs of {len} bytes waiting; {}",
        answers(&rep)
    );

    let mut d = Doozerd::start(&[]);
    let rep = attack::future_gets(&mut d, 100, 1 << 20);
    check(&rep);
    assert_eq!(rep.answers.len(), 1, "{}", answers(&rep));
    assert!(
        attack::has(&rep.answers, FILE_BODY, 100),
        "{}",
        answers(&rep)
    );
}

/// Item 4: bursts of `WALK /**` at offset 2³¹−1 (answered RANGE at once)
/// and at the last file (a whole walk each) on 20,000 files; event
/// streams of a 19 MB store opened 26 a second, and 100 at once, never
/// read.
#[test]
fn walk_bursts_and_unread_event_streams() {
    let _s = serial();
    let mut d = Doozerd::start(&[]);
    let rep = attack::walk_bursts(&mut d, 20_000, WalkAt::Far, Duration::from_secs(2));
    check(&rep);
    assert_eq!(rep.answers.len(), 1, "{}", answers(&rep));
    assert!(rep.answers["RANGE"] >= 100, "{}", answers(&rep));

    let mut d = Doozerd::start(&[]);
    let rep = attack::walk_bursts(&mut d, 20_000, WalkAt::Last, Duration::from_secs(2));
    check(&rep);
    assert_eq!(rep.answers.len(), 1, "{}", answers(&rep));
    assert!(rep.answers["ok"] >= 100, "{}", answers(&rep));

    let (mut d, web) = with_web();
    let rep = attack::events_rate(&mut d, web, FILES_19MB, 26, Duration::from_secs(2));
    check(&rep);
    assert_eq!(rep.answers.len(), 1, "{}", answers(&rep));
    assert!(rep.answers["HTTP/1.1 200 OK"] >= 40, "{}", answers(&rep));

    let (mut d, web) = with_web();
    let rep = attack::events_unread(&mut d, web, FILES_19MB, 100, HOLD);
    check(&rep);
    assert!(
        attack::has(&rep.answers, "HTTP/1.1 200 OK", 100),
        "{}",
        answers(&rep)
    );
}

/// Beyond the issue: 60 event streams of a 19 MB store never read while
/// a client SETs 100 times a second: a listing goes on only as its stream
/// drains (a chunk added for every change piled up the whole listing
/// behind each stream: 340 MiB for 20 streams in 10 s).
#[test]
fn unread_event_streams_while_the_store_changes() {
    let _s = serial();
    let (mut d, web) = with_web();
    let load = (100, Duration::from_secs(5));
    let rep = attack::events_with_writes(&mut d, web, FILES_19MB, 60, load);
    check(&rep);
    assert!(
        attack::has(&rep.answers, "HTTP/1.1 200 OK", 60),
        "{}",
        answers(&rep)
    );
    assert_eq!(rep.answers.len(), 2, "{}", answers(&rep));
    assert!(rep.answers["ok"] >= 1, "{}", answers(&rep));
}

/// Item 5: with 256 descriptors (hard limit too), 300 idle partial heads
/// on `-w`: the node keeps at most an eighth of what it may open for the
/// web (24), closes the rest at once, keeps serving clients, and closes
/// the heads it kept after its 10 s head deadline.
#[test]
fn slowloris_on_the_viewer_leaves_clients_served() {
    let _s = serial();
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let mut d = Doozerd::builder()
        .web(&web.to_string())
        .limit(Limit::Files, 256, 256)
        .start();
    // The head deadline (10 s), the once-a-second sweep, and slack.
    let watch = Duration::from_secs(16);
    let s = attack::slowloris(&mut d, web, 300, watch);
    check(&s.report);
    let max_web = (256 - 64) / 8; // docs/behaviour.md, "Limits"
    assert!(
        s.held >= 1 && s.held <= max_web,
        "{} heads held (limit {max_web}): {:?}",
        s.held,
        s.report.notes
    );
    assert_eq!(s.closed_at_once + s.held, 300, "{:?}", s.report.answers);
    assert_eq!(
        s.closed_later, s.held,
        "idle heads still open after {watch:?}: {:?}",
        s.report.notes
    );
    assert!(
        s.web_ok_after,
        "the viewer does not answer after the attack"
    );
}

/// Item 4 on a cluster: two connections flood one CAL of three
/// (`-timeout 3`) with whole-store WALKs on 20,000 files for 5 s; no CAL
/// is kicked, writes through another CAL go on, the flooded CAL answers.
#[test]
fn a_flooded_cal_is_not_kicked() {
    let _s = serial();
    let files = 20_000;
    let mut c = attack::flood_cluster(&["-timeout", "3"], files);
    let f = attack::walk_flood_cluster(&mut c, 2, files, 2, Duration::from_secs(5));
    check(&f.report);
    assert!(f.report.answers["ok"] >= 100, "{}", answers(&f.report));
    assert_eq!(f.slots_before, f.slots_after, "a CAL was kicked");
    assert!(f.kick_lines.is_empty(), "{:?}", f.kick_lines);
    let w = &f.writes;
    assert!(
        w.timeouts == 0 && w.failures.is_empty() && !w.set_ms.is_empty(),
        "writes through another CAL: {} ok, {} timeouts, failures {:?}",
        w.set_ms.len(),
        w.timeouts,
        w.failures
    );
    assert!(
        w.slowest() <= GET_BOUND,
        "a SET through another CAL took {:?}",
        w.slowest()
    );
}
