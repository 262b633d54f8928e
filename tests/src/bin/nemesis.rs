//! `nemesis`: the nemesis suite outside `cargo test` (run it through
//! `scripts/soak`, which builds it and cleans up after it).
//!
//! ```text
//! nemesis soak [SECONDS]      random fault rounds for SECONDS of wall
//!                             clock (default $DURATION, else 1800); with
//!                             $FAULTS instead, until faults have been held
//!                             that long in all; seed $SEED (else random,
//!                             printed)
//! nemesis scenario NAME...    the named scenarios, once each
//! nemesis all                 every named scenario, once each
//! nemesis list                the named scenarios
//! ```
//!
//! Prints a line per round and, at the end, the figures (a Markdown
//! table) and every anomaly; exits 1 if there was any, 2 on a usage
//! error. Node logs of rounds with anomalies are saved under
//! `<target>/debug/nemesis-logs/`.

use std::process::ExitCode;
use std::time::Duration;

use doozer_tests::nemesis::scenarios::{self, print_report, ALL, TIMEOUT};
use doozer_tests::nemesis::soak::{soak, Figures, Limit, SoakCfg};
use doozer_tests::nemesis::RoundReport;

/// Parses `1800`, `90s`, `30m` or `2h` into a duration.
fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// A seed from $SEED, or from the clock.
fn seed() -> u64 {
    match std::env::var("SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("SEED={s:?} is not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

/// Prints the figures and every anomaly; the exit code.
fn conclude(f: &Figures) -> ExitCode {
    println!("\n{}", f.table());
    for (round, a) in &f.anomalies {
        println!("round {round}: {a}");
    }
    if f.anomalies.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One line per round on stdout.
fn show(rep: &RoundReport) {
    print_report(&format!("round {}", rep.round), rep);
    println!(
        "round {}: {} [{}]: {} ops checked, {} watched, kicks {:?}, heal {}, {} anomalies{}",
        rep.round,
        rep.fault,
        rep.kind,
        rep.ops_checked,
        rep.watched,
        rep.kicks,
        rep.heal_secs
            .map_or("never".into(), |s| format!("{s:.1} s")),
        rep.anomalies.len(),
        rep.logs
            .as_ref()
            .map_or(String::new(), |p| format!(" (logs: {})", p.display()))
    );
    for a in &rep.anomalies {
        println!(
            "  {}",
            doozer_tests::nemesis::truncate(&a.to_string(), 2000)
        );
    }
}

fn run_soak(arg: Option<&String>) -> ExitCode {
    let faults = std::env::var("FAULTS").ok();
    let text = arg
        .cloned()
        .or(faults.clone())
        .or_else(|| std::env::var("DURATION").ok())
        .unwrap_or("1800".into());
    let Some(d) = parse_duration(&text) else {
        eprintln!("nemesis: bad duration {text:?} (e.g. 1800, 90s, 30m, 2h)");
        return ExitCode::from(2);
    };
    let limit = match (arg, faults) {
        (None, Some(_)) => Limit::Faults(d),
        _ => Limit::Wall(d),
    };
    let seed = seed();
    println!("nemesis soak: {limit:?}, seed {seed} (SEED={seed} replays the schedule)");
    let cfg = SoakCfg {
        limit,
        seed,
        timeout: TIMEOUT,
        segment: Duration::from_secs(300),
    };
    let f = soak(&cfg, show);
    println!("seed {seed}");
    conclude(&f)
}

fn run_scenarios(names: &[String]) -> ExitCode {
    let mut f = Figures::default();
    for (k, name) in names.iter().enumerate() {
        let Some(s) = scenarios::named(name) else {
            eprintln!("nemesis: no scenario {name:?}; `nemesis list` names them");
            return ExitCode::from(2);
        };
        println!("scenario {name}: {}", s.about);
        let rep = scenarios::run(s, 0x5eed ^ k as u64, k as u32 + 1);
        show(&rep);
        f.clusters += 1;
        f.add(&rep);
    }
    conclude(&f)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("soak") => run_soak(args.get(1)),
        Some("scenario") if args.len() > 1 => run_scenarios(&args[1..]),
        Some("all") => run_scenarios(&ALL.iter().map(|s| s.name.to_string()).collect::<Vec<_>>()),
        Some("list") => {
            for s in ALL {
                println!("{:24} {}", s.name, s.about);
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: nemesis soak [SECONDS|90s|30m|2h] | scenario NAME... | all | list");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1800"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("2d"), None);
        assert_eq!(parse_duration("m"), None);
    }
}
