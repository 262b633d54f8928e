//! doozer-fuzz: the bodies of the fuzz targets, one function per target
//! taking the fuzzer's bytes. They build on stable: the cargo-fuzz project
//! in `fuzz/` (nightly) calls them with libFuzzer's inputs, and
//! `tests/replay.rs` runs every committed corpus and regression input
//! through them in the normal test run (docs/fuzzing.md).
//!
//! Each function feeds untrusted bytes to the code that takes them from
//! the network, a file or the command line, the way the program does, and
//! checks invariants that must hold for any input. A panic, an abort, a
//! hang or unbounded memory on some input is a bug.
//!
//! Map:
//! - [`input`]: a cursor that turns the fuzzer's bytes into choices.
//! - [`client_frames`]: client connections' bytes into a one-node cluster.
//! - [`peer_datagram`]: peer datagrams into a CAL of a three-CAL cluster.
//! - [`paxos`]: peer messages, built from the bytes, into [`Paxos`] alone.
//! - [`follow_stream`]: a follow stream's bytes into a slave.
//! - [`http_request`]: request heads into the web viewer.
//! - [`consensus_value`]: agreed values, decoded and applied to a store.
//! - [`uri`]: doozer URIs and durations given on the command line.
//! - [`tls_pem`]: the certificate, key and CA files of TLS.
//! - [`image`]: backup and snapshot images, restored and recovered from.
//! - [`data_dir`]: a data directory's files, read back at start-up.
//! - [`records`]: files of checksummed records built from the bytes.
//!
//! [`Paxos`]: doozerd::consensus::Paxos

pub mod client_frames;
pub mod consensus_value;
pub mod data_dir;
pub mod follow_stream;
pub mod http_request;
pub mod image;
pub mod input;
pub mod paxos;
pub mod peer_datagram;
mod peer_msg;
pub mod records;
pub mod tls_pem;
pub mod uri;

pub mod cluster;

/// A target's body: runs one input, panics on a bug.
pub type Target = fn(&[u8]);

/// A target's seeds: the inputs it starts from.
pub type Seeds = fn() -> Vec<Vec<u8>>;

/// Every target, by the name of its file in `fuzz/fuzz_targets/` and of
/// its corpus directory in `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("client_frames", client_frames::run),
    ("peer_datagram", peer_datagram::run),
    ("paxos", paxos::run),
    ("follow_stream", follow_stream::run),
    ("http_request", http_request::run),
    ("consensus_value", consensus_value::run),
    ("uri", uri::run),
    ("tls_pem", tls_pem::run),
    ("image", image::run),
    ("data_dir", data_dir::run),
];

/// Inputs to start fuzzing each target from, by target name (written
/// out by `examples/seeds.rs`; replayed by `tests/replay.rs`).
pub const SEEDS: &[(&str, Seeds)] = &[
    ("client_frames", client_frames::seeds),
    ("peer_datagram", peer_datagram::seeds),
    ("paxos", paxos::seeds),
    ("follow_stream", follow_stream::seeds),
    ("http_request", http_request::seeds),
    ("consensus_value", consensus_value::seeds),
    ("uri", uri::seeds),
    ("tls_pem", tls_pem::seeds),
    ("image", image::seeds),
    ("data_dir", data_dir::seeds),
];
