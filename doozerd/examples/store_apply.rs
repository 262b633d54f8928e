//! The store's share of a write, alone: what applying decided values
//! costs one node's event loop, without sockets, consensus or clocks in
//! the way, so a change to the store can be measured on a noisy machine
//! (docs/benchmarks.md#the-stores-share-of-a-write).
//!
//! The load is the cluster bench's (`doozer bench -op set`): 100-byte
//! bodies over 1,000 files `/bench/flat/kN`, written in values of 20 SETs
//! (about what a CAL batches at 64 writes in flight), with the default
//! history of 2,000 revs, so old versions fall out of the window as they
//! do on a node under load. The keys come from a fixed pseudo-random
//! sequence, the same in every run.
//!
//! Run: `cargo run --release -p doozerd --example store_apply [WRITES]
//! [BATCH] [KEYS]` (defaults 500,000, 20, 1,000). It prints the best
//! of five rounds in ns per write.

use std::time::Instant;

use bytes::Bytes;
use doozerd::store::{Mutation, Store, Value};

fn arg(n: usize, default: usize) -> usize {
    match std::env::args().nth(n) {
        None => default,
        Some(a) => a.parse().unwrap_or_else(|_| {
            eprintln!("store_apply: bad argument {a:?}: want a number");
            std::process::exit(2)
        }),
    }
}

/// The next key of a fixed xorshift sequence.
fn next(state: &mut u64, keys: usize) -> usize {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state % keys as u64) as usize
}

fn value(writes: impl Iterator<Item = usize>, body: &Bytes) -> Value {
    Value {
        changes: writes
            .map(|k| Mutation::Set {
                path: format!("/bench/flat/k{k}"),
                rev: -1,
                body: body.clone(),
            })
            .collect(),
        guard: None,
        expires_after: None,
        tag: Bytes::new(),
    }
}

fn main() {
    let writes = arg(1, 500_000);
    let batch = arg(2, 20).max(1);
    let keys = arg(3, 1_000).max(1);
    let body = Bytes::from(vec![b'x'; 100]);
    let mut best = f64::MAX;
    for round in 1..=5 {
        let mut store = Store::new(2_000);
        let mut seqn = 1;
        for chunk in (0..keys).collect::<Vec<_>>().chunks(batch) {
            store.apply_value(seqn, &value(chunk.iter().copied(), &body));
            seqn += 1;
        }
        // Made before the clock starts, so only applying is timed.
        let mut state = 0x9e37_79b9_7f4a_7c15;
        let values: Vec<Value> = (0..writes.div_ceil(batch))
            .map(|_| value((0..batch).map(|_| next(&mut state, keys)), &body))
            .collect();
        let start = Instant::now();
        for v in &values {
            let applied = store.apply_value(seqn, v);
            assert_eq!(applied.len(), batch, "a value's every change applied");
            seqn += 1;
        }
        let ns = start.elapsed().as_nanos() as f64 / (values.len() * batch) as f64;
        println!("round {round}: {ns:.0} ns per write (rev {})", store.rev());
        best = best.min(ns);
    }
    println!("best: {best:.0} ns per write ({writes} writes, {batch} per value, {keys} keys)");
}
