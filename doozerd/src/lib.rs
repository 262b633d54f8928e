//! doozerd: the doozer coordination service daemon.
//!
//! Map of the crate:
//! - [`store`]: the versioned tree, history and waits (pure).
//! - [`consensus`]: agreement on the order of mutations (propose → learn).
//! - [`cluster`]: the rules of the `/ctl` tree (pure).
//! - [`server`]: the client protocol: per-connection state and request
//!   dispatch against the store (pure).
//! - [`node`]: the single-threaded `mio` event loop wiring sockets to the
//!   pure parts.
//! - [`web`]: HTTP on the `-w` address.
//! - [`transport`]: peer datagrams over UDP on the `-l` address.
//! - [`attach`]: joining a cluster as a slave (`-a`).
//! - [`config`]: command-line flags.
//! - [`tls`]: TLS on the client port and for attaching (`-tlscert`,
//!   `-tlskey`, `-tlsca`); the web viewer stays plain HTTP.

pub mod attach;
pub mod boot;
pub mod cluster;
pub mod config;
pub mod consensus;
pub mod node;
pub mod replica;
#[cfg(test)]
mod sim;
pub mod store;
pub mod tls;
pub mod transport;
pub mod web;

/// The doozerd version, written to `/ctl/node/<id>/version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
