//! `doozer bench`: a load generator for one node or several.
//!
//! GET/SET mode keeps C requests in flight over K raw [`doozer::Pipeline`]
//! connections, one thread each, spread round-robin over every `ca=`
//! address of `-a` (connection i goes to address i mod N); writes (set
//! mode, the prefill, the watch and SSE writer) go to the CALs among them,
//! a slave's place taken by its cluster's CALs ([`Target::for_writes`]),
//! so reads can load slaves while writes load CALs; every response
//! immediately releases its tag for the next request, and a burst of
//! responses is answered with one write. Watch mode measures how fast changes reach many watchers (WAITs
//! over the client protocol), SSE mode how fast they reach many event
//! streams of the web viewer (`/$events/<dir>/`); in both, one thread
//! follows every connection with `mio` ([`followers::follow`]), so the
//! client does not wake a thread per follower per write on the cores the
//! server uses, while one writer SETs at a fixed rate.
//!
//! Map: [`opts`] parses the options; [`target`] opens connections to the
//! nodes; [`load`] is get/set mode, on the load loop of [`drive`];
//! [`fanout`] is watch and SSE mode, on the [`followers`] (which read
//! event streams with [`sse`]); [`stats`] holds what runs measure.

mod cpu;
mod drive;
mod fanout;
mod followers;
mod load;
mod opts;
mod sse;
mod stats;
mod target;

use doozer::{DoozerUri, Error, TlsClient};

use crate::failure::Failure;
use crate::globals::Globals;

use fanout::follow_bench;
use load::load_bench;
use opts::{parse_opts, Op};
use target::Target;

/// Runs the benchmark with the bench options `args`.
pub fn run(g: &Globals, args: &[String]) -> Result<(), Failure> {
    let o = parse_opts(args)?;
    let uri: DoozerUri = g.uri.parse().map_err(Error::from)?;
    let target = Target {
        addrs: g.addrs(&uri)?,
        secret: uri.secret.clone(),
        tls: match &uri.tls_ca {
            Some(path) => Some(TlsClient::from_ca_file(path)?),
            None => None,
        },
    };
    let writes = target.for_writes(&uri)?;
    if writes.addrs != target.addrs {
        eprintln!(
            "bench: writes go to the CALs {} (-a names a node that is not a CAL)",
            writes.addrs.join(", ")
        );
    }
    match o.op {
        Op::Watch | Op::Sse => follow_bench(&target, &writes, &o),
        Op::Get | Op::Set => load_bench(&target, &writes, &o),
    }
}
