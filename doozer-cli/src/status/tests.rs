//! The verdict and the output of `doozer status` on made-up views (the
//! real-process tests are in tests/tests/status.rs).

use std::time::Duration;

use super::render::{clean, js};
use super::*;

fn node(id: &str, slot: Option<&str>, answer: Answer) -> Node {
    Node {
        addr: Some(format!("127.0.0.1:{}", 8046 + id.len())),
        hostname: Some("h".into()),
        version: Some("0.1.0".into()),
        writable: Some(slot.is_some()),
        applied: Some(9),
        applied_rev: Some(10),
        slot: slot.map(str::to_string),
        answer,
        ..Node::new(id)
    }
}

fn yes(rev: i64) -> Answer {
    Answer::Yes {
        rev,
        took: Duration::from_micros(1500),
    }
}

fn no(why: &str) -> Answer {
    Answer::No(why.into())
}

fn snap(slots: &[(&str, Option<&str>)], nodes: Vec<Node>) -> Snapshot {
    Snapshot {
        cluster: "test".into(),
        rev: 100,
        via: Some("127.0.0.1:8046".into()),
        slots: slots
            .iter()
            .map(|(s, id)| (s.to_string(), id.map(str::to_string)))
            .collect(),
        nodes,
    }
}

fn three_cals(answers: [Answer; 3]) -> Vec<Node> {
    let [a, b, c] = answers;
    vec![
        node("A", Some("0"), a),
        node("BB", Some("1"), b),
        node("CCC", Some("2"), c),
    ]
}

const SLOTS: &[(&str, Option<&str>)] = &[("0", Some("A")), ("1", Some("BB")), ("2", Some("CCC"))];

#[test]
fn every_cal_answering_is_healthy_and_the_head_is_the_highest_rev() {
    let mut nodes = three_cals([yes(101), yes(103), yes(100)]);
    nodes.push(node("S", None, yes(90)));
    let r = Report::assess(snap(SLOTS, nodes), None, 1000);
    assert_eq!(r.problems, Vec::<String>::new());
    assert_eq!(
        (r.head, r.cals, r.cals_answered, r.majority),
        (103, 3, 3, true)
    );
    let lags: Vec<Option<i64>> = r.snap.nodes.iter().map(|n| n.lag(r.head)).collect();
    assert_eq!(lags, [Some(2), Some(0), Some(3), Some(13)]);
    let text = text_of(&r);
    assert!(text.contains("head rev 103 (read at rev 100 from 127.0.0.1:8046)"));
    assert!(text.contains("CAL slot 1"), "{text}");
    assert!(text
        .lines()
        .any(|l| l.starts_with("S ") && l.contains("slave")));
    assert!(text.ends_with("healthy\n"), "{text}");
}

fn text_of(r: &Report) -> String {
    render::text(r)
}

#[test]
fn a_silent_cal_is_named_and_the_majority_still_counts() {
    let nodes = three_cals([yes(100), yes(100), no("connection refused")]);
    let r = Report::assess(snap(SLOTS, nodes), None, 1000);
    assert_eq!(
        r.problems,
        ["CAL CCC (slot 2, 127.0.0.1:8049) did not answer: connection refused"]
    );
    assert_eq!((r.cals_answered, r.majority), (2, true));
    assert!(text_of(&r).contains("CALs answering: 2 of 3 (a majority)"));
}

#[test]
fn without_a_majority_every_silent_cal_and_the_majority_are_reasons() {
    let nodes = three_cals([yes(100), no("x"), no("y")]);
    let r = Report::assess(snap(SLOTS, nodes), None, 1000);
    assert_eq!(r.problems.len(), 3, "{:?}", r.problems);
    assert_eq!(r.problems[0], "no majority of CALs answers: 1 of 3");
    assert!(!r.majority);
}

#[test]
fn a_cal_too_far_behind_is_a_reason_a_slave_is_not() {
    let mut nodes = three_cals([yes(2000), yes(2000), yes(999)]);
    nodes.push(node("S", None, yes(1)));
    let r = Report::assess(snap(SLOTS, nodes.clone()), None, 1000);
    assert_eq!(
        r.problems,
        ["CAL CCC (slot 2, 127.0.0.1:8049) is 1001 revs behind the head 2000 (more than 1000)"]
    );
    let r = Report::assess(snap(SLOTS, nodes), None, 1001);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}

#[test]
fn free_slots_need_answering_slaves() {
    let slots = [("0", Some("A")), ("1", None), ("10", None), ("2", None)];
    let only_cal = || vec![node("A", Some("0"), yes(100))];
    let r = Report::assess(snap(&slots, only_cal()), None, 1000);
    assert_eq!(
        r.problems,
        [
            "CAL slot 1 is free and no slave answers to take it",
            "CAL slot 10 is free and no slave answers to take it",
            "CAL slot 2 is free and no slave answers to take it",
        ]
    );
    // A slave that does not answer cannot take a slot either.
    let mut nodes = only_cal();
    nodes.push(node("S", None, no("refused")));
    nodes.push(node("T", None, yes(100)));
    let r = Report::assess(snap(&slots, nodes), None, 1000);
    assert_eq!(
        r.problems,
        ["CAL slots 1, 10, 2 are free and only 1 slave answers to take them"]
    );
    let mut nodes = only_cal();
    for id in ["S", "T", "U"] {
        nodes.push(node(id, None, yes(100)));
    }
    let r = Report::assess(snap(&slots, nodes), None, 1000);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert!(text_of(&r).contains("free CAL slots: 1, 10, 2\n"));
}

#[test]
fn slots_sort_numerically() {
    let mut names = vec!["10", "x", "2", "1", "a"];
    names.sort_by(|a, b| slot_order(a, b));
    assert_eq!(names, ["1", "2", "10", "a", "x"]);
}

#[test]
fn json_strings_are_escaped() {
    assert_eq!(js("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u0001é""#);
    assert_eq!(clean("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
}

#[test]
fn json_has_every_field() {
    let mut nodes = three_cals([yes(100), yes(100), no("refused \"now\"")]);
    nodes.push(Node {
        hostname: Some("evil\n\"host".into()),
        ..node("S", None, yes(99))
    });
    let ns = NsView {
        entries: vec![("A".into(), "127.0.0.1:8047".into())],
        boot: Some("A".into()),
        error: None,
    };
    let r = Report::assess(snap(SLOTS, nodes), Some(ns), 1000);
    let j = render::json(&r);
    assert!(j.ends_with("}\n") && !j.trim_end().contains('\n'), "{j}");
    for want in [
        r#"{"cluster":"test","head":100,"rev":100,"via":"127.0.0.1:8046","healthy":false,"#,
        r#""cals":3,"cals_answered":2,"majority":true,"free_slots":[],"slaves_answered":1,"#,
        r#""max_lag":1000,"pulse_window":null,"pulse_error":null,"slots":[{"slot":"0","node":"A"},"#,
        r#"{"id":"A","addr":"127.0.0.1:8047","hostname":"h","version":"0.1.0","role":"cal","slot":"0","writable":true,"applied":9,"applied_rev":10,"answered":true,"rev":100,"lag":0,"pulse_age":null,"ms":1.500,"error":null}"#,
        r#""answered":false,"rev":null,"lag":null,"pulse_age":null,"ms":null,"error":"refused \"now\""}"#,
        r#""hostname":"evil\n\"host","#,
        r#""role":"slave","slot":null,"writable":false,"#,
        r#""ns":{"entries":[{"id":"A","addr":"127.0.0.1:8047"}],"boot":"A","error":null}}"#,
    ] {
        assert!(j.contains(want), "{want}\nnot in\n{j}");
    }
    let t = text_of(&r);
    assert!(t.contains("evil\\n\"host"), "{t}");
    assert!(
        t.contains("name service: test's CALs: A=127.0.0.1:8047\n"),
        "{t}"
    );
}

#[test]
fn a_name_given_to_another_cluster_is_a_problem() {
    let view = |ids: &[&str]| NsView {
        entries: ids
            .iter()
            .map(|id| (id.to_string(), "127.0.0.1:9".to_string()))
            .collect(),
        boot: Some("NEW".into()),
        error: None,
    };
    let healthy = three_cals([yes(100), yes(100), yes(100)]);
    // Registered under its name (even partly): no conflict.
    let r = Report::assess(snap(SLOTS, healthy.clone()), Some(view(&["A", "NEW"])), 10);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    // Nothing registered: not a conflict either.
    let r = Report::assess(snap(SLOTS, healthy.clone()), Some(view(&[])), 10);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    // Only another cluster's nodes under the name.
    let r = Report::assess(snap(SLOTS, healthy), Some(view(&["NEW"])), 10);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    let p = &r.problems[0];
    assert!(
        p.starts_with("name conflict") && p.contains("seed NEW") && p.contains("\"test\""),
        "{p}"
    );
}

/// The cells of the table row of node `id` (columns are two or more
/// spaces apart; no cell holds two spaces).
fn cells<'a>(text: &'a str, id: &str) -> Vec<&'a str> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .unwrap_or_else(|| panic!("no row {id} in {text}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// Three CALs (C answering or not) and a slave, each CAL's pulse age as
/// given (`None`: not seen), judged with a 2 s window.
fn pulsed(ages: [Option<u64>; 3], c: Answer, error: Option<&str>) -> Report {
    let mut nodes = three_cals([yes(100), yes(100), c]);
    nodes.push(node("S", None, yes(100)));
    for (n, age) in nodes.iter_mut().zip(ages) {
        n.pulse_age = age.map(Duration::from_millis);
    }
    let mut r = Report::assess(snap(SLOTS, nodes), None, 1000);
    r.judge_pulses(PulseView {
        window: Duration::from_secs(2),
        error: error.map(str::to_string),
    });
    r
}

#[test]
fn every_cal_pulsing_is_healthy_and_shows_its_age() {
    let r = pulsed([Some(400), Some(1250), Some(0)], yes(100), None);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let t = text_of(&r);
    assert!(t.contains("  LAG  PULSE  ANSWERED\n"), "{t}");
    assert_eq!(cells(&t, "A")[8], "0.4 s", "{t}");
    assert_eq!(cells(&t, "BB")[8], "1.2 s", "{t}");
    assert_eq!(cells(&t, "CCC")[8], "0.0 s", "{t}");
    // A slave does not pulse: a dash, judged by nobody.
    assert_eq!(cells(&t, "S")[8], "-", "{t}");
    assert!(
        t.contains("\npulses: 3 of 3 CALs pulsed within 2.0 s\n"),
        "{t}"
    );
    let j = render::json(&r);
    assert!(
        j.contains(r#""pulse_window":2.000,"pulse_error":null,"#),
        "{j}"
    );
    assert!(j.contains(r#""lag":0,"pulse_age":0.400,"ms""#), "{j}");
    assert!(j.contains(r#""pulse_age":1.250,"#), "{j}");
}

#[test]
fn a_cal_that_answers_but_does_not_pulse_while_others_do_is_named() {
    let r = pulsed([Some(400), Some(300), None], yes(100), None);
    assert_eq!(
        r.problems,
        ["CAL CCC (slot 2, 127.0.0.1:8049) answers but did not pulse within 2.0 s (other CALs did)"]
    );
    let t = text_of(&r);
    assert_eq!(cells(&t, "CCC")[8], "> 2.0 s", "{t}");
    assert!(
        t.contains("\npulses: 2 of 3 CALs pulsed within 2.0 s\n"),
        "{t}"
    );
    assert!(render::json(&r).contains(r#""lag":0,"pulse_age":null,"ms""#));
    // A CAL that does not answer is named once, for that.
    let r = pulsed([Some(400), Some(300), None], no("refused"), None);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(r.problems[0].contains("did not answer: refused"));
}

#[test]
fn no_cal_pulsing_and_a_failed_watch_are_problems() {
    let r = pulsed([None, None, None], yes(100), None);
    assert_eq!(
        r.problems,
        ["no CAL pulsed within 2.0 s: the cluster decides nothing (or -pulse is shorter than the nodes' -pulse)"]
    );
    let r = pulsed([None, None, None], yes(100), Some("connection closed"));
    assert_eq!(
        r.problems,
        ["cannot watch the pulses on 127.0.0.1:8046: connection closed"]
    );
    let t = text_of(&r);
    assert!(
        t.contains("\npulses: cannot watch them: connection closed\n"),
        "{t}"
    );
    assert_eq!(cells(&t, "A")[8], "-", "{t}");
    assert!(render::json(&r).contains(r#""pulse_error":"connection closed""#));
}
