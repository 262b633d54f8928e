//! A Rust client for doozer, the highly available, consistent store for
//! small amounts of critical data (wire-compatible with Go doozerd 0.9).
//!
//! Map of the crate:
//! - [`Client`] ([`client`]): the everyday handle. Cheap to clone, safe to
//!   share between threads; every clone pipelines its requests over one TCP
//!   connection, reconnects and fails over across all `ca=` addresses.
//! - [`uri`]: parsing of `doozer:?ca=HOST:PORT&ca=...&sk=SECRET` URIs.
//! - [`ns`]: the name service, where `cn=NAME` finds a cluster's CALs
//!   ([`Client::connect_via`]).
//! - [`cal`]: writes through a slave: a write refused with `READONLY` goes
//!   to a CAL of the cluster ([`Client::cals`], [`Client::write_addr`]).
//! - [`tls`]: TLS to nodes serving it (`tlsca=PATH` in the URI): the
//!   trusted CAs ([`TlsClient`]) and a plain-or-TLS blocking [`Stream`].
//! - [`Error`] ([`error`]): every server error code, plus transport errors.
//! - [`Event`] and [`Stat`] ([`event`]): results of WAIT/WALK and STAT.
//! - [`Watch`]: an iterator over every change matching a glob.
//! - [`Pipeline`] ([`pipeline`]): a bare, single-threaded connection for
//!   callers that manage tags themselves (the benchmark).
//! - [`duration`]: Go-style duration strings (`1m30s`, `500ms`).
//! - [`ctl`]: the paths of the `/ctl` tree (from `doozer-proto`).
//!
//! # Example
//!
//! ```no_run
//! use doozer::Client;
//!
//! # fn main() -> doozer::Result<()> {
//! let client = Client::connect("doozer:?ca=127.0.0.1:8046")?;
//! // Create the file only if it does not exist yet (rev 0 = "missing").
//! let rev = client.set("/app/leader", 0, &b"host-a:9000"[..])?;
//! let (body, file_rev) = client.get("/app/leader", None)?;
//! assert_eq!(&body[..], b"host-a:9000");
//! assert_eq!(file_rev, rev);
//!
//! // Block until the next change under /app.
//! let ev = client.wait("/app/**", rev + 1)?;
//! println!("{} changed at {}", ev.path, ev.rev);
//! # Ok(())
//! # }
//! ```
//!
//! Following every change, from a revision on:
//!
//! ```no_run
//! # fn main() -> doozer::Result<()> {
//! let client = doozer::Client::connect("doozer:?ca=127.0.0.1:8046")?;
//! let from = client.rev()? + 1;
//! for ev in client.watch("/app/**", from).take(3) {
//!     let ev = ev?;
//!     println!("{} {} {}", ev.path, ev.rev, ev.body.len());
//! }
//! # Ok(())
//! # }
//! ```

pub mod cal;
pub mod client;
mod conn;
pub mod duration;
pub mod error;
pub mod event;
pub mod ns;
pub mod pipeline;
pub mod tls;
pub mod uri;

pub use cal::Cal;
pub use client::{Backup, Client, LinearizableRead, Watch};
pub use doozer_proto::{ctl, flags, rev, ErrCode, Request, Response, Verb, MAX_BODY_LEN};
pub use error::{Error, Result};
pub use event::{Event, Stat};
pub use pipeline::Pipeline;
pub use tls::{Stream, TlsClient};
pub use uri::{DoozerUri, UriError};
