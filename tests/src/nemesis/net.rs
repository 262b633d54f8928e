//! Network faults between nodes on loopback: [`Net`] cuts the link from
//! one node to another (one way or both ways) with iptables, and heals.
//!
//! How nodes are told apart. Each node listens on its own loopback address
//! ([`Host::ip`], 127.B.B.N; all of 127.0.0.0/8 is loopback on Linux) and
//! runs with its own group id ([`Host::gid`]):
//! - UDP peer datagrams leave from the node's `-l` socket, so their source
//!   address is the node's: `-s A -d B` matches A's datagrams to B.
//! - TCP connections a node opens (a slave following or attaching to a
//!   CAL) are not bound before connecting, so the kernel gives them source
//!   127.0.0.1 whoever opens them. A rule in the OUTPUT chain marks each
//!   new TCP connection with the gid of the process that opened it
//!   (`-m owner --gid-owner G -j CONNMARK --set-mark G`); both directions
//!   of the connection then carry that mark. A's connections to B are
//!   `-d B, mark A`; what A sends back on B's connections to A is
//!   `-s A, mark B`.
//!
//! A cut from A to B ("A cannot send to B") is those three DROP rules, in
//! the INPUT direction (the sender's writes succeed, as on a real network
//! that loses packets). The test process and the `doozer` command run
//! with gid 0 and talk to every node whatever is cut: clients are never
//! partitioned, only nodes from each other.
//!
//! Every rule lives in two chains of this process (`DOOZER-NEM-<pid>-<n>-IN`
//! and `-OUT`), jumped to from INPUT and OUTPUT for loopback traffic only
//! (`-i lo`, `-o lo`); every DROP names loopback addresses. Dropping the
//! last clone of a [`Net`] (also while a test panics) removes the jumps and
//! both chains; [`cleanup_stale_chains`] (run by every [`Net::new`], and by
//! `scripts/nemesis-cleanup`) removes the chains of processes that no
//! longer exist (a test binary killed by SIGKILL).
//!
//! Needs root and `iptables` (`scripts/test` installs it); [`Net::new`]
//! panics, saying why, when it cannot create the chains: the nemesis suite
//! fails rather than skips.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Prefix of every chain the nemesis creates.
pub const CHAIN_PREFIX: &str = "DOOZER-NEM-";

/// Where a node lives on the loopback network: its listen address and the
/// group id its process runs with (also the connmark of its TCP
/// connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Host {
    /// The node's `-l` address (127.0.0.0/8, never 127.0.0.1).
    pub ip: Ipv4Addr,
    /// The node's group id and connection mark.
    pub gid: u32,
}

/// Hosts handed out by this process so far (wraps after 250: earlier
/// nodes are long gone by then).
static NEXT_HOST: AtomicU32 = AtomicU32::new(0);
/// Nets created by this process so far (part of the chain names).
static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// A fresh [`Host`]: 127.B1.B2.N with B1.B2 from this process's id (two
/// test processes on one machine do not share addresses), gid 2^30 +
/// pid × 256 + N.
fn next_host() -> Host {
    let pid = std::process::id();
    let n = NEXT_HOST.fetch_add(1, Ordering::SeqCst) % 250 + 2;
    let b1 = 1 + ((pid >> 8) % 254) as u8;
    let b2 = (pid & 0xff) as u8;
    Host {
        ip: Ipv4Addr::new(127, b1, b2, n as u8),
        gid: 0x4000_0000 + (pid & 0x3f_ffff) * 256 + n,
    }
}

/// The program `name` (`iptables`, `iptables-restore`): from `PATH`, else
/// from /usr/sbin or /sbin, which a non-login shell's `PATH` may lack.
fn program(name: &str) -> std::path::PathBuf {
    let in_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    in_path.unwrap_or_else(|| name.into())
}

/// Runs `iptables -w ARGS`; the error says what failed and why.
fn iptables(args: &[&str]) -> Result<(), String> {
    let out = Command::new(program("iptables"))
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run iptables: {e} (install the iptables package)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Applies `lines` (`-A ...`/`-D ...` in the filter table) at once with
/// `iptables-restore --noflush`.
fn iptables_batch(lines: &[String]) -> Result<(), String> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut input = String::from("*filter\n");
    for l in lines {
        input.push_str(l);
        input.push('\n');
    }
    input.push_str("COMMIT\n");
    let mut child = Command::new(program("iptables-restore"))
        .args(["-w", "10", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run iptables-restore: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .map_err(|e| format!("iptables-restore stdin: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("iptables-restore: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables-restore {}: {}\n{input}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The lines of `iptables -S` (every chain and rule of the filter table).
pub fn list_rules() -> Result<Vec<String>, String> {
    let out = Command::new(program("iptables"))
        .args(["-w", "-S"])
        .output()
        .map_err(|e| format!("cannot run iptables: {e} (install the iptables package)"))?;
    if !out.status.success() {
        return Err(format!(
            "iptables -S: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// The process id in a nemesis chain name (`DOOZER-NEM-<pid>-<n>-IN`).
fn chain_pid(chain: &str) -> Option<u32> {
    chain
        .strip_prefix(CHAIN_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Removes the jumps to `chain` from INPUT and OUTPUT, then flushes and
/// deletes it. Every step is tried; the first error is returned.
fn remove_chain(chain: &str, rules: &[String]) -> Result<(), String> {
    let mut first_err = Ok(());
    let jump = format!(" -j {chain}");
    for r in rules {
        if let Some(rest) = r.strip_prefix("-A ") {
            if r.ends_with(&jump) && (rest.starts_with("INPUT ") || rest.starts_with("OUTPUT ")) {
                let args: Vec<&str> = std::iter::once("-D")
                    .chain(rest.split_whitespace())
                    .collect();
                let res = iptables(&args);
                first_err = first_err.and(res);
            }
        }
    }
    let res = iptables(&["-F", chain]).and_then(|_| iptables(&["-X", chain]));
    first_err.and(res)
}

/// Removes every nemesis chain whose process no longer exists (its test
/// binary was killed before it could clean up), or every nemesis chain
/// when `all` (for `scripts/nemesis-cleanup --all`). Returns the chains
/// removed.
pub fn cleanup_stale_chains(all: bool) -> Result<Vec<String>, String> {
    let rules = list_rules()?;
    let mut removed = Vec::new();
    for r in &rules {
        let Some(chain) = r.strip_prefix("-N ") else {
            continue;
        };
        let Some(pid) = chain_pid(chain) else {
            continue;
        };
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if all || !alive {
            remove_chain(chain, &rules)?;
            removed.push(chain.to_string());
        }
    }
    Ok(removed)
}

/// The DROP rules (in the INPUT chain) of a cut from `from` to `to`.
fn cut_rules(from: Host, to: Host) -> [String; 3] {
    let (a, b) = (from.ip, to.ip);
    [
        // Datagrams (and anything else) from A's address to B's.
        format!("-s {a}/32 -d {b}/32 -j DROP"),
        // Connections A opened to B.
        format!("-d {b}/32 -p tcp -m connmark --mark {} -j DROP", from.gid),
        // What A sends back on connections B opened to A.
        format!("-s {a}/32 -p tcp -m connmark --mark {} -j DROP", to.gid),
    ]
}

struct NetInner {
    chain_in: String,
    chain_out: String,
    cuts: Mutex<BTreeSet<(Host, Host)>>,
}

impl Drop for NetInner {
    fn drop(&mut self) {
        let rules = list_rules().unwrap_or_default();
        for chain in [&self.chain_in, &self.chain_out] {
            if let Err(e) = remove_chain(chain, &rules) {
                // Not a panic: this runs while unwinding too. The chain is
                // left for cleanup_stale_chains.
                eprintln!("nemesis: cannot remove iptables chain {chain}: {e}");
            }
        }
    }
}

/// The network faults of one test: hands out [`Host`]s for its nodes and
/// cuts and heals links between them. Clones share the same chains; the
/// last one dropped removes every rule.
#[derive(Clone)]
pub struct Net {
    inner: Arc<NetInner>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Net({} cuts)", self.cuts().len())
    }
}

impl Net {
    /// Creates this test's chains and the jumps to them, after removing
    /// the chains of dead processes. Panics, saying why, if iptables is
    /// missing or refuses (not root): the suite must not pass without its
    /// faults.
    pub fn new() -> Net {
        Net::try_new().unwrap_or_else(|e| {
            panic!(
                "the nemesis suite needs root and iptables to cut links between \
                 nodes, and cannot: {e}"
            )
        })
    }

    fn try_new() -> Result<Net, String> {
        for chain in cleanup_stale_chains(false)? {
            eprintln!("nemesis: removed stale iptables chain {chain}");
        }
        let base = format!(
            "{CHAIN_PREFIX}{}-{}",
            std::process::id(),
            NEXT_NET.fetch_add(1, Ordering::SeqCst)
        );
        let inner = NetInner {
            chain_in: format!("{base}-IN"),
            chain_out: format!("{base}-OUT"),
            cuts: Mutex::new(BTreeSet::new()),
        };
        iptables(&["-N", &inner.chain_in])?;
        iptables(&["-N", &inner.chain_out])?;
        // From here on, dropping `inner` removes whatever was made.
        iptables(&["-I", "INPUT", "1", "-i", "lo", "-j", &inner.chain_in])?;
        iptables(&["-I", "OUTPUT", "1", "-o", "lo", "-j", &inner.chain_out])?;
        Ok(Net {
            inner: Arc::new(inner),
        })
    }

    /// A fresh [`Host`] for a node about to start; its TCP connections
    /// will carry its mark. Panics if iptables refuses.
    pub fn host(&self) -> Host {
        let h = next_host();
        let gid = h.gid.to_string();
        iptables(&[
            "-A",
            &self.inner.chain_out,
            "-p",
            "tcp",
            "-m",
            "owner",
            "--gid-owner",
            &gid,
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-j",
            "CONNMARK",
            "--set-mark",
            &gid,
        ])
        .unwrap_or_else(|e| panic!("nemesis: cannot mark the connections of {h:?}: {e}"));
        h
    }

    fn lock(&self) -> MutexGuard<'_, BTreeSet<(Host, Host)>> {
        self.inner.cuts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts every link `(from, to)` of `links` one way (`from` cannot send
    /// to `to`), in one iptables transaction; links already cut are left
    /// as they are. Panics if iptables refuses.
    pub fn cut(&self, links: &[(Host, Host)]) {
        let mut cuts = self.lock();
        let mut lines = Vec::new();
        for &(from, to) in links {
            assert!(from != to, "a cut from {from:?} to itself");
            if cuts.insert((from, to)) {
                for r in cut_rules(from, to) {
                    lines.push(format!("-A {} {r}", self.inner.chain_in));
                }
            }
        }
        iptables_batch(&lines).unwrap_or_else(|e| panic!("nemesis: cannot cut links: {e}"));
    }

    /// Heals the links of `links` (one way each) that are cut.
    pub fn heal(&self, links: &[(Host, Host)]) {
        let mut cuts = self.lock();
        let mut lines = Vec::new();
        for link in links {
            if cuts.remove(link) {
                for r in cut_rules(link.0, link.1) {
                    lines.push(format!("-D {} {r}", self.inner.chain_in));
                }
            }
        }
        iptables_batch(&lines).unwrap_or_else(|e| panic!("nemesis: cannot heal links: {e}"));
    }

    /// Heals every link (flushes the DROP rules; the marks stay).
    pub fn heal_all(&self) {
        let mut cuts = self.lock();
        iptables(&["-F", &self.inner.chain_in])
            .unwrap_or_else(|e| panic!("nemesis: cannot heal: {e}"));
        cuts.clear();
    }

    /// The links cut now, one way each.
    pub fn cuts(&self) -> Vec<(Host, Host)> {
        self.lock().iter().copied().collect()
    }

    /// The names of this net's two chains (INPUT side, OUTPUT side).
    pub fn chains(&self) -> (String, String) {
        (self.inner.chain_in.clone(), self.inner.chain_out.clone())
    }
}

impl Default for Net {
    fn default() -> Self {
        Net::new()
    }
}

/// Both directions of every link between a node of `a` and a node of `b`.
pub fn links_between(a: &[Host], b: &[Host]) -> Vec<(Host, Host)> {
    let mut out = Vec::new();
    for &x in a {
        for &y in b {
            if x != y {
                out.push((x, y));
                out.push((y, x));
            }
        }
    }
    out
}

/// Every link between two different groups of `groups`, both ways: a
/// partition into those groups.
pub fn partition_links(groups: &[Vec<Host>]) -> Vec<(Host, Host)> {
    let mut out = Vec::new();
    for (i, a) in groups.iter().enumerate() {
        for b in &groups[i + 1..] {
            out.extend(links_between(a, b));
        }
    }
    out
}
