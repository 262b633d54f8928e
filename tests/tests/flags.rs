//! doozerd's command line (docs/reference.md#doozerd-flags): `-v`, `-h`, bad
//! flags and values, busy and bad addresses, flags this build refuses, and
//! the web viewer on `-w`.
//!
//! Exit codes are doozerd's documented choice (src/main.rs): 0 for `-v` and
//! `-h`, 2 for a bad command line, 1 when the node cannot start.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use doozer_tests::*;

/// A listen address nobody uses, so a daemon that wrongly accepts the
/// command line would start (and be killed by the harness) instead of
/// touching a default port.
fn spare_listen() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Asserts a failed start: non-zero exit `code`, exactly one line on stderr,
/// no panic text; returns that line.
fn assert_one_line_error(out: &CmdOutput, code: i32) -> String {
    assert_eq!(
        out.code,
        code,
        "exit code; stdout={:?} stderr={:?}",
        out.out(),
        out.stderr
    );
    assert!(
        !out.stderr.contains("panicked") && !out.stderr.contains("RUST_BACKTRACE"),
        "panic on stderr: {:?}",
        out.stderr
    );
    let text = out.stderr.trim_end_matches('\n');
    assert!(!text.is_empty(), "no error message on stderr");
    assert_eq!(
        text.lines().count(),
        1,
        "want exactly one line on stderr, got {:?}",
        out.stderr
    );
    text.to_string()
}

#[test]
fn dash_v_prints_the_version_and_exits_0() {
    let out = doozerd_run(&["-v"]);
    let stdout = out.ok();
    assert!(stdout.starts_with("doozerd "), "{stdout:?}");
    let version = stdout.trim_end().trim_start_matches("doozerd ");
    assert!(
        version.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "version {version:?}"
    );
    assert_eq!(stdout.lines().count(), 1);
    // the long spelling too
    assert_eq!(doozerd_run(&["--v"]).ok(), stdout);
}

#[test]
fn dash_h_prints_usage_with_every_flag() {
    let out = doozerd_run(&["-h"]);
    let text = out.ok();
    for flag in [
        "-l", "-a", "-b", "-c", "-w", "-timeout", "-pulse", "-fill", "-hist", "-spin", "-v",
    ] {
        assert!(text.contains(flag), "usage lacks {flag}: {text}");
    }
}

#[test]
fn unknown_flag_is_a_one_line_error() {
    let l = spare_listen();
    let line = assert_one_line_error(&doozerd_run(&["-l", &l, "-w", "false", "-nosuchflag"]), 2);
    assert!(line.contains("nosuchflag"), "{line}");
}

#[test]
fn bad_values_are_one_line_errors() {
    let l = spare_listen();
    for (args, mention) in [
        (vec!["-hist", "abc"], "hist"),
        (vec!["-hist", "0"], "hist"),
        (vec!["-hist=-3"], "hist"),
        (
            vec!["-spin", "1001"],
            "-spin \"1001\": want a whole number from 0 to 1000",
        ),
        (vec!["-c", "bad name"], "bad name"),
        (vec!["-c", ""], "-c"),
    ] {
        let mut full = vec!["-l", &l, "-w", "false"];
        full.extend(args.iter().copied());
        let line = assert_one_line_error(&doozerd_run(&full), 2);
        assert!(line.contains(mention), "{args:?}: {line}");
    }
    // a cluster name too long for the name-service paths it is part of
    // (`/ctl/ns/NAME/ID`, at most 4096 bytes): refused, not accepted with
    // writes that fail later
    let long = "n".repeat(60_000);
    let line = assert_one_line_error(&doozerd_run(&["-l", &l, "-w", "false", "-c", &long]), 2);
    assert_eq!(
        line,
        "doozerd: -c: a cluster name is at most 255 bytes, not 60000 \
         (it is part of the paths /ctl/ns/NAME/ID and /ctl/boot/NAME)"
    );
    // a flag without its value
    assert_one_line_error(&doozerd_run(&["-w", "false", "-l"]), 2);
    // a stray argument
    assert_one_line_error(&doozerd_run(&["-l", &l, "-w", "false", "stray"]), 2);
}

#[test]
fn bad_listen_addresses_are_one_line_errors() {
    for bad in ["nonsense", "127.0.0.1:99999", "127.0.0.1", ":x"] {
        let out = doozerd_run(&["-l", bad, "-w", "false"]);
        assert_ne!(out.code, 0);
        let line = assert_one_line_error(&out, out.code);
        assert!(line.contains("-l"), "{bad}: {line}");
    }
    // a bad web address too
    let l = spare_listen();
    let line = assert_one_line_error(&doozerd_run(&["-l", &l, "-w", "nonsense"]), 2);
    assert!(line.contains("-w"), "{line}");
}

#[test]
fn a_busy_port_is_a_one_line_error() {
    let first = Doozerd::start(&[]);
    let addr = first.addr().to_string();
    let out = doozerd_run(&["-l", &addr, "-w", "false"]);
    let line = assert_one_line_error(&out, 1);
    assert!(line.to_lowercase().contains("in use"), "{line}");
    assert!(line.contains(&addr), "{line}");
    assert!(
        line.contains("-l ADDR"),
        "says which flag to change: {line}"
    );
    // the first node is unharmed
    let mut c = first.raw();
    assert!(c.rev() >= 1);
}

#[test]
fn a_busy_web_port_is_a_one_line_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web = busy.local_addr().unwrap().to_string();
    let l = spare_listen();
    let line = assert_one_line_error(&doozerd_run(&["-l", &l, "-w", &web]), 1);
    assert!(line.contains(&web), "{line}");
    assert!(line.contains("-w false"), "says how to go on: {line}");
}

#[test]
fn web_on_the_listen_address_is_refused() {
    let l = spare_listen();
    assert_one_line_error(&doozerd_run(&["-l", &l, "-w", &l]), 2);
}

#[test]
fn unreachable_attach_boot_and_missing_tls_files_are_refused() {
    // Whether or not this build supports -a, -b and TLS, these command
    // lines cannot run a node: nothing listens at the -a / -b address, and
    // the TLS files do not exist.
    let dead = format!("127.0.0.1:{}", free_port());
    let dir = TempDir::new("flags");
    let cert = dir.path().join("missing-cert.pem");
    let key = dir.path().join("missing-key.pem");
    let cert = cert.to_str().unwrap();
    let key = key.to_str().unwrap();
    let boot = format!("doozer:?ca={dead}");
    let l = spare_listen();
    for extra in [
        vec!["-a", dead.as_str()],
        vec!["-b", boot.as_str()],
        vec!["-tlscert", cert, "-tlskey", key],
        vec!["-tlscert", cert],
    ] {
        let mut args = vec!["-l", l.as_str(), "-w", "false"];
        args.extend(extra.iter().copied());
        let out = doozerd_run(&args);
        assert_ne!(out.code, 0, "{extra:?} was accepted");
        let line = assert_one_line_error(&out, out.code);
        // the message names the flag or the value it could not use
        assert!(
            line.contains(extra[0]) || line.contains(extra[1]),
            "{extra:?}: {line}"
        );
    }
}

#[test]
fn go_style_flag_spellings_are_accepted() {
    // --hist and -hist=N both reach the config: with 3 revisions of history,
    // rev 1 is too late after a few writes.
    for spelling in [vec!["--hist", "3"], vec!["-hist=3"]] {
        let d = Doozerd::start(&spelling);
        let mut c = d.raw();
        let mut rev = 0;
        for _ in 0..6 {
            rev = c.must_set("/h", -1, b"x");
        }
        assert_err(&c.get("/h", Some(1)), ErrCode::TooLate);
        assert_ok(&c.get("/h", Some(rev)));
    }
}

/// Sends an HTTP/1.0 request and reads the whole response.
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to web viewer");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read HTTP response");
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = resp.split_once("\r\n\r\n").expect("HTTP head and body");
    (head.to_string(), body.to_string())
}

#[test]
fn web_flag_serves_an_html_page() {
    let web = format!("127.0.0.1:{}", free_port());
    let d = Doozerd::builder().web(&web).start();
    let (head, body) = http_get(&web, "/");
    let status = head.lines().next().unwrap_or_default();
    assert!(
        status.starts_with("HTTP/1.") && status.contains(" 200"),
        "status line {status:?}"
    );
    assert!(
        head.to_lowercase().contains("content-type: text/html"),
        "{head}"
    );
    assert!(body.to_lowercase().contains("<html"), "{body}");
    // the page works offline: no external resources
    let lower = body.to_lowercase();
    for external in [
        "src=\"http",
        "src='http",
        "href=\"http",
        "href='http",
        "url(http",
    ] {
        assert!(
            !lower.contains(external),
            "external resource {external}: {body}"
        );
    }
    drop(d);
}

#[test]
fn a_secret_turns_the_web_viewer_off() {
    let web = format!("127.0.0.1:{}", free_port());
    let d = Doozerd::builder()
        .web(&web)
        .env("DOOZER_RWSECRET", "s3cret")
        .start();
    // The node serves clients, so start-up is complete, and the web
    // listener (bound before serving) is not there.
    let err = TcpStream::connect_timeout(&web.parse().unwrap(), Duration::from_secs(2));
    assert!(err.is_err(), "web viewer answered although a secret is set");
    drop(d);
}

#[test]
fn a_ro_secret_without_a_rw_secret_is_refused() {
    // Alone, the ro secret would leave writes open to every connection.
    let l = spare_listen();
    let out = doozerd_run_env(&["-l", &l, "-w", "false"], &[("DOOZER_ROSECRET", "r")]);
    let line = assert_one_line_error(&out, 2);
    assert!(line.contains("DOOZER_RWSECRET"), "{line}");
}

#[test]
fn arguments_that_are_not_utf8_are_errors_not_panics() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"x\xff");
    // doozerd: a bad command line, exit 2, one line
    let out = std::process::Command::new(doozerd_bin())
        .args([std::ffi::OsStr::new("-c"), bad])
        .output()
        .expect("run doozerd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("not valid UTF-8") && !err.contains("panicked"),
        "{err}"
    );
    // doozer: a usage error, exit 127
    let out = std::process::Command::new(doozer_bin())
        .args([std::ffi::OsStr::new("get"), bad])
        .env("DOOZER_URI", "doozer:?ca=127.0.0.1:1")
        .output()
        .expect("run doozer");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(
        err.contains("not valid UTF-8") && !err.contains("panicked"),
        "{err}"
    );
}
