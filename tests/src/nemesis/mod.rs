//! The nemesis: faults on real processes, and the checks that the cluster
//! stays correct through them and heals by itself afterwards (issue 11,
//! "Membership safety").
//!
//! A [`Testbed`] is a [`Cluster`](crate::cluster::Cluster) whose every
//! node has its own loopback address and group id on a [`Net`], so that
//! links between nodes can be cut with iptables ([`net`]). A round
//! ([`run_round`]) runs a workload and watchers, injects one [`Fault`]
//! (SIGSTOP/SIGCONT, SIGKILL and a replacement node, SIGKILL and a restart
//! on the node's data directory, both-way and one-way cuts, partitions,
//! flaps), heals it, and checks:
//!
//! - the recorded history: SETs, DELs and linearizable reads
//!   linearizable, plain reads monotonic per client ([`crate::history`]);
//!   no plain read refused, no client stuck;
//! - every watcher (one per node) saw every change of the round's files
//!   in rev order, with no gap, exactly as the history has it, and every
//!   acknowledged SET is in that history at its rev;
//! - the cluster healed within [`HEAL_DEADLINE`]: every live node answers
//!   and shows the same `/ctl/cal/*`, every slot names a live node, no
//!   slot is free while a node is a slave, every CAL's `writable` is
//!   `true`, a write through every CAL succeeds, every live node reaches
//!   the last of them;
//! - all live nodes hold the same store at one rev;
//! - only CALs the fault silenced were kicked, and those silenced for
//!   twice `-timeout` were ([`Expect`]);
//! - no node panicked or exited by itself, and none logged a kick attempt
//!   after the cluster had healed;
//! - writes went on during the fault when a majority was up.
//!
//! Each failed check is an [`Anomaly`] naming the check, the node and what
//! was seen. Named scenarios: [`scenarios`]; randomized schedules for the
//! soak: [`soak`].
//!
//! Map: `net.rs` (iptables), `testbed.rs`, `fault.rs`, `workload.rs`,
//! `watchers.rs`, `heal.rs` (convergence), `checks.rs` (stores, kicks,
//! logs), `probe.rs` (requests that never panic), `round.rs`,
//! `scenarios.rs`, `soak.rs`, `anomaly.rs`.

mod anomaly;
mod checks;
mod fault;
mod heal;
pub mod net;
pub mod probe;
mod round;
pub mod scenarios;
pub mod soak;
mod testbed;
mod watchers;
mod workload;

pub use anomaly::{guarded, panic_text, truncate, Anomaly, Check};
pub use checks::{check_kicks, check_logs, check_stores, kicks, Kick, LogMarks};
pub use fault::{fault_links, heal, inject, Active, Expect, Fault};
pub use heal::{converge, tail, Healed};
pub use net::{cleanup_stale_chains, Host, Net};
pub use round::{run_round, RoundCfg, RoundReport, HEAL_DEADLINE};
pub use testbed::Testbed;
pub use watchers::Watcher;
pub use workload::Load;
