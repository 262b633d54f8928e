//! The named scenarios: one cluster shape and one fault each, victims
//! chosen by slot (deterministic), durations in multiples of `-timeout`
//! (T). `tests/tests/nemesis.rs` runs a subset; `scripts/soak scenario
//! NAME` (or `scripts/soak all`) runs any of them.

use super::anomaly::Anomaly;
use super::fault::Fault;
use super::round::{run_round, RoundCfg, RoundReport};
use super::testbed::Testbed;

/// `-timeout` of the named scenarios, in seconds: small, so kicks happen
/// within a test; large enough that a debug build on a busy 2-core
/// machine is not silent that long without a fault.
pub const TIMEOUT: f64 = 3.0;

/// A named scenario.
pub struct Scenario {
    /// Its name (`scripts/soak scenario NAME`).
    pub name: &'static str,
    /// CALs.
    pub cals: usize,
    /// Spare slaves.
    pub slaves: usize,
    /// Whether every node has a data directory
    /// ([`Testbed::start_durable`]).
    pub durable: bool,
    /// The fault, from the started testbed (whose `timeout` is T).
    pub fault: fn(&Testbed) -> Fault,
    /// What it shows.
    pub about: &'static str,
}

/// The node in slot `k` (`/ctl/cal/k`) as the cluster shows it now.
pub fn in_slot(tb: &Testbed, k: usize) -> usize {
    let slots = tb
        .slots_via(tb.live()[0])
        .unwrap_or_else(|e| panic!("slots: {e}"));
    let id = &slots[&format!("/ctl/cal/{k}")];
    tb.index_of(id)
        .unwrap_or_else(|| panic!("slot {k} holds {id:?}, no node of this test"))
}

/// The spare slaves (live nodes in no slot).
pub fn slaves(tb: &Testbed) -> Vec<usize> {
    let cals = tb.cals();
    tb.live()
        .into_iter()
        .filter(|i| !cals.contains(i))
        .collect()
}

/// Every named scenario.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "pause-short",
        cals: 3,
        slaves: 1,
        durable: false,
        fault: |tb| Fault::Pause { node: in_slot(tb, 2), secs: tb.timeout / 3.0 },
        about: "a CAL SIGSTOPped for a third of -timeout: nobody kicked",
    },
    Scenario {
        name: "pause-long",
        cals: 3,
        slaves: 1,
        durable: false,
        fault: |tb| Fault::Pause { node: in_slot(tb, 2), secs: 3.0 * tb.timeout },
        about: "a CAL SIGSTOPped for 3 T: kicked, the slave takes its slot, it comes back as a slave",
    },
    Scenario {
        name: "kill-replace",
        cals: 3,
        slaves: 0,
        durable: false,
        fault: |tb| Fault::Kill { node: in_slot(tb, 1), secs: 2.0 * tb.timeout },
        about: "a CAL SIGKILLed and a new node attached: the dead CAL kicked, the new node takes its slot",
    },
    Scenario {
        name: "isolate-short",
        cals: 3,
        slaves: 1,
        durable: false,
        fault: |tb| Fault::Isolate { node: in_slot(tb, 2), secs: tb.timeout / 3.0 },
        about: "a CAL cut off both ways for a third of T: nobody kicked",
    },
    Scenario {
        name: "isolate-long",
        cals: 3,
        slaves: 1,
        durable: false,
        fault: |tb| Fault::Isolate { node: in_slot(tb, 2), secs: 3.0 * tb.timeout },
        about: "a CAL cut off both ways for 3 T: it alone is kicked, and comes back as a slave",
    },
    Scenario {
        name: "deaf",
        cals: 3,
        slaves: 1,
        durable: false,
        fault: |tb| Fault::Deaf { node: in_slot(tb, 2), secs: 2.0 * tb.timeout },
        about: "a CAL that can send but not receive, for 2 T: no other CAL kicked",
    },
    Scenario {
        name: "mute",
        cals: 3,
        slaves: 1,
        durable: false,
        fault: |tb| Fault::Mute { node: in_slot(tb, 2), secs: 3.0 * tb.timeout },
        about: "a CAL that can receive but not send, for 3 T: it alone is kicked",
    },
    Scenario {
        name: "link-down",
        cals: 3,
        slaves: 1,
        durable: false,
        fault: |tb| Fault::LinkDown { a: in_slot(tb, 0), b: in_slot(tb, 1), secs: 3.0 * tb.timeout },
        about: "only the link between two CALs down for 3 T, the third sees both: nobody kicked",
    },
    Scenario {
        name: "minority-partition",
        cals: 5,
        slaves: 1,
        durable: false,
        fault: |tb| Fault::Partition {
            groups: vec![vec![], vec![in_slot(tb, 3), in_slot(tb, 4)]],
            secs: tb.timeout / 2.0,
        },
        about: "5 CALs, two cut off for T/2: nobody kicked, writes go on on the majority",
    },
    Scenario {
        name: "majority-partition",
        cals: 3,
        slaves: 1,
        durable: false,
        fault: |tb| Fault::Partition { groups: vec![vec![], vec![in_slot(tb, 2)]], secs: 4.0 * tb.timeout },
        about: "3 CALs, one cut off for 4 T: only that one kicked",
    },
    Scenario {
        name: "majority-partition-60s",
        cals: 3,
        slaves: 1,
        durable: false,
        fault: |tb| Fault::Partition { groups: vec![vec![], vec![in_slot(tb, 2)]], secs: 60.0 },
        about: "3 CALs, one cut off for 60 s (the issue's acceptance case): only that one kicked",
    },
    Scenario {
        name: "no-majority-3",
        cals: 3,
        slaves: 1,
        durable: false,
        fault: |tb| Fault::Partition {
            groups: vec![vec![], vec![in_slot(tb, 1)], vec![in_slot(tb, 2)]],
            secs: 2.0 * tb.timeout,
        },
        about: "3 CALs in three groups for 2 T, then healed: the cluster heals by itself",
    },
    Scenario {
        name: "no-majority-5",
        cals: 5,
        slaves: 1,
        durable: false,
        fault: |tb| Fault::Partition {
            groups: vec![vec![], vec![in_slot(tb, 2), in_slot(tb, 3)], vec![in_slot(tb, 4)]],
            secs: 2.0 * tb.timeout,
        },
        about: "5 CALs as 2|2|1 for 2 T, then healed: the cluster heals by itself",
    },
    Scenario {
        name: "flap",
        cals: 3,
        slaves: 1,
        durable: false,
        fault: |tb| Fault::Flap { node: in_slot(tb, 1), down: tb.timeout / 3.0, up: tb.timeout / 3.0, times: 6 },
        about: "a CAL's links cut and healed six times, a third of T each: nobody kicked",
    },
    Scenario {
        name: "restart-cal",
        cals: 3,
        slaves: 1,
        durable: true,
        fault: |tb| Fault::Restart { nodes: vec![in_slot(tb, 1)], secs: tb.timeout / 3.0 },
        about: "every node with -d; a CAL SIGKILLed and started again on its DIR after T/3: the same CAL, nobody kicked",
    },
    Scenario {
        name: "restart-all",
        cals: 3,
        slaves: 1,
        durable: true,
        fault: |tb| Fault::Restart { nodes: tb.live(), secs: tb.timeout / 3.0 },
        about: "every node with -d; all of them SIGKILLed at once and started again after T/3: every acknowledged write kept, writes go on",
    },
    Scenario {
        name: "restart-long",
        cals: 3,
        slaves: 1,
        durable: true,
        fault: |tb| Fault::Restart { nodes: vec![in_slot(tb, 2)], secs: 3.0 * tb.timeout },
        about: "every node with -d; a CAL dead for 3 T: kicked, the slave takes its slot, it comes back under its id as a slave",
    },
];

/// The scenario named `name`.
pub fn named(name: &str) -> Option<&'static Scenario> {
    ALL.iter().find(|s| s.name == name)
}

/// Runs scenario `s` on a fresh testbed with `-timeout` [`TIMEOUT`], as
/// round number `round` (its files are under `/nem/r<round>/`, its logs,
/// if saved, in a directory named after it); its report.
pub fn run(s: &Scenario, seed: u64, round: u32) -> RoundReport {
    let mut tb = if s.durable {
        Testbed::start_durable(s.cals, s.slaves, TIMEOUT)
    } else {
        Testbed::start(s.cals, s.slaves, TIMEOUT)
    };
    let fault = (s.fault)(&tb);
    run_round(&mut tb, &RoundCfg { round, seed, fault })
}

/// Panics, listing every anomaly, unless the report has none.
pub fn assert_clean(name: &str, rep: &RoundReport) {
    print_report(name, rep);
    if !rep.anomalies.is_empty() {
        let list: Vec<String> = rep.anomalies.iter().map(Anomaly::to_string).collect();
        panic!(
            "scenario {name} ({}): {} anomalies:\n{}\nnode logs: {:?}",
            rep.fault,
            list.len(),
            list.join("\n"),
            rep.logs
        );
    }
}

/// Prints a round's figures (shown with a failure, or with --nocapture).
pub fn print_report(name: &str, rep: &RoundReport) {
    eprintln!(
        "{name}: {} [{}]: {} operations ({} with an outcome), {} watched changes \
         ({} starts-over), kicks {:?} ({} attempts logged), healed in {}, {} anomalies",
        rep.fault,
        rep.kind,
        rep.ops,
        rep.ops_checked,
        rep.watched,
        rep.watch_restarts,
        rep.kicks,
        rep.kick_attempts,
        rep.heal_secs
            .map_or("-".to_string(), |s| format!("{s:.1} s")),
        rep.anomalies.len()
    );
}
