//! The generator of random histories of correct executions, for
//! `random.rs`.

use std::collections::HashMap;

use super::*;

/// splitmix64.
pub(super) struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

/// The shape of a generated history.
pub(super) struct GenCfg {
    /// Clients issuing operations, one at a time each.
    pub(super) clients: usize,
    /// Operations in all.
    pub(super) ops: usize,
    /// Files (`/f0`, `/f1`, ...).
    pub(super) paths: usize,
    /// Probability that an operation times out.
    pub(super) p_timeout: f64,
    /// Greatest gap before a client's next invocation (µs, exclusive).
    pub(super) max_gap: u64,
    /// Greatest duration of an operation (µs).
    pub(super) max_dur: u64,
    /// Whether DELs are generated.
    pub(super) dels: bool,
}

/// The usual shape: 4 clients, 2 files, with DELs.
pub(super) fn cfg(ops: usize, p_timeout: f64) -> GenCfg {
    GenCfg {
        clients: 4,
        ops,
        paths: 2,
        p_timeout,
        max_gap: 20,
        max_dur: 40,
        dels: true,
    }
}

/// A history of a correct execution: each client issues operations one
/// at a time with random intervals; each takes effect at a random
/// point inside its interval (timed-out ones take effect or not), in
/// the order of those points, against a sequential model of the store.
/// Plain GETs read a random state at least as new as anything their
/// client saw.
pub(super) fn generate(seed: u64, cfg: &GenCfg) -> Vec<Op> {
    let mut rng = Rng(seed);
    let mut planned = plan(&mut rng, cfg);
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&i| planned[i].point);
    let mut model = Model {
        rev: 0,
        snaps: HashMap::new(),
        seen_global: vec![0i64; cfg.clients],
        seen_path: HashMap::new(),
    };
    for i in order {
        let p = &mut planned[i];
        if !p.applies {
            continue;
        }
        let c = p.op.client;
        let timed_out = p.op.complete_time.is_none();
        let result = model.apply(&mut rng, c, timed_out, &mut p.op.call);
        if timed_out {
            continue;
        }
        model.observe(c, &p.op.call, &result);
        p.op.result = Some(result);
    }
    // Timed-out operations that never applied still need their -2
    // conds resolved to something.
    let mut out: Vec<Op> = planned
        .into_iter()
        .map(|mut p| {
            if let Call::Set { cond_rev, .. } | Call::Del { cond_rev, .. } = &mut p.op.call {
                if *cond_rev == -2 {
                    *cond_rev = 3;
                }
            }
            p.op
        })
        .collect();
    out.sort_by_key(|o| o.invoke_time);
    out
}

/// An operation before it runs against the model.
struct Planned {
    /// The operation, without a result yet.
    op: Op,
    /// When it takes effect (orders the operations; unique in practice).
    point: u64,
    /// Whether it takes effect at all (only a timed-out one may not).
    applies: bool,
}

/// Each client's operations, one at a time, with random gaps, durations,
/// calls and timeouts.
fn plan(rng: &mut Rng, cfg: &GenCfg) -> Vec<Planned> {
    let paths: Vec<String> = (0..cfg.paths).map(|i| format!("/f{i}")).collect();
    let mut planned = Vec::new();
    let mut cursor = vec![0u64; cfg.clients];
    for _ in 0..cfg.ops {
        let c = rng.below(cfg.clients as u64) as usize;
        let inv = cursor[c] + rng.below(cfg.max_gap);
        let dur = 1 + rng.below(cfg.max_dur);
        let comp = inv + dur;
        cursor[c] = comp + 1;
        let path = paths[rng.below(paths.len() as u64) as usize].clone();
        let call = plan_call(rng, cfg, path);
        let timeout = rng.chance(cfg.p_timeout);
        planned.push(Planned {
            op: Op {
                client: c,
                invoke_time: inv,
                complete_time: if timeout { None } else { Some(comp) },
                call,
                result: None,
            },
            point: (inv * 1000 + rng.below(dur * 1000 + 1)) * 64 + rng.below(64),
            applies: !timeout || rng.chance(0.5),
        });
    }
    planned
}

/// A random call on `path`. A cond of -2 stands for "the client's last
/// seen rev of the file", filled in when the call runs.
fn plan_call(rng: &mut Rng, cfg: &GenCfg, path: String) -> Call {
    let bodies = ["a", "b", "c", "d"];
    let cond = match rng.below(4) {
        0 => -1,
        1 => 0,
        2 => -2,
        _ => rng.below(40) as i64,
    };
    let kind = match rng.below(10) {
        4 if !cfg.dels => 0,
        k => k,
    };
    match kind {
        0..=3 => Call::Set {
            path,
            cond_rev: cond,
            body: bodies[rng.below(4) as usize].as_bytes().to_vec(),
        },
        4 => Call::Del {
            path,
            cond_rev: cond,
        },
        5 | 6 => Call::Get { path },
        7 | 8 => Call::LinGet { path },
        _ => Call::Nop,
    }
}

/// Per path, the file after each change: (rev, Some((body, file rev))).
type Snaps = HashMap<String, Vec<(i64, Option<(Vec<u8>, i64)>)>>;

/// A sequential model of the store, and what each client has seen.
struct Model {
    /// The global rev.
    rev: i64,
    /// Every path's states.
    snaps: Snaps,
    /// Per client, the newest rev it has seen (plain reads never go back).
    seen_global: Vec<i64>,
    /// Per (client, path), the last rev of the file it saw.
    seen_path: HashMap<(usize, String), i64>,
}

impl Model {
    /// The current body and rev of `path`; `None` if missing.
    fn current(&self, path: &str) -> Option<(Vec<u8>, i64)> {
        self.snaps
            .get(path)
            .and_then(|v| v.last())
            .and_then(|s| s.1.clone())
    }

    /// Fills in a cond of -2 with client `c`'s last seen rev of `path`.
    fn resolve_cond(&self, c: usize, path: &str, cond_rev: &mut i64) {
        if *cond_rev == -2 {
            *cond_rev = *self.seen_path.get(&(c, path.to_string())).unwrap_or(&0);
        }
    }

    /// Runs `call` of client `c`; its outcome.
    fn apply(&mut self, rng: &mut Rng, c: usize, timed_out: bool, call: &mut Call) -> Outcome {
        match call {
            Call::Set {
                path,
                cond_rev,
                body,
            } => {
                self.resolve_cond(c, path, cond_rev);
                let file_rev = self.current(path).map_or(0, |f| f.1);
                self.rev += 1;
                let rev = self.rev;
                if *cond_rev == -1 || *cond_rev >= file_rev {
                    let snap = (rev, Some((body.clone(), rev)));
                    self.snaps.entry(path.clone()).or_default().push(snap);
                    Outcome::Rev(rev)
                } else {
                    Outcome::RevMismatch
                }
            }
            Call::Del { path, cond_rev } => {
                self.resolve_cond(c, path, cond_rev);
                let file_rev = self.current(path).map_or(0, |f| f.1);
                self.rev += 1;
                if *cond_rev == -1 || *cond_rev >= file_rev {
                    let snap = (self.rev, None);
                    self.snaps.entry(path.clone()).or_default().push(snap);
                    Outcome::Deleted
                } else {
                    Outcome::RevMismatch
                }
            }
            Call::Nop => {
                self.rev += 1;
                Outcome::Rev(self.rev)
            }
            Call::LinGet { path } => {
                self.rev += 1;
                let (body, r) = self.current(path).unwrap_or_default();
                Outcome::ReadAt {
                    at: self.rev,
                    body,
                    rev: r,
                }
            }
            Call::Get { path } => self.plain_read(rng, c, timed_out, path),
        }
    }

    /// A plain GET: a random state at least as new as anything client `c`
    /// saw.
    fn plain_read(&mut self, rng: &mut Rng, c: usize, timed_out: bool, path: &str) -> Outcome {
        let seen = self.seen_global[c];
        let x = seen + rng.below((self.rev - seen + 1) as u64) as i64;
        let st = self
            .snaps
            .get(path)
            .and_then(|v| v.iter().rev().find(|s| s.0 <= x))
            .and_then(|s| s.1.clone());
        let (body, r) = st.unwrap_or_default();
        if !timed_out {
            self.seen_global[c] = x;
        }
        Outcome::Read { body, rev: r }
    }

    /// Records what client `c` learned from a completed `call`.
    fn observe(&mut self, c: usize, call: &Call, result: &Outcome) {
        if !matches!(call, Call::Get { .. }) {
            self.seen_global[c] = self.rev;
        }
        if let Some(path) = call.path() {
            let r = match result {
                Outcome::Rev(r) => Some(*r),
                Outcome::Read { rev, .. } | Outcome::ReadAt { rev, .. } => Some(*rev),
                _ => None,
            };
            if let Some(r) = r {
                self.seen_path.insert((c, path.to_string()), r);
            }
        }
    }
}
