//! The nemesis suite, short version (issue 11): named scenarios of
//! `doozer_tests::nemesis::scenarios` on real processes, each on a fresh
//! cluster whose nodes have their own loopback addresses, with links cut
//! by iptables (root needed; `scripts/test` installs iptables). Every
//! scenario runs a recorded workload and a watcher per node through one
//! fault, heals it, and checks everything listed in
//! `doozer_tests::nemesis`; the test fails listing every anomaly found.
//!
//! Scenarios run one at a time (a lock): several clusters with
//! `-timeout 3` at once on a 2-core machine would silence CALs that no
//! fault touched. The other scenarios (and the 60 s majority partition)
//! run with `scripts/soak all`; randomized schedules with `scripts/soak`
//! (every other pair of its clusters with `-d` on every node, and restarts
//! among its faults).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use doozer_tests::nemesis::net::{links_between, list_rules, Net};
use doozer_tests::nemesis::scenarios::{assert_clean, named, run};
use doozer_tests::*;

/// One scenario at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs the named scenario and fails on any anomaly.
fn scenario(name: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = named(name).unwrap_or_else(|| panic!("no scenario {name}"));
    let rep = run(s, 0x5eed ^ name.len() as u64, 1);
    assert_clean(name, &rep);
}

/// Whether the filter table lists `chains.0` and a jump to `chains.1`
/// (the chains of a `Net`).
fn chains_listed(chains: &(String, String)) -> (bool, bool) {
    let rules = list_rules().expect("iptables -S");
    (
        rules.contains(&format!("-N {}", chains.0)),
        rules
            .iter()
            .any(|r| r.ends_with(&format!("-j {}", chains.1))),
    )
}

/// The fault machinery itself: a one-way cut drops datagrams from one
/// host's address to another's but not back; a cut of the TCP direction
/// stops a connection opened by a process running with the cutting host's
/// gid (the `doozer` command, as gid A, reading from a node on host B);
/// healing restores both; dropping the `Net` removes every rule.
#[test]
fn net_cuts_datagrams_and_connections_one_way_and_cleans_up() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new();
    let chains = net.chains();
    let (a, b) = (net.host(), net.host());
    assert_eq!(chains_listed(&chains), (true, true));

    let ua = UdpSocket::bind((a.ip, 0)).expect("bind a");
    let ub = UdpSocket::bind((b.ip, 0)).expect("bind b");
    for s in [&ua, &ub] {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
    }
    let delivered = |from: &UdpSocket, to: &UdpSocket, what: &[u8]| {
        from.send_to(what, to.local_addr().unwrap())
            .expect("send_to");
        let mut buf = [0u8; 64];
        // Half a second is no speed bound: a dropped datagram never comes.
        matches!(to.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == what)
    };
    assert!(delivered(&ua, &ub, b"before"));
    net.cut(&[(a, b)]);
    assert!(
        !delivered(&ua, &ub, b"cut a to b"),
        "a datagram from a reached b across the cut"
    );
    assert!(
        delivered(&ub, &ua, b"b to a"),
        "the cut from a to b also cut b to a"
    );
    net.heal(&[(a, b)]);
    assert!(delivered(&ua, &ub, b"healed"));

    // TCP: a node on host b; the `doozer` command runs as host a's gid.
    let node = Doozerd::builder().ip(b.ip).gid(b.gid).start();
    let get_as_a = || {
        let mut cmd = Command::new(doozer_bin());
        cmd.args(["-a", &node.uri(), "get", "/ctl/name"]);
        std::os::unix::process::CommandExt::gid(&mut cmd, a.gid);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn doozer");
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let mut out = String::new();
                child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut out)
                    .unwrap();
                return status.success() && out == "local";
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Three seconds without an answer across a cut link: no answer.
        let _ = child.kill();
        let _ = child.wait();
        false
    };
    assert!(
        get_as_a(),
        "doozer as gid a could not read from the node before any cut"
    );
    net.cut(&links_between(&[a], &[b]));
    assert!(
        !get_as_a(),
        "doozer as gid a read from the node across a cut"
    );
    // The test process (gid 0) is never cut off.
    assert_eq!(node.raw().must_get("/ctl/name").0, b"local");
    net.heal_all();
    assert!(get_as_a(), "no answer after the heal");

    drop(net);
    assert_eq!(chains_listed(&chains), (false, false), "rules left behind");
    // Plain loopback is untouched throughout.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    c.write_all(b"x").unwrap();
}

/// A CAL paused for 3 × `-timeout`: kicked, the spare slave takes the
/// slot, the woken CAL steps down and follows as a slave.
#[test]
fn pause_long() {
    scenario("pause-long");
}

/// A CAL SIGKILLed and replaced by a new node.
#[test]
fn kill_replace() {
    scenario("kill-replace");
}

/// Only the link between two CALs is down, for 3 × `-timeout`: nobody
/// may be kicked.
#[test]
fn link_down() {
    scenario("link-down");
}

/// Five CALs, two cut off for half the timeout: nobody kicked, writes go
/// on.
#[test]
fn minority_partition() {
    scenario("minority-partition");
}

/// Three CALs, one cut off for 4 × `-timeout`: only it is kicked.
#[test]
fn majority_partition() {
    scenario("majority-partition");
}

/// Five CALs as 2|2|1 for 2 × `-timeout`, then healed.
#[test]
fn no_majority_5() {
    scenario("no-majority-5");
}

/// A CAL that cannot send for 3 × `-timeout`.
#[test]
fn mute() {
    scenario("mute");
}

/// A CAL that can send but not receive for 2 × `-timeout`: the others
/// still hear it, so nobody is silent to a majority and no other CAL may
/// be kicked.
#[test]
fn deaf() {
    scenario("deaf");
}

/// A CAL's links flapping.
#[test]
fn flap() {
    scenario("flap");
}

/// Every node with `-d`: a CAL SIGKILLed under the workload and started
/// again on its data directory after T/3 comes back as the same CAL
/// (same id), nobody kicked, nothing acknowledged lost.
#[test]
fn restart_cal() {
    scenario("restart-cal");
}

/// Every node with `-d`, all SIGKILLed at once under the workload (a
/// power cut) and started again: every acknowledged write is in the
/// history at its rev, the stores agree, writes and watches go on.
#[test]
fn restart_all() {
    scenario("restart-all");
}
