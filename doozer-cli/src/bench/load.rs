//! `-op get` and `-op set`: the optional prefill, the measured run, and
//! its report.

use std::io::Write;
use std::time::Instant;

use bytes::Bytes;
use doozer::Verb;

use crate::failure::Failure;

use super::drive::{drive, Driven, Limit, Rng};
use super::opts::{Layout, Op, Opts};
use super::target::{request, Target};

/// The path of key `i` in `layout`.
fn key_path(layout: Layout, i: u64) -> String {
    match layout {
        Layout::Flat => format!("/bench/flat/k{i}"),
        Layout::Nested => format!("/bench/n/{}/k{i}", i / 100),
    }
}

/// Get/set mode: prefills the keys if asked (always for `-op get`), then
/// drives the load and prints the report. Reads go to `reads`, writes
/// (the prefill, set mode) to `writes`.
pub(super) fn load_bench(reads: &Target, writes: &Target, o: &Opts) -> Result<(), Failure> {
    let value = Bytes::from(vec![b'x'; o.size]);
    let layout = o.layout;
    if o.prefill || o.op == Op::Get {
        prefill(writes, o, &value)?;
    }
    let keys = o.keys;
    let op = o.op;
    let make = |_: u64, rng: &mut Rng, tag: i32| {
        let path = key_path(layout, rng.below(keys));
        if op == Op::Get {
            let mut r = request(Verb::Get, tag);
            r.path = Some(path);
            r
        } else {
            let mut r = request(Verb::Set, tag);
            r.path = Some(path);
            r.rev = Some(doozer::rev::CLOBBER);
            r.value = Some(value.clone());
            r
        }
    };
    let limit = Limit {
        ops: o.ops,
        deadline: match o.ops {
            Some(_) => None,
            None => Some(Instant::now() + o.duration),
        },
    };
    let (label, t) = if op == Op::Get {
        ("get", reads)
    } else {
        ("set", writes)
    };
    let before = super::cpu::sample(&o.cpu)?;
    let driven = drive(t, o.conns, o.inflight, limit, &make, label)?;
    let after = super::cpu::sample(&o.cpu)?;
    let cpu =
        super::cpu::per_op_us(&before, &after, driven.total.ops).filter(|_| !o.cpu.is_empty());
    report(t, o, label, driven)?;
    if let Some(us) = cpu {
        let n = o.cpu.len();
        let nodes = if n == 1 { "node" } else { "nodes" };
        println!("server CPU per op: {us:.1} µs ({n} {nodes})");
    }
    Ok(())
}

/// Writes every key once, before the measure.
fn prefill(t: &Target, o: &Opts, value: &Bytes) -> Result<(), Failure> {
    let layout = o.layout;
    let set_key = |seq: u64, _: &mut Rng, tag: i32| {
        let mut r = request(Verb::Set, tag);
        r.path = Some(key_path(layout, seq));
        r.rev = Some(doozer::rev::CLOBBER);
        r.value = Some(value.clone());
        r
    };
    let limit = Limit {
        ops: Some(o.keys),
        deadline: None,
    };
    let Driven {
        total: stats,
        elapsed: secs,
        ..
    } = drive(t, o.conns, o.inflight, limit, &set_key, "prefill")?;
    if stats.errors > 0 {
        return Err(Failure::Other(format!(
            "prefill: {} of {} writes failed: {}",
            stats.errors,
            stats.ops,
            stats.first_error.unwrap_or_default()
        )));
    }
    if stats.stray > 0 {
        eprintln!(
            "prefill: {} responses to requests not in flight (ignored)",
            stats.stray
        );
    }
    eprintln!(
        "prefill: {} keys in {:.2} s ({:.0} ops/s)",
        o.keys,
        secs.as_secs_f64(),
        o.keys as f64 / secs.as_secs_f64()
    );
    Ok(())
}

/// Prints the report of a measure.
fn report(t: &Target, o: &Opts, label: &str, driven: Driven) -> Result<(), Failure> {
    let Driven {
        total: stats,
        elapsed,
        ops_by_addr,
        stray_by_addr,
    } = driven;
    let secs = elapsed.as_secs_f64();
    let h = &stats.hist;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "op: {label}  conns: {}  in flight: {}  size: {}  keys: {}  layout: {}",
        o.conns.min(o.inflight),
        o.inflight,
        o.size,
        o.keys,
        match o.layout {
            Layout::Flat => "flat",
            Layout::Nested => "nested",
        }
    )?;
    writeln!(out, "ops: {}", stats.ops)?;
    writeln!(out, "seconds: {secs:.3}")?;
    writeln!(out, "ops/s: {:.0}", stats.ops as f64 / secs.max(1e-9))?;
    writeln!(
        out,
        "latency µs: p50 {} p90 {} p99 {} max {}",
        h.quantile(0.5),
        h.quantile(0.9),
        h.quantile(0.99),
        h.max()
    )?;
    if t.addrs.len() > 1 {
        let n = t.addrs.len();
        for (k, (addr, ops)) in t.addrs.iter().zip(&ops_by_addr).enumerate() {
            let conns = (0..o.conns.min(o.inflight)).filter(|i| i % n == k).count();
            write!(
                out,
                "node {addr}: conns {conns}  ops {ops}  ops/s {:.0}",
                *ops as f64 / secs.max(1e-9)
            )?;
            match stray_by_addr[k] {
                0 => writeln!(out)?,
                stray => writeln!(out, "  stray {stray}")?,
            }
        }
    }
    writeln!(out, "errors: {}", stats.errors)?;
    if let Some(e) = stats.first_error {
        eprintln!("first error: {e}");
    }
    if let Some(tag) = stats.first_stray {
        // The report stands (stray answers are not counted as ops), but
        // the exit status tells a script the server misbehaved.
        writeln!(out, "stray responses: {}", stats.stray)?;
        return Err(Failure::Other(format!(
            "{} responses to requests this run did not have in flight (first tag {})",
            stats.stray,
            tag.map_or("none".into(), |t| t.to_string())
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layouts() {
        assert_eq!(key_path(Layout::Flat, 1234), "/bench/flat/k1234");
        assert_eq!(key_path(Layout::Nested, 1234), "/bench/n/12/k1234");
    }
}
