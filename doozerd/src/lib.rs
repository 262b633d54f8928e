//! doozerd: the doozer coordination service daemon.
//!
//! Map of the crate:
//! - [`store`]: the versioned tree, history and waits (pure).
//! - [`consensus`]: agreement on the order of mutations (propose → learn).
//! - [`cluster`]: the rules of the `/ctl` tree (pure).
//! - [`replica`]: everything one node holds and decides (store,
//!   consensus while a CAL, membership, client sessions, follow streams),
//!   pure: fed by `Replica::step`, drained once per loop by
//!   `Replica::ready`.
//! - [`storage`]: the data directory (`-d`): log segments, snapshots,
//!   recovery; the only code that touches DIR.
//! - [`node`]: the single-threaded `mio` event loop: moves bytes and time
//!   between the sockets and the replica.
//! - [`boot`]: booting through a name service (`-b`) and keeping this
//!   node's entry there.
//! - [`web`]: HTTP on the `-w` address.
//! - [`transport`]: peer datagrams over UDP on the `-l` address.
//! - [`attach`]: joining a cluster as a slave (`-a`).
//! - [`config`]: command-line flags.
//! - [`tls`]: TLS on the client port and for attaching (`-tlscert`,
//!   `-tlskey`, `-tlsca`); the web viewer stays plain HTTP.
//!
//! docs/architecture.md walks through the modules and the path of a
//! client write and of a peer datagram.

pub mod attach;
pub mod boot;
pub mod cluster;
pub mod config;
pub mod consensus;
pub mod node;
pub mod replica;
#[cfg(test)]
mod sim;
pub mod storage;
pub mod store;
pub mod tls;
pub mod transport;
pub mod web;

/// The doozerd version, written to `/ctl/node/<id>/version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
