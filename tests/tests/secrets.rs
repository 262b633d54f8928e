//! Secrets (docs/reference.md#secrets-and-access): `DOOZER_RWSECRET` /
//! `DOOZER_ROSECRET`, ACCESS, and the CLI's `sk=` URI parameter.
//!
//! doozerd's choice where the protocol leaves room (src/server/session.rs): a
//! request without the needed grant gets `OTHER` with detail "permission
//! denied"; an unset secret is the empty string, so with only the rw secret
//! set a new connection may read (as in the Go original).

use doozer_tests::*;

const RW: &str = "rw-Secret.1";
const RO: &str = "ro-Secret.2";

fn assert_denied(r: &Response) {
    assert_err(r, ErrCode::Other);
    assert_eq!(r.err_detail.as_deref(), Some("permission denied"), "{r:?}");
}

fn both_secrets() -> Doozerd {
    Doozerd::builder()
        .env("DOOZER_RWSECRET", RW)
        .env("DOOZER_ROSECRET", RO)
        .start()
}

#[test]
fn without_secrets_everything_works() {
    let d = Doozerd::start(&[]);
    let mut c = d.raw();
    let rev = c.must_set("/open", 0, b"x");
    assert_eq!(c.must_get("/open"), (b"x".to_vec(), rev));
    assert_ok(&c.del("/open", rev));
    assert_ok(&c.nop());
    assert_ok(&c.access(b""));
}

#[test]
fn with_both_secrets_a_fresh_connection_can_do_nothing() {
    let d = both_secrets();
    let mut c = d.raw();
    assert_denied(&c.get("/ctl/name", None));
    assert_denied(&c.set("/x", -1, b"x"));
    assert_denied(&c.del("/ctl/name", -1));
    assert_denied(&c.call(req(Verb::Rev)));
    assert_denied(&c.nop());
    assert_denied(&c.wait("/**", 1));
    assert_denied(&c.walk("/**", 0, None));
    assert_denied(&c.getdir("/", 0, None));
    assert_denied(&c.stat("/ctl", None));
    assert_denied(&c.self_id());
    // the empty secret grants nothing either
    assert_denied(&c.access(b""));
    assert_denied(&c.get("/ctl/name", None));
    // nothing was written
    let mut admin = d.raw();
    assert_ok(&admin.access(RW.as_bytes()));
    assert_eq!(admin.must_get("/x"), (vec![], 0));
    assert_eq!(admin.must_get("/ctl/name").0, b"local");
}

#[test]
fn rw_secret_grants_read_and_write() {
    let d = both_secrets();
    let mut c = d.raw();
    let r = c.access(RW.as_bytes());
    assert_ok(&r);
    let rev = c.must_set("/rw/f", 0, b"written");
    assert_eq!(c.must_get("/rw/f"), (b"written".to_vec(), rev));
    assert_ok(&c.nop());
    assert_ok(&c.del("/rw/f", rev));
    assert!(c.rev() > rev);
    assert!(!value_of(&c.self_id()).is_empty());
}

#[test]
fn ro_secret_grants_reads_only() {
    let d = both_secrets();
    let mut admin = d.raw();
    assert_ok(&admin.access(RW.as_bytes()));
    let rev = admin.must_set("/ro/f", 0, b"data");

    let mut c = d.raw();
    assert_ok(&c.access(RO.as_bytes()));
    // reads
    assert_eq!(c.must_get("/ro/f"), (b"data".to_vec(), rev));
    assert!(c.rev() >= rev);
    let s = c.stat("/ro", None);
    assert_eq!((s.len, s.rev), (Some(1), Some(-2)));
    assert_eq!(c.getdir_all("/ro", None), vec!["f"]);
    assert_eq!(c.walk_all("/ro/**", None).len(), 1);
    let w = c.wait("/ro/**", rev);
    assert_eq!(w.rev, Some(rev));
    // writes refused, and nothing changed
    assert_denied(&c.set("/ro/f", -1, b"nope"));
    assert_denied(&c.set("/ro/new", 0, b"nope"));
    assert_denied(&c.del("/ro/f", -1));
    assert_denied(&c.nop());
    assert_eq!(admin.must_get("/ro/f"), (b"data".to_vec(), rev));
    assert_eq!(admin.must_get("/ro/new"), (vec![], 0));
    // upgrading with the rw secret on the same connection
    assert_ok(&c.access(RW.as_bytes()));
    let r2 = c.must_set("/ro/f", rev, b"upgraded");
    assert_eq!(admin.must_get("/ro/f"), (b"upgraded".to_vec(), r2));
}

#[test]
fn a_wrong_secret_is_permission_denied() {
    let d = both_secrets();
    let mut c = d.raw();
    for wrong in [&b"nope"[..], b"rw-Secret.", b"rw-Secret.11", b"RW-SECRET.1"] {
        assert_denied(&c.access(wrong));
        assert_denied(&c.get("/ctl/name", None));
    }
    // a wrong secret after a good one does not add rights
    assert_ok(&c.access(RO.as_bytes()));
    assert_denied(&c.access(b"nope"));
    assert_denied(&c.set("/x", -1, b"x"));
    // nor keep them: the grant goes back to the empty secret's, which
    // with both secrets set is none (docs/reference.md#secrets-and-access)
    assert_denied(&c.get("/ctl/name", None));
    assert_ok(&c.access(RW.as_bytes()));
    assert_eq!(c.must_get("/ctl/name").0, b"local");
    assert_denied(&c.access(b"RW"));
    assert_denied(&c.get("/ctl/name", None));
    assert_denied(&c.set("/x", -1, b"x"));
    // with only the rw secret set, back to reading
    let d = Doozerd::builder().env("DOOZER_RWSECRET", RW).start();
    let mut c = d.raw();
    assert_ok(&c.access(RW.as_bytes()));
    c.must_set("/w", 0, b"w");
    assert_denied(&c.access(b"nope"));
    assert_denied(&c.set("/w", -1, b"again"));
    assert_eq!(c.must_get("/w").0, b"w");
}

#[test]
fn with_only_the_rw_secret_new_connections_may_read() {
    let d = Doozerd::builder().env("DOOZER_RWSECRET", RW).start();
    let mut c = d.raw();
    assert_eq!(c.must_get("/ctl/name").0, b"local");
    assert_denied(&c.set("/x", -1, b"x"));
    assert_ok(&c.access(RW.as_bytes()));
    let rev = c.must_set("/x", -1, b"x");
    assert_eq!(d.raw().must_get("/x"), (b"x".to_vec(), rev));
}

#[test]
fn cli_sends_the_secret_from_the_uri() {
    let d = both_secrets();
    let rw_uri = format!("doozer:?ca={}&sk={RW}", d.addr());
    let ro_uri = format!("doozer:?sk={RO}&ca={}", d.addr());
    let none_uri = d.uri();

    // with the rw secret: write and read
    let out = doozer_with(&[("DOOZER_URI", &rw_uri)], &["add", "/cli/f"], b"body");
    let rev: i64 = out.ok().trim_end().parse().expect("add prints a rev");
    let out = doozer_with(&[("DOOZER_URI", &rw_uri)], &["get", "/cli/f"], b"");
    assert_eq!(out.ok(), "body");
    // the same URI given with -a
    let out = doozer_with(&[], &["-a", &rw_uri, "get", "/cli/f"], b"");
    assert_eq!(out.ok(), "body");

    // with the ro secret: reads work, writes fail with exit 2
    let out = doozer_with(&[("DOOZER_URI", &ro_uri)], &["get", "/cli/f"], b"");
    assert_eq!(out.ok(), "body");
    let out = doozer_with(
        &[("DOOZER_URI", &ro_uri)],
        &["set", "/cli/f", &rev.to_string()],
        b"x",
    );
    out.expect_code(2);
    assert!(out.stderr.contains("permission denied"), "{}", out.stderr);
    assert!(out.stdout.is_empty());

    // without a secret: reads fail too
    let out = doozer_with(&[("DOOZER_URI", &none_uri)], &["get", "/cli/f"], b"");
    out.expect_code(2);
    assert!(out.stderr.contains("permission denied"), "{}", out.stderr);

    // a wrong secret
    let bad_uri = format!("doozer:?ca={}&sk=wrong", d.addr());
    let out = doozer_with(&[("DOOZER_URI", &bad_uri)], &["get", "/cli/f"], b"");
    out.expect_code(2);
    assert!(out.stderr.contains("permission denied"), "{}", out.stderr);

    // nothing but the first write happened
    let mut admin = d.raw();
    assert_ok(&admin.access(RW.as_bytes()));
    assert_eq!(admin.must_get("/cli/f"), (b"body".to_vec(), rev));
}

/// A secret that no output may show.
const HUSH: &str = "Hush-Secret.9";

/// Asserts `out` failed with `code` and shows `HUSH` nowhere.
fn assert_hidden(out: &CmdOutput, code: i32, what: &str) {
    assert_eq!(out.code, code, "{what}: {out:?}");
    assert!(!out.stderr.is_empty(), "{what}: says why");
    assert!(!out.stderr.contains(HUSH), "{what}: {}", out.stderr);
    assert!(!out.out().contains(HUSH), "{what}: {}", out.out());
}

#[test]
fn the_cli_never_prints_a_secret() {
    // docs/behaviour.md#doozer-command: a URI is shown with its secret
    // replaced, malformed or not, from -a, -b or the environment.
    let d = both_secrets();
    let dead = format!("127.0.0.1:{}", free_port());
    let live = d.addr();
    for uri in [
        format!("doozer:?sk={HUSH}"),
        format!("dozer:?ca={live}&sk={HUSH}"),
        format!("ca={live}&sk={HUSH}"),
        format!("doozer:?ca={live}&sk={HUSH}&sk={HUSH}"),
        format!("doozer:?ca={live}&sk=a&{HUSH}"),
        format!("doozer:?ca={live}&sk=a&{HUSH}=b"),
        format!("doozer:?ca={live}&secret={HUSH}"),
        format!("doozer:?ca={live}&sk=%zz{HUSH}"),
        format!("doozer:?ca={dead}&sk={HUSH}"),
        format!("doozer:?ca={live}&sk={HUSH}"), // a wrong secret
        format!("doozer:?cn=prod&sk={HUSH}"),
    ] {
        let out = doozer_with(&[], &["-a", &uri, "get", "/x"], b"");
        assert_hidden(&out, 2, &format!("-a {uri}"));
        let out = doozer_with(&[("DOOZER_URI", &uri)], &["get", "/x"], b"");
        assert_hidden(&out, 2, &format!("DOOZER_URI={uri}"));
    }
    // The case, word for word: the error names no secret.
    let out = doozer_with(
        &[],
        &["-a", &format!("doozer:?sk={HUSH}"), "get", "/x"],
        b"",
    );
    assert_eq!(
        out.stderr.trim_end(),
        "Error: bad URI \"doozer:?sk=<hidden>\": no ca= address or cn= name"
    );
    // A name service URI with a secret, malformed or unreachable.
    for boot in [
        format!("doozer:?sk={HUSH}"),
        format!("doozer:?ca={dead}&sk={HUSH}"),
    ] {
        let args = ["-a", "doozer:?cn=prod", "-b", &boot, "get", "/x"];
        assert_hidden(&doozer_with(&[], &args, b""), 2, &format!("-b {boot}"));
        let env = [("DOOZER_BOOT_URI", boot.as_str())];
        let out = doozer_with(&env, &["-a", "doozer:?cn=prod", "get", "/x"], b"");
        assert_hidden(&out, 2, &format!("DOOZER_BOOT_URI={boot}"));
    }
    // A URI where a command or an argument was wanted (a forgotten -a).
    let uri = format!("doozer:?ca={live}&sk={HUSH}");
    assert_hidden(&doozer_with(&[], &[&uri, "get", "/x"], b""), 127, "command");
    assert_hidden(&doozer_with(&[], &["help", &uri], b""), 127, "help");
    assert_hidden(&doozer_with(&[], &["set", "/x", &uri], b""), 127, "rev");
    let flag = format!("-h={uri}");
    assert_hidden(&doozer_with(&[], &[&flag, "rev"], b""), 127, "-h=");
    let flag = format!("-{uri}");
    assert_hidden(&doozer_with(&[], &[&flag, "rev"], b""), 127, "-URI");
    let out = doozer_with(&[], &["-a", &d.uri(), "bench", &uri], b"");
    assert_hidden(&out, 127, "bench argument");
    let out = doozer_with(&[], &["-a", &format!("doozer:?sk={HUSH}"), "bench"], b"");
    assert_hidden(&out, 2, "bench -a");
}

#[test]
fn doozerd_never_prints_a_secret() {
    let l = format!("127.0.0.1:{}", free_port());
    let dead = format!("127.0.0.1:{}", free_port());
    let base = ["-l", l.as_str(), "-w", "false"];
    // -b and DOOZER_BOOT_URI, malformed: a bad command line (exit 2).
    for boot in [
        format!("doozer:?sk={HUSH}"),
        format!("dozer:?ca={dead}&sk={HUSH}"),
        format!("doozer:?ca={dead}&sk={HUSH}&x=1"),
        format!("doozer:?cn=ns&sk={HUSH}"),
    ] {
        let mut args = base.to_vec();
        args.extend(["-b", boot.as_str()]);
        assert_hidden(&doozerd_run(&args), 2, &format!("-b {boot}"));
        let out = doozerd_run_env(&base, &[("DOOZER_BOOT_URI", boot.as_str())]);
        assert_hidden(&out, 2, &format!("DOOZER_BOOT_URI={boot}"));
    }
    // A name service nobody answers at: the node cannot start (exit 1),
    // and shows the URI with its secret hidden.
    let boot = format!("doozer:?ca={dead}&sk={HUSH}");
    let out = doozerd_run_env(&base, &[("DOOZER_BOOT_URI", boot.as_str())]);
    assert_hidden(&out, 1, "unreachable name service");
    // The error names where the URI came from.
    assert!(
        out.stderr
            .contains(&format!("DOOZER_BOOT_URI doozer:?ca={dead}&sk=<hidden>")),
        "{}",
        out.stderr
    );
    let out = doozerd_run(&[&base[..], &["-b", boot.as_str()]].concat());
    assert_hidden(&out, 1, "unreachable name service, -b");
    assert!(
        out.stderr
            .contains(&format!("-b doozer:?ca={dead}&sk=<hidden>")),
        "{}",
        out.stderr
    );
    // A URI given where an address or nothing was wanted.
    for extra in [vec!["-a", boot.as_str()], vec![boot.as_str()]] {
        let mut args = base.to_vec();
        args.extend(extra.iter().copied());
        assert_hidden(&doozerd_run(&args), 2, &format!("{extra:?}"));
    }
}

#[test]
fn a_slave_with_another_secret_is_refused_in_words() {
    // The member's ACCESS answer, shown by verb and code name, never as
    // Rust's Debug text (`Some(Access) : OTHER`), and no secret in it.
    let d = Doozerd::builder().env("DOOZER_RWSECRET", RW).start();
    let l = format!("127.0.0.1:{}", free_port());
    let out = doozerd_run_env(
        &["-l", &l, "-w", "false", "-a", &d.addr().to_string()],
        &[("DOOZER_RWSECRET", HUSH)],
    );
    assert_hidden(&out, 1, "refused slave");
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "doozerd: cannot attach to the cluster: {}: ACCESS: OTHER: permission denied \
             (is this node's DOOZER_RWSECRET the cluster's?)",
            d.addr()
        )
    );
    assert!(!out.stderr.contains(RW), "{}", out.stderr);
}
