//! doozerd: the doozer coordination service daemon.
//!
//! Map of the crate:
//! - [`store`]: the versioned tree, history and waits (pure).
//! - [`server`]: the client protocol: per-connection state and request
//!   dispatch against the store.
//! - [`node`]: the single-threaded `mio` event loop wiring sockets and
//!   timers to the pure parts.
//! - [`config`]: command-line flags.

pub mod store;
