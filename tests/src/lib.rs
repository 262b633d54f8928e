//! End-to-end test harness: real `doozerd` and `doozer` processes on
//! 127.0.0.1.
//!
//! Map of the crate (everything below is re-exported at the root, so
//! tests `use doozer_tests::*`):
//! - `doozerd.rs`: [`Doozerd`] / [`DoozerdBuilder`]: start a daemon on a
//!   free port, wait until it answers, kill it (SIGKILL) when dropped;
//!   [`doozerd_run`] for a daemon that should exit by itself (bad flags).
//! - `cli.rs`: [`doozer()`], [`doozer_with`]: run the real `doozer`
//!   command to completion and capture its output ([`CmdOutput`]);
//!   [`Spawned`]: a long-running child (e.g. `doozer watch`) whose output
//!   is read while it runs, killed when dropped; [`parse_records`] for the
//!   records `wait`/`watch` print.
//! - `command.rs`: [`run_command`]: any program to completion, with a
//!   deadline ([`CMD_DEADLINE`]).
//! - `raw.rs`: [`RawConn`]: a raw TCP (or TLS) connection speaking
//!   length-prefixed protobuf frames (or arbitrary bytes) to a node, one
//!   helper per verb.
//! - `request.rs`: [`req`] and [`RequestExt`] build requests;
//!   [`assert_ok`], [`assert_err`], [`err_of`], [`value_of`] read
//!   responses.
//! - `tls.rs`: [`TlsFiles`]: a node's PEM files; a node started with them
//!   ([`DoozerdBuilder::tls`]) is talked to over TLS by every helper.
//! - `poll.rs`: [`poll_until`]: wait for a condition with a deadline
//!   ([`DEADLINE`]), never a fixed sleep.
//! - `bins.rs`, `temp.rs`, `ports.rs`, `rng.rs`: where the binaries are
//!   ([`doozerd_bin`], [`doozer_bin`]), scratch directories ([`TempDir`]),
//!   free ports ([`free_port`]), a seeded PRNG ([`XorShift`]).
//! - [`browser`]: headless chromium through chromedriver (WebDriver over a
//!   small HTTP/1.1 client), and that client for raw requests to `-w`.
//! - [`prometheus`]: a strict parser of the Prometheus text format.
//! - [`cluster`]: clusters of several nodes (seed, slaves, operator-made
//!   CAL slots), SIGSTOP/SIGCONT, store comparison at one rev, and a
//!   recorded client workload for [`history`].
//! - [`history`]: a recorder of client operations and the checkers of
//!   recorded histories (linearizability, sequential reads).
//! - [`attack`]: hostile and careless clients (issue 12): each attack
//!   against a node, measured (peak RSS, a fresh client's latency during
//!   it, what the node answered); run by `tests/attacks.rs` and
//!   `scripts/attack`.
//! - [`rolling`]: graceful leave and rolling restarts under a writer
//!   that records every acknowledged and every failed write.
//! - [`nemesis`]: network faults with iptables between nodes on their own
//!   loopback addresses, fault rounds with a workload and watchers, and
//!   the checks that the cluster stays correct and heals by itself.
//!
//! The binaries are looked up next to the test executable
//! (`<target>/debug/`); run `cargo build --workspace` before the tests.

pub mod attack;
pub mod browser;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod prometheus;
pub mod rolling;

mod bins;
mod cli;
mod command;
mod doozerd;
mod poll;
mod ports;
mod raw;
mod request;
mod rng;
mod temp;
mod tls;

pub use bins::{bin_dir, doozer_bin, doozerd_bin};
pub use cli::{doozer, doozer_with, parse_records, Record, Spawned};
pub use command::{run_command, run_command_timeout, CmdOutput, CMD_DEADLINE};
pub use doozer_proto::{ErrCode, Request, Response, Verb};
pub use doozerd::{doozerd_run, doozerd_run_env, Doozerd, DoozerdBuilder, Limit};
pub use poll::{poll_until, DEADLINE};
pub use ports::{free_port, free_port_on};
pub use raw::{RawConn, Recv};
pub use request::{assert_err, assert_ok, err_of, req, value_of, RequestExt};
pub use rng::XorShift;
pub use temp::TempDir;
pub use tls::TlsFiles;
