//! `doozer status` (docs/reference.md#doozer-status) against real clusters:
//! a healthy three-CAL cluster with a slave (exit 0, every node with its
//! role, the JSON form), then the same cluster with one CAL SIGKILLed
//! (exit 2 naming it, the majority still answering); a free CAL slot with
//! no slave to take it (exit 2 naming the slot); a cluster with a secret
//! (the nodes are asked with the URI's secret).
//!
//! Every node is given `-t 10s` to answer: the machine may be slow, and a
//! test must not assert speed. A killed node refuses at once.

use doozer_proto::ctl;
use doozer_tests::cluster::Cluster;
use doozer_tests::*;
use serde_json::Value;

/// Runs `doozer -a URI status ARGS...` with a generous `-t` and
/// `-pulse` (a loaded machine may hold up a pulse for seconds; a healthy
/// cluster ends the wait at its last CAL's pulse anyway), unless ARGS
/// give their own `-pulse`.
fn status(uri: &str, args: &[&str]) -> CmdOutput {
    let mut all = vec!["status", "-t", "10s"];
    if !args.contains(&"-pulse") {
        all.extend(["-pulse", "10s"]);
    }
    all.extend_from_slice(args);
    doozer_with(&[("DOOZER_URI", uri)], &all, b"")
}

/// The JSON object `doozer status -json` printed (one line).
fn status_json(out: &CmdOutput) -> Value {
    let text = out.out();
    assert_eq!(text.lines().count(), 1, "one line of JSON: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The table row of node `id` (the line that starts with it).
fn row<'a>(table: &'a str, id: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .unwrap_or_else(|| panic!("no row for {id} in\n{table}"))
}

/// The PULSE cell of node `id`'s row (columns are two or more spaces
/// apart; no cell holds two spaces).
fn pulse_cell(table: &str, id: &str) -> String {
    let cells: Vec<&str> = row(table, id)
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let header: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("ID "))
        .expect("a header row")
        .split_whitespace()
        .collect();
    let k = header
        .iter()
        .position(|h| *h == "PULSE")
        .expect("a PULSE column");
    cells[k].to_string()
}

/// Seconds in a PULSE cell (`0.4 s`), or `None` if it is not a number.
fn pulse_secs(cell: &str) -> Option<f64> {
    cell.strip_suffix(" s")?.parse().ok()
}

/// Runs [`status`], returning its output and how long it took.
fn timed_status(uri: &str, args: &[&str]) -> (CmdOutput, f64) {
    let start = std::time::Instant::now();
    let out = status(uri, args);
    (out, start.elapsed().as_secs_f64())
}

/// The JSON object of node `id`.
fn node<'a>(j: &'a Value, id: &str) -> &'a Value {
    j["nodes"]
        .as_array()
        .expect("nodes is an array")
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("no node {id} in {j}"))
}

/// The cluster name as the node holds it.
fn cluster_name(c: &Cluster) -> String {
    let (body, _) = c.d(0).raw().must_get(ctl::NAME_PATH);
    String::from_utf8(body).expect("a cluster name is text")
}

/// Every CAL of `c` (0 to 2) pulsed while status watched: an age in
/// the table no older than the command itself (`took` seconds); the
/// slave does not pulse.
fn assert_pulses_seen(c: &Cluster, slave: usize, table: &str, took: f64) {
    // Every CAL pulsed while status watched: an age no older than the
    // command itself; the slave does not pulse.
    for i in 0..3 {
        let cell = pulse_cell(table, c.id(i));
        let age = pulse_secs(&cell).unwrap_or_else(|| panic!("CAL {i}: {cell:?}\n{table}"));
        assert!(
            (0.0..=took + 0.05).contains(&age),
            "CAL {i}: {age} s, status took {took} s"
        );
    }
    assert_eq!(pulse_cell(table, c.id(slave)), "-", "{table}");
    assert!(
        table.contains("\npulses: 3 of 3 CALs pulsed within 10.0 s\n"),
        "{table}"
    );
}

/// [`assert_pulses_seen`], in the JSON form.
fn assert_pulses_seen_json(c: &Cluster, slave: usize, j: &Value, took: f64) {
    assert_eq!(
        (&j["pulse_window"], &j["pulse_error"]),
        (&10.0.into(), &Value::Null)
    );
    for i in 0..3 {
        let age = node(j, c.id(i))["pulse_age"].as_f64();
        assert!(
            age.is_some_and(|a| (0.0..=took).contains(&a)),
            "CAL {i}: {j}"
        );
    }
    assert_eq!(node(j, c.id(slave))["pulse_age"], Value::Null);
}

#[test]
fn a_healthy_cluster_then_one_cal_killed() {
    // A long -timeout: the killed CAL must not be kicked (and its slot
    // taken by the slave) while the test looks at it.
    let mut c = Cluster::start(3, &["-timeout", "600"]);
    let slave = c.attach(0, &[]);
    let wrote = c.set(0, "/status/x", 0, b"1");
    let uri = c.uri(0);
    let name = cluster_name(&c);

    let (out, took) = timed_status(&uri, &[]);
    let table = out.ok();
    assert_eq!(out.stderr, "", "healthy: nothing on stderr");
    assert_pulses_seen(&c, slave, &table, took);
    assert!(
        table.starts_with(&format!("cluster {name}\nhead rev ")),
        "{table}"
    );
    for i in 0..3 {
        let r = row(&table, c.id(i));
        let addr = c.d(i).addr().to_string();
        assert!(r.contains(&format!("  {addr}  ")), "{r}");
        assert!(r.contains(&format!("  CAL slot {i}  true  ")), "{r}");
        assert!(r.contains("  yes ("), "{r}");
    }
    let r = row(&table, c.id(slave));
    assert!(r.contains(&format!("  {}  ", c.d(slave).addr())), "{r}");
    assert!(r.contains("  slave  "), "{r}");
    assert!(r.contains("  yes ("), "{r}");
    assert_eq!(table.lines().filter(|l| l.contains("  yes (")).count(), 4);
    assert!(table.contains("\nfree CAL slots: none\n"), "{table}");
    assert!(
        table.contains("\nCALs answering: 3 of 3 (a majority)\n"),
        "{table}"
    );
    assert!(table.ends_with("\nhealthy\n"), "{table}");

    let (out, took) = timed_status(&uri, &["-json"]);
    out.expect_code(0);
    let j = status_json(&out);
    assert_eq!(j["cluster"], name.as_str());
    assert_pulses_seen_json(&c, slave, &j, took);
    let head = j["head"].as_i64().expect("head is a number");
    assert!(head >= wrote, "head {head} < the rev written, {wrote}");
    assert!(j["rev"].as_i64().expect("rev") >= wrote);
    assert_eq!(j["healthy"], true);
    assert_eq!(j["problems"], serde_json::json!([]));
    assert_eq!((&j["cals"], &j["cals_answered"]), (&3.into(), &3.into()));
    assert_eq!(j["majority"], true);
    assert_eq!(j["free_slots"], serde_json::json!([]));
    assert_eq!(j["nodes"].as_array().map(Vec::len), Some(4), "{j}");
    for i in 0..3 {
        let n = node(&j, c.id(i));
        assert_eq!(n["role"], "cal", "{n}");
        assert_eq!(n["slot"], i.to_string(), "{n}");
        assert_eq!(n["addr"], c.d(i).addr().to_string(), "{n}");
        assert_eq!(n["writable"], true, "{n}");
        assert_eq!(j["slots"][i]["node"], c.id(i), "{j}");
    }
    for i in 0..4 {
        let n = node(&j, c.id(i));
        assert_eq!(n["answered"], true, "{n}");
        let rev = n["rev"].as_i64().expect("an answering node has a rev");
        assert_eq!(n["lag"].as_i64(), Some(head - rev), "{n}");
        assert!(rev <= head && n["error"].is_null(), "{n}");
    }
    let n = node(&j, c.id(slave));
    assert_eq!((&n["role"], &n["slot"]), (&"slave".into(), &Value::Null));

    // One CAL SIGKILLed: named as not answering; two of three still do.
    c.kill(2);
    let out = status(&uri, &[]);
    out.expect_code(2);
    let dead = format!("CAL {} (slot 2, {})", c.id(2), c.d(2).addr());
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].starts_with(&format!("unhealthy: {dead} did not answer: ")),
        "{}",
        out.stderr
    );
    let table = out.out();
    assert!(row(&table, c.id(2)).contains("  no: "), "{table}");
    for i in [0, 1, slave] {
        assert!(row(&table, c.id(i)).contains("  yes ("), "{table}");
    }
    assert!(
        table.contains("\nCALs answering: 2 of 3 (a majority)\n"),
        "{table}"
    );
    assert!(
        table.ends_with("\nUNHEALTHY: 1 problem (on stderr)\n"),
        "{table}"
    );

    let out = status(&uri, &["-json"]);
    out.expect_code(2);
    let j = status_json(&out);
    assert_eq!(j["healthy"], false);
    assert_eq!(
        (&j["cals_answered"], &j["majority"]),
        (&2.into(), &true.into())
    );
    let problems = j["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{j}");
    assert!(problems[0].as_str().unwrap_or("").starts_with(&dead), "{j}");
    let n = node(&j, c.id(2));
    assert_eq!((&n["answered"], &n["rev"]), (&false.into(), &Value::Null));
    assert!(n["error"].as_str().is_some_and(|e| !e.is_empty()), "{n}");
}

#[test]
fn a_free_slot_with_no_slave_is_named() {
    let c = Cluster::seed(&[]);
    c.add_slot(0, 1);
    let uri = c.uri(0);
    let out = status(&uri, &[]);
    out.expect_code(2);
    assert_eq!(
        out.stderr,
        "unhealthy: CAL slot 1 is free and no slave answers to take it\n"
    );
    let table = out.out();
    assert!(row(&table, c.id(0)).contains("  CAL slot 0  "), "{table}");
    assert!(table.contains("\nfree CAL slots: 1\n"), "{table}");
    assert!(
        table.contains("\nCALs answering: 1 of 1 (a majority)\n"),
        "{table}"
    );

    let out = status(&uri, &["-json"]);
    out.expect_code(2);
    let j = status_json(&out);
    assert_eq!(j["free_slots"], serde_json::json!(["1"]));
    assert_eq!(
        j["slots"][1],
        serde_json::json!({"slot": "1", "node": null})
    );
    assert_eq!(j["slaves_answered"], 0);
}

#[test]
fn the_nodes_are_asked_with_the_uri_secret() {
    let c = Cluster::seed_with_secret(&[], Some("s3cr3t"));
    let out = status(&c.uri(0), &[]);
    let table = out.ok();
    assert!(row(&table, c.id(0)).contains("  yes ("), "{table}");
    // A wrong secret: the node refuses it, a one-line error, and the
    // secret is not shown.
    let wrong = format!("{}&sk=wrong-secret", c.d(0).uri());
    let out = status(&wrong, &[]);
    out.expect_code(2);
    assert!(out.stderr.starts_with("Error: "), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains("wrong-secret"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

/// A CAL SIGSTOPped: it neither answers nor pulses; status names it
/// (exit 2), shows its pulse as older than the window, and the two
/// others' as seen.
#[test]
fn a_stopped_cal_has_no_pulse_and_is_named() {
    // A long -timeout: the stopped CAL must not be kicked meanwhile.
    let mut c = Cluster::start(3, &["-timeout", "600"]);
    let uri = c.uri(0);
    c.stop(2);
    let (out, took) = timed_status(&uri, &["-pulse", "10s"]);
    out.expect_code(2);
    let table = out.out();
    let who = format!("CAL {} (slot 2, {})", c.id(2), c.d(2).addr());
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with(&format!("unhealthy: {who} did not answer: ")),
        "{}",
        out.stderr
    );
    assert_eq!(pulse_cell(&table, c.id(2)), "> 10.0 s", "{table}");
    for i in 0..2 {
        let cell = pulse_cell(&table, c.id(i));
        let age = pulse_secs(&cell).unwrap_or_else(|| panic!("CAL {i}: {cell:?}\n{table}"));
        assert!((0.0..=took).contains(&age), "CAL {i}: {age} s in {took} s");
    }
    assert!(
        table.contains("\npulses: 2 of 3 CALs pulsed within 10.0 s\n"),
        "{table}"
    );

    let out = status(&uri, &["-json", "-pulse", "10s"]);
    out.expect_code(2);
    let j = status_json(&out);
    assert_eq!(j["pulse_window"], 10.0);
    assert_eq!(node(&j, c.id(2))["pulse_age"], Value::Null, "{j}");
    for i in 0..2 {
        assert!(node(&j, c.id(i))["pulse_age"].is_f64(), "{j}");
    }
    let problems = j["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{j}");
    assert!(problems[0].as_str().unwrap_or("").starts_with(&who), "{j}");
    c.cont(2);
}
