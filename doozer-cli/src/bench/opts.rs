//! The bench's options (`-op`, `-c`, `-k`, `-n`, `-d`, ...), parsed and
//! checked into [`Opts`].

use std::time::Duration;

use crate::failure::Failure;
use crate::flags::{self, Spec};

/// The options `doozer bench` accepts (see `doozer help bench`).
const SPECS: &[Spec] = &[
    Spec {
        name: "op",
        takes_value: true,
    },
    Spec {
        name: "c",
        takes_value: true,
    },
    Spec {
        name: "k",
        takes_value: true,
    },
    Spec {
        name: "n",
        takes_value: true,
    },
    Spec {
        name: "d",
        takes_value: true,
    },
    Spec {
        name: "size",
        takes_value: true,
    },
    Spec {
        name: "keys",
        takes_value: true,
    },
    Spec {
        name: "layout",
        takes_value: true,
    },
    Spec {
        name: "prefill",
        takes_value: false,
    },
    Spec {
        name: "watchers",
        takes_value: true,
    },
    Spec {
        name: "streams",
        takes_value: true,
    },
    Spec {
        name: "web",
        takes_value: true,
    },
    Spec {
        name: "rate",
        takes_value: true,
    },
    Spec {
        name: "grace",
        takes_value: true,
    },
    Spec {
        name: "cpu",
        takes_value: true,
    },
];

/// The port of the web address for `-op sse` when -web is not given.
const DEFAULT_WEB_PORT: u16 = 8000;

/// What the bench does (`-op`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Op {
    Get,
    Set,
    Watch,
    Sse,
}

/// Where the keys of get/set mode live (`-layout`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Layout {
    Flat,
    Nested,
}

/// The bench options, checked.
#[derive(Debug)]
pub(super) struct Opts {
    /// `-op`.
    pub(super) op: Op,
    /// `-c`: requests in flight in total.
    pub(super) inflight: usize,
    /// `-k`: connections.
    pub(super) conns: usize,
    /// `-n`: total operations, instead of running for `duration`.
    pub(super) ops: Option<u64>,
    /// `-d`.
    pub(super) duration: Duration,
    /// `-size`: value bytes.
    pub(super) size: usize,
    /// `-keys`: distinct files.
    pub(super) keys: u64,
    /// `-layout`.
    pub(super) layout: Layout,
    /// `-prefill`.
    pub(super) prefill: bool,
    /// `-watchers`.
    pub(super) watchers: usize,
    /// `-streams`.
    pub(super) streams: usize,
    /// `-web`: the web address for `-op sse`.
    pub(super) web: Option<String>,
    /// `-rate`: writes per second in watch and SSE mode.
    pub(super) rate: f64,
    /// `-grace`: how long to wait for late arrivals.
    pub(super) grace: Duration,
    /// `-cpu`: the nodes' web addresses, to report their CPU per
    /// operation (get and set).
    pub(super) cpu: Vec<String>,
}

fn num<T: std::str::FromStr>(p: &flags::Parsed, name: &str, default: T) -> Result<T, Failure> {
    match p.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| Failure::Usage(format!("bench: bad -{name} {v:?}: want a number"))),
    }
}

fn dur(p: &flags::Parsed, name: &str, default: Duration) -> Result<Duration, Failure> {
    match p.get(name) {
        None => Ok(default),
        Some(v) => {
            doozer::duration::parse(v).map_err(|e| Failure::Usage(format!("bench: -{name}: {e}")))
        }
    }
}

/// Parses the bench options `args`; a bad one is a usage error.
pub(super) fn parse_opts(args: &[String]) -> Result<Opts, Failure> {
    let p = flags::parse(args, SPECS, false).map_err(|e| Failure::Usage(format!("bench: {e}")))?;
    if let Some(extra) = p.args.first() {
        return Err(Failure::Usage(format!(
            "bench: unexpected argument {:?}",
            doozer::uri::redact(extra)
        )));
    }
    let op = match p.get("op").unwrap_or("set") {
        "get" => Op::Get,
        "set" => Op::Set,
        "watch" => Op::Watch,
        "sse" => Op::Sse,
        o => {
            return Err(Failure::Usage(format!(
                "bench: bad -op {o:?}: want get, set, watch or sse"
            )))
        }
    };
    let layout = match p.get("layout").unwrap_or("flat") {
        "flat" => Layout::Flat,
        "nested" => Layout::Nested,
        l => {
            return Err(Failure::Usage(format!(
                "bench: bad -layout {l:?}: want flat or nested"
            )))
        }
    };
    let o = Opts {
        op,
        inflight: num(&p, "c", 64)?,
        conns: num(&p, "k", 8)?,
        ops: p.get("n").map(|_| num(&p, "n", 0)).transpose()?,
        duration: dur(&p, "d", Duration::from_secs(10))?,
        size: num(&p, "size", 100)?,
        keys: num(&p, "keys", 1000)?,
        layout,
        prefill: p.is_set("prefill"),
        watchers: num(&p, "watchers", 100)?,
        streams: num(&p, "streams", 1000)?,
        web: p.get("web").map(str::to_owned),
        rate: num(&p, "rate", 50.0)?,
        grace: dur(&p, "grace", Duration::from_secs(2))?,
        cpu: match p.get("cpu") {
            Some(list) => super::cpu::parse_addrs(list)?,
            None => Vec::new(),
        },
    };
    let positive = |name: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(Failure::Usage(format!("bench: -{name} must be positive")))
        }
    };
    positive("c", o.inflight > 0)?;
    positive("k", o.conns > 0)?;
    positive("keys", o.keys > 0)?;
    positive("n", o.ops != Some(0))?;
    positive("d", !o.duration.is_zero())?;
    positive("watchers", o.watchers > 0)?;
    positive("streams", o.streams > 0)?;
    positive("rate", o.rate > 0.0 && o.rate.is_finite())?;
    Ok(o)
}

/// The web address for `-op sse` when -web is not given: the host of the
/// client address `addr`, port [`DEFAULT_WEB_PORT`].
pub(super) fn default_web(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    format!("{host}:{DEFAULT_WEB_PORT}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_with_defaults() {
        let o = parse_opts(&[]).unwrap();
        assert_eq!((o.op, o.inflight, o.conns, o.keys), (Op::Set, 64, 8, 1000));
        assert_eq!(o.duration, Duration::from_secs(10));
        let o = parse_opts(&strs(&[
            "-op", "get", "-keys", "100000", "-prefill", "-layout", "nested", "-n", "5", "-d", "1m",
        ]))
        .unwrap();
        assert_eq!(
            (o.op, o.keys, o.layout, o.ops),
            (Op::Get, 100_000, Layout::Nested, Some(5))
        );
        assert!(o.prefill);
        for bad in [
            vec!["-op", "frob"],
            vec!["-c", "0"],
            vec!["-c", "x"],
            vec!["-layout", "deep"],
            vec!["-rate", "0"],
            vec!["-d", "soon"],
            vec!["extra"],
        ] {
            assert!(parse_opts(&strs(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sse_options_and_web_address() {
        let o = parse_opts(&strs(&["-op", "sse"])).unwrap();
        assert_eq!((o.op, o.streams, o.web), (Op::Sse, 1000, None));
        let o = parse_opts(&strs(&["-op", "sse", "-streams", "10", "-web", "h:1"])).unwrap();
        assert_eq!((o.streams, o.web.as_deref()), (10, Some("h:1")));
        assert!(parse_opts(&strs(&["-op", "sse", "-streams", "0"])).is_err());
        assert_eq!(default_web("10.0.0.1:8046"), "10.0.0.1:8000");
        assert_eq!(default_web("[::1]:8046"), "[::1]:8000");
    }
}
