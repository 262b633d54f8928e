//! Multi-node helpers (docs/reference.md#cluster-membership): a [`Cluster`]
//! of real `doozerd` processes grown through the operator's path (seed,
//! `-a` slaves, empty `/ctl/cal/N` slots created with the `doozer` CLI),
//! SIGSTOP/SIGCONT of single nodes, whole-store comparison at one explicit
//! rev, and a recorded [`Workload`] of concurrent clients for the checker
//! in [`crate::history`].
//!
//! Nothing here sleeps to synchronise: every "eventually" is a
//! [`poll_until`] with a generous bound ([`CLUSTER_DEADLINE`]), because
//! consensus over UDP between debug builds on a loaded 2-core machine can be
//! slow, and the tests must not assert speed.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use crate::history::{format_history, Call, Op, Outcome, Recorder};
use crate::nemesis::Net;
use crate::{
    doozer_with, err_of, poll_until, req, value_of, Doozerd, ErrCode, RawConn, Recv, Request,
    RequestExt, Response, TlsFiles, Verb, XorShift,
};

/// Bound for anything a cluster must eventually do (a promotion, a kick
/// after `-timeout`, a slave catching up). Generous: it is a failure bound,
/// not a speed requirement.
pub const CLUSTER_DEADLINE: Duration = Duration::from_secs(60);

/// How long a workload client waits for one response before it records
/// the operation as timed out (outcome unknown) and reconnects.
pub const OP_TIMEOUT: Duration = Duration::from_secs(15);

/// History kept by every node of a [`Cluster`]: large enough that every
/// acknowledged write of a test stays readable at its own rev, so
/// [`Cluster::assert_consistent`] can check each one (the default 2000 revs
/// can pass in well under a second under a busy workload: the CALs fill
/// each other's seqns with NOPs).
pub const HIST: &str = "1000000";

/// A file as WALK reports it: `(path, rev, body)`.
pub type Entry = (String, i64, Vec<u8>);

/// What the test did to a node's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Running normally.
    Running,
    /// SIGSTOPped (still killed by the harness's SIGKILL on drop).
    Stopped,
    /// SIGKILLed by the test.
    Killed,
}

/// One node of a [`Cluster`].
#[derive(Debug)]
pub struct Node {
    /// The process (SIGKILLed on drop, also when stopped).
    pub d: Doozerd,
    /// Its id (SELF).
    pub id: String,
    /// What the test did to it.
    pub state: State,
}

/// Real `doozerd` processes forming one cluster. Node 0 is the seed; the
/// others attach with `-a`. Every node gets `-hist` [`HIST`] and the
/// cluster's common flags. Dropping the cluster kills every process.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes, in the order they were started.
    pub nodes: Vec<Node>,
    /// Flags given to every node (after `-hist`).
    args: Vec<String>,
    /// SETs the test made through [`Cluster::set`] and that succeeded:
    /// each must be readable at its rev on every node at the end.
    acked: Vec<Entry>,
    /// `DOOZER_RWSECRET` of every node, if the cluster has one; the
    /// helpers' writes present it (ACCESS, or `sk=` for the CLI).
    secret: Option<String>,
    /// TLS files every node serves with, if the cluster serves TLS.
    tls: Option<TlsFiles>,
    /// Whether every node serves the web viewer, each on a free port
    /// ([`Doozerd::web`]).
    web: bool,
    /// When set, every node gets its own loopback address and group id
    /// from it, so that links between nodes can be cut.
    net: Option<Net>,
    /// Whether every node has a data directory of its own
    /// ([`DoozerdBuilder::durable`](crate::DoozerdBuilder::durable)), so
    /// that [`Cluster::restart`] brings it back with its id and store.
    durable: bool,
}

/// Sends `signal` (`TERM`, `INT`, `STOP`, `CONT`, ...) to `pid` with the
/// `kill` command. Only ever called with the PID of a process the test
/// started.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("run kill -s {signal} {pid}: {e}"));
    assert!(status.success(), "kill -s {signal} {pid}: {status}");
}

/// SIGSTOPs process `pid` (one the test started) and waits until the
/// kernel shows it stopped.
pub fn stop_pid(pid: u32) {
    signal(pid, "STOP");
    poll_until(crate::DEADLINE, "the process to be stopped", || {
        (proc_state(pid) == Some('T')).then_some(())
    });
}

/// SIGCONTs process `pid` and waits until it is no longer stopped.
pub fn cont_pid(pid: u32) {
    signal(pid, "CONT");
    poll_until(crate::DEADLINE, "the process to run again", || {
        (proc_state(pid) != Some('T')).then_some(())
    });
}

/// The one-letter process state from `/proc/<pid>/stat` (`T` = stopped),
/// so the test knows the signal took effect before it goes on.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: the state
    // is the first field after the last ')'.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Sends `req` on `conn` with a fresh tag and waits up to `timeout` for
/// its response. `None` if nothing came (the outcome is then unknown) or
/// the connection closed. Responses with other tags (of requests given up
/// on earlier) are skipped.
pub fn call_timeout(conn: &mut RawConn, mut req: Request, timeout: Duration) -> Option<Response> {
    let tag = conn.tag();
    req.tag = Some(tag);
    conn.send(&req);
    recv_tag_timeout(conn, tag, timeout)
}

/// Waits up to `timeout` for the response with `tag` on `conn`, skipping
/// others; `None` on timeout or a closed connection.
pub fn recv_tag_timeout(conn: &mut RawConn, tag: i32, timeout: Duration) -> Option<Response> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        match conn.recv_any(deadline - now) {
            Recv::Response(r) if r.tag == Some(tag) => return Some(r),
            Recv::Response(_) => continue,
            _ => return None,
        }
    }
}

/// The current rev of `d`, or `None` if it does not answer within a
/// second (used while polling, so a slow node just means "not yet").
pub(crate) fn rev_of(d: &Doozerd) -> Option<i64> {
    let mut c = d.raw();
    call_timeout(&mut c, req(Verb::Rev), Duration::from_secs(1))
        .filter(|r| r.err_code.is_none())
        .and_then(|r| r.rev)
}

/// Reads `path` on `d` at `rev`, waiting (the node parks a read at a rev
/// it has not reached yet) up to [`CLUSTER_DEADLINE`]. Panics on an error
/// or no answer; returns `(body, file rev)`.
pub fn get_at(d: &Doozerd, path: &str, rev: i64) -> (Vec<u8>, i64) {
    let mut c = d.raw();
    let r = call_timeout(&mut c, req(Verb::Get).path(path).rev(rev), CLUSTER_DEADLINE)
        .unwrap_or_else(|| {
            panic!(
                "GET {path} at rev {rev} on {}: no answer within {CLUSTER_DEADLINE:?}",
                d.addr()
            )
        });
    assert_eq!(
        err_of(&r),
        None,
        "GET {path} at rev {rev} on {}: {r:?}",
        d.addr()
    );
    (value_of(&r), r.rev.unwrap_or(0))
}

/// A short description of where two WALK listings differ, for a failure
/// message (whole stores would drown it).
pub(crate) fn describe_diff(a: &[Entry], b: &[Entry]) -> String {
    let ma: BTreeMap<&str, (i64, &[u8])> = a
        .iter()
        .map(|(p, r, v)| (p.as_str(), (*r, v.as_slice())))
        .collect();
    let mb: BTreeMap<&str, (i64, &[u8])> = b
        .iter()
        .map(|(p, r, v)| (p.as_str(), (*r, v.as_slice())))
        .collect();
    let mut out = String::new();
    for (p, x) in &ma {
        match mb.get(p) {
            None => out.push_str(&format!("  {p}: only in the first (rev {})\n", x.0)),
            Some(y) if y != x => out.push_str(&format!(
                "  {p}: rev {} {:?} vs rev {} {:?}\n",
                x.0,
                String::from_utf8_lossy(x.1),
                y.0,
                String::from_utf8_lossy(y.1)
            )),
            _ => {}
        }
    }
    for (p, y) in &mb {
        if !ma.contains_key(p) {
            out.push_str(&format!("  {p}: only in the second (rev {})\n", y.0));
        }
    }
    out
}

impl Cluster {
    /// Seeds a new cluster: one node without `-a`, the only CAL. `args`
    /// are given to this node and every node started later.
    pub fn seed(args: &[&str]) -> Cluster {
        Cluster::seed_with_secret(args, None)
    }

    /// [`Cluster::seed`], every node started with `DOOZER_RWSECRET` =
    /// `secret` when given.
    pub fn seed_with_secret(args: &[&str], secret: Option<&str>) -> Cluster {
        Cluster::seed_with(args, secret, None)
    }

    /// [`Cluster::seed`], with every node of the cluster serving TLS with
    /// `tls` (and attaching over TLS) when given.
    pub fn seed_with_tls(args: &[&str], tls: Option<&TlsFiles>) -> Cluster {
        Cluster::seed_with(args, None, tls)
    }

    /// [`Cluster::seed`], every node (this one and later ones) on its own
    /// [`Host`](crate::nemesis::Host) of `net`.
    pub fn seed_on(net: &Net, args: &[&str]) -> Cluster {
        Cluster::seed_full(args, None, None, Some(net), false, false)
    }

    fn seed_with(args: &[&str], secret: Option<&str>, tls: Option<&TlsFiles>) -> Cluster {
        Cluster::seed_full(args, secret, tls, None, false, false)
    }

    fn seed_full(
        args: &[&str],
        secret: Option<&str>,
        tls: Option<&TlsFiles>,
        net: Option<&Net>,
        web: bool,
        durable: bool,
    ) -> Cluster {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut all = vec!["-hist".to_string(), HIST.to_string()];
        all.extend(args.iter().cloned());
        let mut c = Cluster {
            nodes: Vec::new(),
            args,
            acked: Vec::new(),
            secret: secret.map(str::to_string),
            tls: tls.cloned(),
            net: net.cloned(),
            web,
            durable,
        };
        let d = c.builder().args(all).start();
        let id = node_id(&d);
        c.nodes.push(Node {
            d,
            id,
            state: State::Running,
        });
        c
    }

    /// A builder for a node of this cluster (its secret and TLS files, if
    /// any; a fresh host of its net, if it has one).
    fn builder(&self) -> crate::DoozerdBuilder {
        let b = match &self.secret {
            Some(s) => Doozerd::builder().env("DOOZER_RWSECRET", s),
            None => Doozerd::builder(),
        };
        let b = match &self.net {
            Some(net) => {
                let h = net.host();
                b.ip(h.ip).gid(h.gid)
            }
            None => b,
        };
        let b = if self.web {
            b.web(&format!("127.0.0.1:{}", crate::free_port()))
        } else {
            b
        };
        let b = if self.durable { b.durable() } else { b };
        match &self.tls {
            Some(t) => b.tls(t),
            None => b,
        }
    }

    /// Nodes started from now on serve the web viewer, each on a free
    /// port (`/$metrics`, `/$stats.json`).
    pub fn serve_web(&mut self) {
        self.web = true;
    }

    /// A cluster of nodes the test started itself (e.g. booted through a
    /// name service); `args` are given to nodes started later.
    pub fn adopt(nodes: Vec<Doozerd>, args: &[&str]) -> Cluster {
        Cluster {
            nodes: nodes
                .into_iter()
                .map(|d| Node {
                    id: node_id(&d),
                    d,
                    state: State::Running,
                })
                .collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            acked: Vec::new(),
            secret: None,
            tls: None,
            net: None,
            web: false,
            durable: false,
        }
    }

    /// `doozer:?ca=...` with every node's address.
    pub fn uri_all(&self) -> String {
        let cas: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("ca={}", n.d.addr()))
            .collect();
        format!("doozer:?{}", cas.join("&"))
    }

    /// The cluster's secret, if it has one.
    pub fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }

    /// The `doozer:` URI of node `i`, with `sk=` when the cluster has a
    /// secret.
    pub fn uri(&self, i: usize) -> String {
        match &self.secret {
            Some(s) => format!("{}&sk={s}", self.d(i).uri()),
            None => self.d(i).uri(),
        }
    }

    /// A raw connection to node `i` that may write (it presented the
    /// secret, if there is one).
    pub fn writer(&self, i: usize) -> RawConn {
        let mut c = self.d(i).raw();
        if let Some(s) = &self.secret {
            let r = c.access(s.as_bytes());
            assert_eq!(err_of(&r), None, "ACCESS on node {i}: {r:?}");
        }
        c
    }

    /// A cluster of `cals` CALs: the seed, then one node at a time attached
    /// to the seed and promoted into a slot `/ctl/cal/i` that the operator
    /// creates (empty) with the `doozer` CLI. Node `i` ends up in slot `i`:
    /// it is the only slave when its slot appears.
    pub fn start(cals: usize, args: &[&str]) -> Cluster {
        Cluster::start_with_secret(cals, args, None)
    }

    /// [`Cluster::start`], every node started with `DOOZER_RWSECRET` =
    /// `secret` when given.
    pub fn start_with_secret(cals: usize, args: &[&str], secret: Option<&str>) -> Cluster {
        Cluster::grow(Cluster::seed_with_secret(args, secret), cals)
    }

    /// [`Cluster::start`], every node serving the web viewer (so its
    /// `/$stats.json` and `/$metrics`) on a free port of its own.
    pub fn start_with_web(cals: usize, args: &[&str]) -> Cluster {
        Cluster::grow(
            Cluster::seed_full(args, None, None, None, true, false),
            cals,
        )
    }

    /// [`Cluster::start`], every node on its own
    /// [`Host`](crate::nemesis::Host) of `net`.
    pub fn start_on(net: &Net, cals: usize, args: &[&str]) -> Cluster {
        Cluster::grow(Cluster::seed_on(net, args), cals)
    }

    /// [`Cluster::start`], every node with a data directory of its own
    /// (`-d`), so that [`Cluster::restart`] brings a killed node back.
    pub fn start_durable(cals: usize, args: &[&str]) -> Cluster {
        Cluster::grow(
            Cluster::seed_full(args, None, None, None, false, true),
            cals,
        )
    }

    /// [`Cluster::start_durable`], every node serving the web viewer too
    /// ([`Cluster::start_with_web`]).
    pub fn start_durable_with_web(cals: usize) -> Cluster {
        Cluster::grow(Cluster::seed_full(&[], None, None, None, true, true), cals)
    }

    /// [`Cluster::start_on`], every node with a data directory of its own
    /// (`-d`), so that [`Cluster::restart`] brings a killed node back.
    pub fn start_durable_on(net: &Net, cals: usize, args: &[&str]) -> Cluster {
        Cluster::grow(
            Cluster::seed_full(args, None, None, Some(net), false, true),
            cals,
        )
    }

    /// Whether every node has a data directory of its own
    /// ([`Cluster::start_durable`]).
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Grows a freshly seeded cluster to `cals` CALs, one slave and one
    /// slot at a time.
    fn grow(mut c: Cluster, cals: usize) -> Cluster {
        for slot in 1..cals {
            let i = c.attach(0, &[]);
            c.add_slot(0, slot);
            let path = c.wait_cal(i);
            assert_eq!(
                path,
                format!("/ctl/cal/{slot}"),
                "node {i} took another slot"
            );
        }
        c
    }

    /// Starts a node with `-a <node to's address>` (a slave until it wins a
    /// free slot) and returns its index.
    pub fn attach(&mut self, to: usize, extra: &[&str]) -> usize {
        self.attach_with(to, None, extra)
    }

    /// [`Cluster::attach`], listening on `port` (e.g. the address of a
    /// node that stopped: a replacement started with the same flags, as
    /// in a rolling restart, docs/cluster.md).
    pub fn attach_on(&mut self, to: usize, port: u16, extra: &[&str]) -> usize {
        self.attach_with(to, Some(port), extra)
    }

    fn attach_with(&mut self, to: usize, port: Option<u16>, extra: &[&str]) -> usize {
        let target = self.nodes[to].d.addr().to_string();
        let mut all = vec![
            "-hist".to_string(),
            HIST.to_string(),
            "-a".to_string(),
            target,
        ];
        all.extend(self.args.iter().cloned());
        all.extend(extra.iter().map(|s| s.to_string()));
        let b = self.builder().args(all);
        let d = match port {
            Some(p) => b.port(p),
            None => b,
        }
        .start();
        let id = node_id(&d);
        self.nodes.push(Node {
            d,
            id,
            state: State::Running,
        });
        self.nodes.len() - 1
    }

    /// The operator adds CAL capacity: `doozer set /ctl/cal/<slot> 0` with
    /// empty stdin, against node `via`. Returns the rev the CLI printed.
    pub fn add_slot(&self, via: usize, slot: usize) -> i64 {
        let path = format!("/ctl/cal/{slot}");
        let uri = self.uri(via);
        let out = doozer_with(&[("DOOZER_URI", uri.as_str())], &["set", &path, "0"], b"").ok();
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("doozer set {path} printed {out:?}: {e}"))
    }

    /// Node `i`'s process.
    pub fn d(&self, i: usize) -> &Doozerd {
        &self.nodes[i].d
    }

    /// Node `i`'s id.
    pub fn id(&self, i: usize) -> &str {
        &self.nodes[i].id
    }

    /// Indices of the nodes the test has neither stopped nor killed.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].state == State::Running)
            .collect()
    }

    /// The CAL slots as node `via` sees them now: slot path → body (an id,
    /// or empty for a free slot).
    pub fn slots(&self, via: usize) -> BTreeMap<String, String> {
        self.d(via)
            .raw()
            .walk_all("/ctl/cal/*", None)
            .into_iter()
            .map(|(p, _, v)| (p, String::from_utf8_lossy(&v).into_owned()))
            .collect()
    }

    /// Waits until node `i` is a CAL as seen by itself: its id fills a
    /// `/ctl/cal/*` slot and its `/ctl/node/<id>/writable` reads `true`
    /// (which a promoted node writes only once it accepts writes). Returns
    /// the slot's path.
    pub fn wait_cal(&self, i: usize) -> String {
        let id = self.id(i).to_string();
        let writable = format!("/ctl/node/{id}/writable");
        poll_until(
            CLUSTER_DEADLINE,
            &format!("node {i} ({id}) to become a writable CAL"),
            || {
                let mut c = self.d(i).raw();
                let slot = c
                    .walk_all("/ctl/cal/*", None)
                    .into_iter()
                    .find(|(_, _, v)| v == id.as_bytes())?;
                (c.must_get(&writable).0 == b"true").then_some(slot.0)
            },
        )
    }

    /// SET through node `i`, which must succeed; the write is remembered
    /// for [`Cluster::assert_consistent`]. Returns its rev.
    pub fn set(&mut self, i: usize, path: &str, rev: i64, body: &[u8]) -> i64 {
        let mut c = self.writer(i);
        let r = call_timeout(
            &mut c,
            req(Verb::Set).path(path).rev(rev).value(body),
            CLUSTER_DEADLINE,
        )
        .unwrap_or_else(|| panic!("SET {path} on node {i}: no answer"));
        assert_eq!(err_of(&r), None, "SET {path} on node {i}: {r:?}");
        let at = r.rev.expect("SET response has a rev");
        self.acked.push((path.to_string(), at, body.to_vec()));
        at
    }

    /// SIGSTOPs node `i` and waits until the kernel shows it stopped.
    pub fn stop(&mut self, i: usize) {
        stop_pid(self.d(i).pid());
        self.nodes[i].state = State::Stopped;
    }

    /// SIGCONTs node `i` and waits until it is no longer stopped.
    pub fn cont(&mut self, i: usize) {
        cont_pid(self.d(i).pid());
        self.nodes[i].state = State::Running;
    }

    /// Starts node `i` again as it was started ([`Doozerd::restart`]; SIGKILLed
    /// first if it runs): with `-d`, the same node, its id and store.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        match self.restart_all(&[i]).pop() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// [`Cluster::restart`] of every node of `nodes` at once (all started,
    /// then each waited for, as machines come back after a power cut); the
    /// nodes that did not start again, with why.
    pub fn restart_all(&mut self, nodes: &[usize]) -> Vec<(usize, String)> {
        let mut failed = Vec::new();
        let mut started = Vec::new();
        for &i in nodes {
            self.nodes[i].state = State::Killed;
            match self.nodes[i].d.respawn() {
                Ok(()) => started.push(i),
                Err(e) => failed.push((i, e)),
            }
        }
        for i in started {
            match self.nodes[i].d.wait_ready() {
                Ok(()) => self.nodes[i].state = State::Running,
                Err(e) => failed.push((i, e)),
            }
        }
        failed
    }

    /// SIGKILLs node `i` (a stopped process dies too) and reaps it.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].d.kill();
        self.nodes[i].state = State::Killed;
    }

    /// Checks that the running nodes agree, after a scenario:
    /// - every running node is alive (did not exit by itself);
    /// - they hold identical stores at one rev R that all have reached
    ///   (R = the greatest current rev among them; a full WALK of `/**` at
    ///   R on each, compared);
    /// - every acknowledged SET (made with [`Cluster::set`], or recorded
    ///   in `history` with a rev) reads back at its rev, with its body, on
    ///   every running node whose history reaches back that far (a node
    ///   that copied the store later answers TOO_LATE), and on at least
    ///   one.
    ///
    /// Returns R.
    pub fn assert_consistent(&mut self, history: &[Op]) -> i64 {
        let running = self.running();
        assert!(!running.is_empty(), "no running node to compare");
        for &i in &running {
            self.nodes[i].d.assert_alive();
        }
        let r = running
            .iter()
            .map(|&i| {
                poll_until(CLUSTER_DEADLINE, &format!("node {i} to answer REV"), || {
                    rev_of(self.d(i))
                })
            })
            .max()
            .expect("at least one node");
        for &i in &running {
            poll_until(
                CLUSTER_DEADLINE,
                &format!("node {i} to reach rev {r}"),
                || (rev_of(self.d(i))? >= r).then_some(()),
            );
        }
        let first = running[0];
        let base = self.d(first).raw().walk_all("/**", Some(r));
        assert!(
            base.iter().any(|(p, _, _)| p == "/ctl/name"),
            "node {first} at rev {r} has no /ctl/name: {base:?}"
        );
        for &i in &running[1..] {
            let other = self.d(i).raw().walk_all("/**", Some(r));
            assert!(
                other == base,
                "nodes {first} and {i} hold different stores at rev {r}:\n{}",
                describe_diff(&base, &other)
            );
        }

        let mut acked = self.acked.clone();
        for op in history {
            if let (Call::Set { path, body, .. }, Some(Outcome::Rev(at))) = (&op.call, &op.result) {
                acked.push((path.clone(), *at, body.clone()));
            }
        }
        // A node's history starts where its copy of the store does: a node
        // that attached (or attached again, copying) after a write answers
        // TOO_LATE for that write's rev, as docs/behaviour.md says. Such a
        // node is covered by the store comparison above; each write must
        // still read back at its rev on at least one node, and no node may
        // show anything else at that rev.
        let mut verified = vec![0usize; acked.len()];
        for &i in &running {
            let mut c = self.d(i).raw();
            // Pipelined in batches: thousands of one-by-one round trips
            // would make the check slower than the scenario.
            for (n, chunk) in acked.chunks(256).enumerate() {
                let tags: Vec<i32> = chunk
                    .iter()
                    .map(|(path, at, _)| {
                        let tag = c.tag();
                        c.send(&req(Verb::Get).path(path).rev(*at).tag(tag));
                        tag
                    })
                    .collect();
                for (k, ((path, at, body), tag)) in chunk.iter().zip(tags).enumerate() {
                    let resp = c.recv_tag(tag);
                    if err_of(&resp) == Some(ErrCode::TooLate) {
                        continue;
                    }
                    assert_eq!(
                        (err_of(&resp), value_of(&resp), resp.rev),
                        (None, body.clone(), Some(*at)),
                        "acknowledged SET {path} at rev {at} is missing on node {i}"
                    );
                    verified[n * 256 + k] += 1;
                }
            }
        }
        for ((path, at, _), n) in acked.iter().zip(&verified) {
            assert!(
                *n > 0,
                "acknowledged SET {path} at rev {at}: every node answered TOO_LATE"
            );
        }
        // Shown with a failure (or --nocapture): how far the log went.
        eprintln!(
            "{} running nodes agree at rev {r}; {} acknowledged SETs read back",
            running.len(),
            acked.len()
        );
        r
    }
}

/// The id of `d` (SELF).
pub fn node_id(d: &Doozerd) -> String {
    let r = d.raw().self_id();
    assert_eq!(err_of(&r), None, "SELF: {r:?}");
    String::from_utf8(value_of(&r)).expect("ids are ASCII")
}

// ---------------------------------------------------------------------------
// Recorded workload
// ---------------------------------------------------------------------------

/// Concurrent clients, each on one node, issuing a random mix of
/// conditional and clobbering SETs, conditional DELs, plain GETs (raw
/// connection, [`OP_TIMEOUT`] per request) and linearizable reads
/// (`doozer::Client::get_linearizable`) on a few shared files, every
/// operation recorded in a [`Recorder`] until [`Workload::finish`].
pub struct Workload {
    recorder: Recorder,
    stop: Arc<AtomicBool>,
    /// Successful SETs so far, all clients together: the test watches it
    /// to see that writes keep succeeding while nodes are down.
    acks: Arc<AtomicU64>,
    workers: Vec<Worker>,
}

/// A running workload client: where its result arrives, and its thread.
type Worker = (mpsc::Receiver<Result<(), String>>, thread::JoinHandle<()>);

/// What one workload client needs.
struct WorkerCfg {
    client: usize,
    addr: SocketAddr,
    paths: Vec<String>,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
}

impl Workload {
    /// Starts one client per entry of `targets` (client ids `first_client`,
    /// `first_client + 1`, ...), all working on `paths`, recording into
    /// `recorder`. Every target must stay able to answer (a running CAL of
    /// a cluster with a majority) until [`Workload::finish`].
    pub fn start(
        recorder: &Recorder,
        targets: &[SocketAddr],
        first_client: usize,
        paths: &[&str],
    ) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicU64::new(0));
        let workers = targets
            .iter()
            .enumerate()
            .map(|(k, &addr)| {
                let cfg = WorkerCfg {
                    client: first_client + k,
                    addr,
                    paths: paths.iter().map(|s| s.to_string()).collect(),
                    recorder: recorder.clone(),
                    stop: stop.clone(),
                    acks: acks.clone(),
                };
                let (tx, rx) = mpsc::channel();
                // A detached thread, not a scoped one: if a test assertion
                // fails while a client is blocked on a node, the test can
                // still unwind and kill the nodes (which unblocks it).
                let h = thread::spawn(move || {
                    let _ = tx.send(run_worker(cfg));
                });
                (rx, h)
            })
            .collect();
        Workload {
            recorder: recorder.clone(),
            stop,
            acks,
            workers,
        }
    }

    /// Successful SETs so far.
    pub fn acked(&self) -> u64 {
        self.acks.load(Ordering::SeqCst)
    }

    /// Waits until `n` more SETs than now have succeeded: writes keep
    /// being accepted. Panics after [`CLUSTER_DEADLINE`] with `what`.
    pub fn wait_progress(&self, n: u64, what: &str) {
        let from = self.acked();
        poll_until(CLUSTER_DEADLINE, what, || {
            (self.acked() >= from + n).then_some(())
        });
    }

    /// Stops the clients, waits for them (each finishes its operation in
    /// flight, at most [`OP_TIMEOUT`] later), and returns the recorded
    /// history. Panics if a client failed or got stuck.
    pub fn finish(mut self) -> Vec<Op> {
        self.stop.store(true, Ordering::SeqCst);
        let bound = OP_TIMEOUT * 2 + CLUSTER_DEADLINE;
        for (k, (rx, h)) in std::mem::take(&mut self.workers).into_iter().enumerate() {
            match rx.recv_timeout(bound) {
                Ok(Ok(())) => {
                    let _ = h.join();
                }
                Ok(Err(e)) => panic!("workload client {k} failed: {e}"),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("workload client {k} still busy {bound:?} after being stopped")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let why = h.join().err().map(|p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    });
                    panic!("workload client {k} panicked: {why:?}");
                }
            }
        }
        self.recorder.history()
    }
}

impl Drop for Workload {
    /// Tells the clients to stop also when the test fails before
    /// [`Workload::finish`] (they end at their next operation, or when the
    /// nodes are killed under them).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Maps a SET/DEL response to its recorded outcome: success, a rev
/// mismatch, or a refusal (any other error: the change did not happen).
/// `None` for an error that says the outcome is unknown (a CAL that fell
/// behind and stepped down: the others may still decide the write,
/// docs/reference.md#demotion); such an operation is left without an
/// outcome.
pub(crate) fn write_outcome(r: &Response, ok: Outcome) -> Option<Outcome> {
    match err_of(r) {
        None => Some(ok),
        Some(ErrCode::RevMismatch) => Some(Outcome::RevMismatch),
        Some(_) if outcome_unknown(r) => None,
        Some(code) => Some(Outcome::Refused(format!("{code:?} {:?}", r.err_detail))),
    }
}

/// Whether an error response says the request's outcome is unknown.
pub(crate) fn outcome_unknown(r: &Response) -> bool {
    r.err_detail
        .as_deref()
        .is_some_and(|d| d.contains("outcome unknown"))
}

/// A linearizable read through the client library, recorded.
fn lin_get(cfg: &WorkerCfg, client: &doozer::Client, path: &str, seen: &mut BTreeMap<String, i64>) {
    let op = cfg
        .recorder
        .invoke(cfg.client, Call::LinGet { path: path.into() });
    match client.get_linearizable(path) {
        Ok(read) => {
            seen.insert(path.into(), read.rev);
            op.complete(Outcome::ReadAt {
                at: read.at,
                body: read.body.to_vec(),
                rev: read.rev,
            });
        }
        // The NOP may or may not have been decided: unknown.
        Err(e) if e.is_connection_error() => drop(op),
        Err(e) => op.complete(Outcome::Refused(e.to_string())),
    }
}

/// One workload client's loop; `Err` on something no correct node may
/// answer (an error on a read, a malformed response).
fn run_worker(cfg: WorkerCfg) -> Result<(), String> {
    let mut rng = XorShift::new(0x5eed + cfg.client as u64);
    let uri = format!("doozer:?ca={}", cfg.addr);
    let client = doozer::Client::connect(&uri).map_err(|e| format!("connect {uri}: {e}"))?;
    let mut conn: Option<RawConn> = None;
    // The last rev this client saw of each path: conditional writes use it,
    // so some succeed and some find that another client wrote meanwhile.
    let mut seen: BTreeMap<String, i64> = BTreeMap::new();
    let mut k = 0u64;
    while !cfg.stop.load(Ordering::SeqCst) {
        k += 1;
        let path = cfg.paths[rng.below(cfg.paths.len() as u64) as usize].clone();
        let last = *seen.get(&path).unwrap_or(&0);
        let dice = rng.below(100);
        if dice >= 75 {
            lin_get(&cfg, &client, &path, &mut seen);
            continue;
        }
        let (call, request) = if dice < 30 || (30..45).contains(&dice) {
            let cond = if dice < 30 { last } else { -1 };
            let body = format!("c{}-{k}", cfg.client).into_bytes();
            (
                Call::Set {
                    path: path.clone(),
                    cond_rev: cond,
                    body: body.clone(),
                },
                req(Verb::Set).path(&path).rev(cond).value(&body),
            )
        } else if dice < 55 {
            (
                Call::Del {
                    path: path.clone(),
                    cond_rev: last,
                },
                req(Verb::Del).path(&path).rev(last),
            )
        } else {
            (Call::Get { path: path.clone() }, req(Verb::Get).path(&path))
        };
        if conn.is_none() {
            let stream = TcpStream::connect_timeout(&cfg.addr, OP_TIMEOUT)
                .map_err(|e| format!("connect {}: {e}", cfg.addr))?;
            conn = Some(RawConn::from_stream(stream));
        }
        let c = conn.as_mut().expect("connected above");
        let op = cfg.recorder.invoke(cfg.client, call.clone());
        let Some(r) = call_timeout(c, request, OP_TIMEOUT) else {
            // Unknown outcome: leave it without a result, and start over on
            // a fresh connection so a late answer cannot be mistaken.
            drop(op);
            conn = None;
            continue;
        };
        match call {
            Call::Set { .. } | Call::Del { .. } => {
                let ok = match call {
                    Call::Set { .. } => Outcome::Rev(r.rev.unwrap_or(0)),
                    _ => Outcome::Deleted,
                };
                let Some(outcome) = write_outcome(&r, ok) else {
                    continue; // outcome unknown: the op stays without one
                };
                match outcome {
                    Outcome::Rev(at) => {
                        seen.insert(path, at);
                        cfg.acks.fetch_add(1, Ordering::SeqCst);
                    }
                    Outcome::Deleted => drop(seen.insert(path, 0)),
                    _ => {}
                }
                op.complete(outcome);
            }
            _ => {
                if r.err_code.is_some() {
                    return Err(format!("GET {path}: {r:?}"));
                }
                let rev = r.rev.unwrap_or(0);
                seen.insert(path, rev);
                op.complete(Outcome::Read {
                    body: value_of(&r),
                    rev,
                });
            }
        }
    }
    Ok(())
}

/// Panics, printing the whole history, unless it passes both checks of
/// [`crate::history::check_history`] (linearizable SETs/DELs/linearizable
/// reads; monotonic plain reads per client) and no operation was refused
/// (every client talked to a writable CAL, so nothing may be refused).
pub fn assert_history_ok(history: &[Op]) {
    if let Err(v) = crate::history::check_history(history) {
        panic!("{v}\nwhole history:\n{}", format_history(history));
    }
    let refused: Vec<&Op> = history
        .iter()
        .filter(|op| matches!(op.result, Some(Outcome::Refused(_))))
        .collect();
    assert!(
        refused.is_empty(),
        "operations refused by a writable CAL: {refused:#?}\nwhole history:\n{}",
        format_history(history)
    );
    history_summary(history);
}

/// How many operations of `history` ended each way, by kind; also printed
/// (shown with a failure, or with --nocapture).
pub fn history_summary(history: &[Op]) -> [(&'static str, usize); 6] {
    let count = |f: &dyn Fn(&Op) -> bool| history.iter().filter(|op| f(op)).count();
    let kinds = [
        (
            "successful SETs",
            count(&|op| matches!(op.result, Some(Outcome::Rev(_)))),
        ),
        (
            "REV_MISMATCHes",
            count(&|op| op.result == Some(Outcome::RevMismatch)),
        ),
        (
            "successful DELs",
            count(&|op| op.result == Some(Outcome::Deleted)),
        ),
        (
            "plain GETs",
            count(&|op| matches!(op.result, Some(Outcome::Read { .. }))),
        ),
        (
            "linearizable reads",
            count(&|op| matches!(op.result, Some(Outcome::ReadAt { .. }))),
        ),
        ("timed out", count(&|op| op.result.is_none())),
    ];
    // Shown with a failure (or --nocapture): what the check covered.
    eprintln!("history of {} operations: {kinds:?}", history.len());
    kinds
}

/// Panics unless a [`Workload`]'s history exercised every kind of
/// operation with a definite outcome (successful and mismatched
/// conditional writes, deletes, plain and linearizable reads), so that a
/// passing [`assert_history_ok`] means something.
pub fn assert_covers_every_kind(history: &[Op]) {
    let kinds = history_summary(history);
    for (what, n) in &kinds[..5] {
        assert!(*n > 0, "the workload recorded no {what}: {kinds:?}");
    }
}
