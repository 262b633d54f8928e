//! The `doozer` command (docs/reference.md#the-doozer-command): every
//! command's stdout bytes and exit status against a real node, checked
//! against what the node holds over a raw connection.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use doozer_tests::*;

fn parse_rev(out: &CmdOutput) -> i64 {
    let s = out.ok();
    assert!(s.ends_with('\n'), "rev line ends with a newline: {s:?}");
    assert_eq!(s.lines().count(), 1, "{s:?}");
    s.trim_end()
        .parse()
        .unwrap_or_else(|_| panic!("not a rev: {s:?}"))
}

#[test]
fn add_then_get_as_in_the_spec() {
    let d = Doozerd::start(&[]);
    // echo hi | doozer add /msg
    let out = doozer(&d, &["add", "/msg"], b"hi\n");
    let rev = parse_rev(&out);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    // doozer get /msg
    let out = doozer(&d, &["get", "/msg"], b"");
    assert_eq!(out.stdout, b"hi\n");
    assert_eq!(out.code, 0);
    // the node agrees
    assert_eq!(d.raw().must_get("/msg"), (b"hi\n".to_vec(), rev));
    // adding again is a rev mismatch: exit 1
    let out = doozer(&d, &["add", "/msg"], b"again");
    out.expect_code(1);
    assert_eq!(out.stderr.trim_end(), "Error: rev mismatch");
    assert!(out.stdout.is_empty());
    assert_eq!(d.raw().must_get("/msg"), (b"hi\n".to_vec(), rev));
}

#[test]
fn set_is_conditional() {
    let d = Doozerd::start(&[]);
    let r1 = parse_rev(&doozer(&d, &["set", "/s", "0"], b"one"));
    let r2 = parse_rev(&doozer(&d, &["set", "/s", &r1.to_string()], b"two"));
    assert!(r2 > r1);
    assert_eq!(d.raw().must_get("/s"), (b"two".to_vec(), r2));
    // a stale rev
    let out = doozer(&d, &["set", "/s", &r1.to_string()], b"three");
    out.expect_code(1);
    assert_eq!(out.stderr.trim_end(), "Error: rev mismatch");
    assert!(out.stdout.is_empty());
    assert_eq!(d.raw().must_get("/s"), (b"two".to_vec(), r2));
    // -1 clobbers
    let r3 = parse_rev(&doozer(&d, &["set", "/s", "-1"], b"four"));
    assert_eq!(d.raw().must_get("/s"), (b"four".to_vec(), r3));
    // a bad REV is a usage error
    let out = doozer(&d, &["set", "/s", "x"], b"five");
    out.expect_code(127);
    assert_eq!(d.raw().must_get("/s"), (b"four".to_vec(), r3));
}

#[test]
fn get_prints_the_exact_body() {
    let d = Doozerd::start(&[]);
    let body: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
    let rev = parse_rev(&doozer(&d, &["add", "/bin"], &body));
    let out = doozer(&d, &["get", "/bin"], b"");
    assert_eq!(out.code, 0);
    assert_eq!(out.stdout, body, "no newline added, binary safe");
    // an empty body prints nothing
    parse_rev(&doozer(&d, &["add", "/empty"], b""));
    let out = doozer(&d, &["get", "/empty"], b"");
    assert_eq!((out.stdout.as_slice(), out.code), (&b""[..], 0));
    // a missing file prints nothing, successfully
    let out = doozer(&d, &["get", "/missing"], b"");
    assert_eq!((out.stdout.as_slice(), out.code), (&b""[..], 0));
    // -r reads an old rev
    let r2 = parse_rev(&doozer(&d, &["set", "/bin", &rev.to_string()], b"new"));
    let out = doozer(&d, &["-r", &rev.to_string(), "get", "/bin"], b"");
    assert_eq!(out.stdout, body);
    let out = doozer(&d, &["-r", &r2.to_string(), "get", "/bin"], b"");
    assert_eq!(out.stdout, b"new");
    let out = doozer(&d, &["get", "/bin"], b"");
    assert_eq!(out.stdout, b"new");
    // -r also after the command name
    let out = doozer(&d, &["get", "-r", &rev.to_string(), "/bin"], b"");
    assert_eq!(out.stdout, body);
}

#[test]
fn get_of_a_directory_is_exit_2() {
    let d = Doozerd::start(&[]);
    parse_rev(&doozer(&d, &["add", "/dir/f"], b"x"));
    let out = doozer(&d, &["get", "/dir"], b"");
    out.expect_code(2);
    assert!(out.stderr.starts_with("Error: "), "{}", out.stderr);
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn del_removes_a_file_if_rev_allows() {
    let d = Doozerd::start(&[]);
    let r1 = parse_rev(&doozer(&d, &["add", "/del/f"], b"x"));
    parse_rev(&doozer(&d, &["add", "/del/g"], b"y"));
    // stale rev
    let out = doozer(&d, &["del", "/del/f", &(r1 - 1).to_string()], b"");
    out.expect_code(1);
    assert_eq!(out.stderr.trim_end(), "Error: rev mismatch");
    assert_eq!(d.raw().must_get("/del/f"), (b"x".to_vec(), r1));
    // its own rev
    let out = doozer(&d, &["del", "/del/f", &r1.to_string()], b"");
    assert_eq!(out.ok(), "");
    assert_eq!(d.raw().must_get("/del/f"), (vec![], 0));
    // -1
    assert_eq!(doozer(&d, &["del", "/del/g", "-1"], b"").ok(), "");
    assert_eq!(d.raw().must_get("/del/g"), (vec![], 0));
    // a directory
    parse_rev(&doozer(&d, &["add", "/del/h/i"], b"z"));
    let out = doozer(&d, &["del", "/del/h", "-1"], b"");
    out.expect_code(2);
    assert!(out.stderr.starts_with("Error: "), "{}", out.stderr);
}

#[test]
fn rev_prints_the_current_revision() {
    let d = Doozerd::start(&[]);
    let r = parse_rev(&doozer(&d, &["add", "/r"], b"x"));
    let now = parse_rev(&doozer(&d, &["rev"], b""));
    assert!(now >= r);
    let raw = d.raw().rev();
    assert!(raw >= now);
    // nop moves it forward and prints nothing
    let out = doozer(&d, &["nop"], b"");
    assert_eq!(out.ok(), "");
    let after = parse_rev(&doozer(&d, &["rev"], b""));
    assert!(after > now, "nop consumed a rev: {now} -> {after}");
}

#[test]
fn stat_prints_file_and_directory_status() {
    let d = Doozerd::start(&[]);
    let r = parse_rev(&doozer(&d, &["add", "/st/f"], b"hello"));
    parse_rev(&doozer(&d, &["add", "/st/g/h"], b""));
    assert_eq!(doozer(&d, &["stat", "/st/f"], b"").ok(), format!("{r} 5\n"));
    assert_eq!(doozer(&d, &["stat", "/st"], b"").ok(), "d 2\n");
    assert_eq!(doozer(&d, &["stat", "/st/g"], b"").ok(), "d 1\n");
    let out = doozer(&d, &["stat", "/st/nope"], b"");
    out.expect_code(2);
    assert_eq!(out.stderr.trim_end(), "No such file or directory: /st/nope");
    assert!(out.stdout.is_empty());
    // at an old rev
    let out = doozer(&d, &["-r", &r.to_string(), "stat", "/st"], b"");
    assert_eq!(out.ok(), "d 1\n");
}

#[test]
fn find_lists_depth_first_sorted() {
    let d = Doozerd::start(&[]);
    for p in ["/t/a0", "/t/b/c0", "/t/a-", "/t/b/c/d", "/t/a/b", "/t/B"] {
        parse_rev(&doozer(&d, &["add", p], p.as_bytes()));
    }
    let out = doozer(&d, &["find", "/t"], b"");
    assert_eq!(
        out.ok(),
        "/t\n/t/B\n/t/a\n/t/a/b\n/t/a-\n/t/a0\n/t/b\n/t/b/c\n/t/b/c/d\n/t/b/c0\n"
    );
    // a file alone
    assert_eq!(doozer(&d, &["find", "/t/a0"], b"").ok(), "/t/a0\n");
    // the root starts with / and includes /ctl
    let root = doozer(&d, &["find", "/"], b"").ok();
    let lines: Vec<&str> = root.lines().collect();
    assert_eq!(lines[0], "/");
    assert!(lines.contains(&"/ctl/name"), "{root}");
    assert!(lines.contains(&"/t/b/c/d"), "{root}");
    let t_start = lines.iter().position(|l| *l == "/t").unwrap();
    assert!(
        lines[1..t_start].iter().all(|l| l.starts_with("/ctl")),
        "{root}"
    );
    // missing
    let out = doozer(&d, &["find", "/nope"], b"");
    out.expect_code(2);
    assert_eq!(out.stderr.trim_end(), "No such file or directory: /nope");
}

#[test]
fn wait_prints_one_record_for_a_change_from_another_process() {
    let d = Doozerd::start(&[]);
    let mut c = d.raw();
    // Without -r, wait starts after the current rev; keep writing until the
    // waiting process reports one of our writes.
    let mut w = Spawned::doozer(&d, &["wait", "/w/*"]);
    let mut writes = Vec::new();
    poll_until(DEADLINE, "doozer wait printed something", || {
        let n = writes.len();
        let rev = c.must_set("/w/x", -1, format!("body{n}").as_bytes());
        writes.push((rev, format!("body{n}")));
        (!w.stdout_now().is_empty()).then_some(())
    });
    let out = w.wait_stdout(DEADLINE, |o| parse_records(o).is_some_and(|r| r.len() == 1));
    let recs = parse_records(&out).unwrap();
    let (path, rev, kind, body) = &recs[0];
    assert_eq!((path.as_str(), kind.as_str()), ("/w/x", "set"));
    let (_, want_body) = writes
        .iter()
        .find(|(r, _)| r == rev)
        .unwrap_or_else(|| panic!("record rev {rev} is none of our writes {writes:?}"));
    assert_eq!(body, want_body.as_bytes());
    let expected = format!("/w/x {rev} set {}\n{want_body}\n", want_body.len());
    assert_eq!(String::from_utf8_lossy(&out), expected);
    let status = w
        .wait_exit(DEADLINE)
        .expect("doozer wait exits after one record");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn wait_with_rev_reports_history_and_deletes() {
    let d = Doozerd::start(&[]);
    let mut c = d.raw();
    let r1 = c.must_set("/h/a", 0, b"first");
    assert_ok(&c.del("/h/a", -1));
    let del_rev = c.wait("/h/a", r1 + 1).rev.unwrap();
    let out = doozer(&d, &["-r", &r1.to_string(), "wait", "/h/**"], b"");
    assert_eq!(out.ok(), format!("/h/a {r1} set 5\nfirst\n"));
    let out = doozer(&d, &["-r", &(r1 + 1).to_string(), "wait", "/h/a"], b"");
    assert_eq!(out.ok(), format!("/h/a {del_rev} del 0\n\n"));
}

#[test]
fn wait_with_a_timeout_gives_up() {
    let d = Doozerd::start(&[]);
    let out = doozer(&d, &["-t", "300ms", "wait", "/never"], b"");
    out.expect_code(2);
    assert_eq!(out.stderr.trim_end(), "Error: timeout");
    assert!(out.stdout.is_empty());
}

#[test]
fn watch_prints_every_change_in_order() {
    let d = Doozerd::start(&[]);
    let mut c = d.raw();
    let from = c.rev() + 1;
    let mut watch = Spawned::doozer(&d, &["-r", &from.to_string(), "watch", "/wa/**"]);
    let r1 = c.must_set("/wa/x", 0, b"1");
    c.must_set("/other", 0, b"not watched");
    let r2 = c.must_set("/wa/y/z", 0, b"two\nlines");
    assert_ok(&c.del("/wa/x", r1));
    let del_rev = c.wait("/wa/x", r1 + 1).rev.unwrap();
    let r4 = c.must_set("/wa/x", 0, b"");
    let out = watch.wait_stdout(DEADLINE, |o| parse_records(o).is_some_and(|r| r.len() >= 4));
    let expected = format!(
        "/wa/x {r1} set 1\n1\n/wa/y/z {r2} set 9\ntwo\nlines\n/wa/x {del_rev} del 0\n\n/wa/x {r4} set 0\n\n"
    );
    assert_eq!(String::from_utf8_lossy(&out), expected);
    // still running: watch never ends by itself
    assert!(watch
        .wait_exit(std::time::Duration::from_millis(100))
        .is_none());
    watch.kill();
}

#[test]
fn touch_rewrites_a_file_with_its_own_body() {
    let d = Doozerd::start(&[]);
    let r1 = parse_rev(&doozer(&d, &["add", "/touch"], b"keep me"));
    let out = doozer(&d, &["touch", "/touch"], b"ignored stdin");
    assert_eq!(out.ok(), "");
    let (body, r2) = d.raw().must_get("/touch");
    assert_eq!(body, b"keep me");
    assert!(r2 > r1);
    // absent: created empty
    assert_eq!(doozer(&d, &["touch", "/new/touched"], b"").ok(), "");
    let (body, r3) = d.raw().must_get("/new/touched");
    assert_eq!(body, b"");
    assert!(r3 > r2);
}

#[test]
fn self_prints_the_node_id() {
    let d = Doozerd::start(&[]);
    let id = String::from_utf8(value_of(&d.raw().self_id())).unwrap();
    assert_eq!(doozer(&d, &["self"], b"").ok(), format!("{id}\n"));
}

#[test]
fn help_version_and_usage() {
    let d = Doozerd::start(&[]);
    let h = doozer(&d, &["-h"], b"").ok();
    for cmd in [
        "add", "set", "get", "del", "rev", "stat", "find", "wait", "watch", "touch", "nop", "self",
        "help",
    ] {
        assert!(h.contains(cmd), "usage lacks {cmd}: {h}");
    }
    assert_eq!(doozer(&d, &["help"], b"").ok(), h);
    let hg = doozer(&d, &["help", "get"], b"").ok();
    assert!(hg.contains("get PATH"), "{hg}");
    assert_ne!(hg, h);
    let v = doozer(&d, &["-v"], b"").ok();
    assert!(v.starts_with("doozer "), "{v}");
    assert_eq!(v.lines().count(), 1);
}

#[test]
fn usage_errors_exit_127() {
    let d = Doozerd::start(&[]);
    for args in [
        vec!["frob"],
        vec!["get"],
        vec!["get", "/a", "/b"],
        vec!["set", "/a"],
        vec!["del", "/a"],
        vec!["rev", "extra"],
        vec!["-nosuchflag", "rev"],
        vec![],
        vec!["help", "frob"],
    ] {
        let out = doozer(&d, &args, b"");
        assert_eq!(out.code, 127, "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // none of that touched the node
    let mut c = d.raw();
    assert_eq!(c.must_get("/a"), (vec![], 0));
}

#[test]
fn errors_exit_2_with_a_message() {
    let d = Doozerd::start(&[]);
    // connection refused
    let dead = format!("doozer:?ca=127.0.0.1:{}", free_port());
    let out = doozer_with(&[("DOOZER_URI", &dead)], &["rev"], b"");
    out.expect_code(2);
    assert!(out.stderr.starts_with("Error: "), "{}", out.stderr);
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    // a bad path
    let out = doozer(&d, &["get", "no-slash"], b"");
    out.expect_code(2);
    assert!(out.stderr.starts_with("Error: "), "{}", out.stderr);
    // a bad URI
    let out = doozer_with(&[("DOOZER_URI", "http://x")], &["rev"], b"");
    assert_ne!(out.code, 0);
    assert!(!out.stderr.is_empty());
}

#[test]
fn dash_a_overrides_doozer_uri_and_failover_addresses_work() {
    let d = Doozerd::start(&[]);
    let dead = format!("127.0.0.1:{}", free_port());
    // -a wins over a dead DOOZER_URI
    let out = doozer_with(
        &[("DOOZER_URI", &format!("doozer:?ca={dead}"))],
        &["-a", &d.uri(), "rev"],
        b"",
    );
    parse_rev(&out);
    // a dead address first, then the live one
    let uri = format!("doozer:?ca={dead}&ca={}", d.addr());
    let out = doozer_with(&[("DOOZER_URI", &uri)], &["add", "/fo"], b"x");
    let rev = parse_rev(&out);
    assert_eq!(d.raw().must_get("/fo"), (b"x".to_vec(), rev));
}

#[test]
fn watch_into_a_closed_pipe_ends_quietly() {
    // `doozer watch GLOB | head -2`: when the reader goes away, watch stops
    // with status 0 and says nothing (doozer-cli/src/main.rs).
    let d = Doozerd::start(&[]);
    let mut c = d.raw();
    let from = c.rev() + 1;
    let mut child = Command::new(doozer_bin())
        .env_remove("DOOZER_BOOT_URI")
        .env("DOOZER_URI", d.uri())
        .args(["-r", &from.to_string(), "watch", "/p/*"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // kill the child even if an assertion below fails
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut child = KillOnDrop(child);
    let rev = c.must_set("/p/a", 0, b"one");
    let mut reader = BufReader::new(stdout);
    let mut header = String::new();
    reader.read_line(&mut header).unwrap();
    assert_eq!(header, format!("/p/a {rev} set 3\n"));
    drop(reader); // the reader goes away
                  // Further changes make watch write into the closed pipe.
    let status = poll_until(DEADLINE, "doozer watch exits after its reader left", || {
        c.must_set("/p/a", -1, b"more");
        child.0.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0));
    let mut err = String::new();
    stderr.read_to_string(&mut err).unwrap();
    assert_eq!(err, "", "watch complained about the closed pipe");
}

#[test]
fn stdin_over_the_value_limit_is_refused_without_reading_it_all() {
    // docs/behaviour.md#doozer-command: the CLI reads at most the body
    // limit plus one byte, and refuses more with the node's own words
    // (it used to send it whole, and got "connection reset" above the
    // frame limit).
    let d = Doozerd::start(&[]);
    let limit = doozer::MAX_BODY_LEN;
    let want = "Error: value too large: more than 49152 bytes on stdin; the limit is 49152 bytes";
    let rev = parse_rev(&doozer(&d, &["add", "/at-limit"], &vec![b'x'; limit]));
    assert_eq!(d.raw().must_get("/at-limit"), (vec![b'x'; limit], rev));
    for len in [limit + 1, (1 << 20) + (4 << 10) + 1] {
        let out = doozer(&d, &["set", "/big", "-1"], &vec![b'y'; len]);
        out.expect_code(2);
        assert_eq!(out.stderr.trim_end(), want, "{len} bytes");
        assert!(out.stdout.is_empty());
    }
    // stdin that never ends: refused all the same.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(
        Command::new(doozer_bin())
            .env_remove("DOOZER_BOOT_URI")
            .env("DOOZER_URI", d.uri())
            .args(["add", "/endless"])
            .stdin(std::fs::File::open("/dev/zero").expect("/dev/zero"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn doozer"),
    );
    let status = poll_until(CMD_DEADLINE, "doozer add from /dev/zero to end", || {
        child.0.try_wait().expect("wait")
    });
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert_eq!(status.code(), Some(2));
    assert_eq!(stderr.trim_end(), want);
    // Nothing was written.
    let mut c = d.raw();
    assert_eq!(c.must_get("/big"), (vec![], 0));
    assert_eq!(c.must_get("/endless"), (vec![], 0));
}
