//! TLS on the client port (issue 4, part 3; docs/behaviour.md "TLS"):
//! `doozerd -tlscert -tlskey -tlsca`, `tlsca=` in client URIs, slaves
//! attaching over TLS. The certificates are made here with rcgen: a CA and
//! a node certificate for 127.0.0.1 and localhost.

use std::path::Path;

use doozer_tests::cluster::{get_at, Cluster};
use doozer_tests::history::Op;
use doozer_tests::{
    doozer, doozer_with, doozerd_run, free_port, req, Doozerd, RawConn, Recv, RequestExt, TempDir,
    TlsFiles, Verb, DEADLINE,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A fresh CA and a node certificate signed by it, written as PEM files
/// into `dir` (named with `prefix`).
fn make_pki(dir: &Path, prefix: &str) -> TlsFiles {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("doozer test CA {prefix}"));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("self-sign CA");

    let node_key = KeyPair::generate().expect("node key");
    let mut node = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("node params");
    node.distinguished_name
        .push(DnType::CommonName, "doozer test node");
    let node_cert = node
        .signed_by(&node_key, &ca_cert, &ca_key)
        .expect("sign node certificate");

    let files = TlsFiles {
        cert: dir.join(format!("{prefix}-node.pem")),
        key: dir.join(format!("{prefix}-node-key.pem")),
        ca: dir.join(format!("{prefix}-ca.pem")),
    };
    std::fs::write(&files.cert, node_cert.pem()).expect("write cert");
    std::fs::write(&files.key, node_key.serialize_pem()).expect("write key");
    std::fs::write(&files.ca, ca_cert.pem()).expect("write CA");
    files
}

fn tls_node(files: &TlsFiles) -> Doozerd {
    Doozerd::builder().tls(files).start()
}

#[test]
fn cli_and_library_talk_tls_to_a_node() {
    let dir = TempDir::new("tls");
    let pki = make_pki(dir.path(), "a");
    let d = tls_node(&pki);
    assert!(d.uri().contains("&tlsca="), "{}", d.uri());

    // The CLI, with the URI as an -a flag.
    let uri = d.uri();
    let out = doozer_with(&[], &["-a", &uri, "set", "/tls/x", "0"], b"over tls");
    let rev: i64 = out.ok().trim().parse().expect("set prints a rev");
    let out = doozer_with(&[], &["-a", &uri, "get", "/tls/x"], b"");
    assert_eq!(out.ok(), "over tls");
    // And through DOOZER_URI.
    assert_eq!(doozer(&d, &["rev"], b"").ok().trim(), rev.to_string());

    // The library: writes, reads, a WAIT answered after a later write.
    let c = doozer::Client::connect(&uri).expect("TLS client");
    assert_eq!(&c.get("/tls/x", None).unwrap().0[..], b"over tls");
    let waiter = {
        let c = c.clone();
        std::thread::spawn(move || c.wait("/tls/**", rev + 1))
    };
    let rev2 = c.set("/tls/y", 0, &b"second"[..]).expect("set over TLS");
    let ev = waiter.join().expect("waiter").expect("wait over TLS");
    assert_eq!((ev.path.as_str(), ev.rev), ("/tls/y", rev2));
    // Many requests pipelined at once, answered in order.
    let reqs = (0..200)
        .map(|_| doozer::Request {
            verb: Some(Verb::Rev as i32),
            ..Default::default()
        })
        .collect();
    let revs = c.call_many(reqs).expect("pipelined over TLS");
    assert_eq!(revs.len(), 200);
    assert!(revs.iter().all(|r| r.rev == Some(rev2)), "{:?}", revs[0]);

    // A body near the limit crosses several TLS records both ways.
    let big = vec![b'z'; 40_000];
    c.set("/tls/big", 0, big.clone()).expect("big set");
    assert_eq!(&c.get("/tls/big", None).unwrap().0[..], &big[..]);
}

#[test]
fn plain_clients_and_garbage_are_turned_away_and_tls_clients_still_served() {
    let dir = TempDir::new("tls");
    let pki = make_pki(dir.path(), "a");
    // Connection-level detail, refused handshakes included, is logged at
    // debug (docs/behaviour.md, "Logging").
    let mut d = Doozerd::builder()
        .tls(&pki)
        .env("RUST_LOG", "debug")
        .start();

    // A plain protocol client: its REV never gets an answer; the node
    // closes the connection.
    let mut plain = RawConn::connect(d.addr());
    plain.send(&req(Verb::Rev).tag(1));
    assert_eq!(plain.recv_any(DEADLINE), Recv::Closed);

    // Raw garbage.
    let mut junk = RawConn::connect(d.addr());
    junk.send_bytes(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8]);
    junk.send_bytes(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(junk.recv_any(DEADLINE), Recv::Closed);

    // The client library without tlsca=: an error, not a hang.
    let plain_uri = format!("doozer:?ca={}", d.addr());
    let e = doozer::Client::connect(&plain_uri)
        .and_then(|c| c.rev())
        .expect_err("a plain client cannot talk to a TLS node");
    assert!(e.is_connection_error(), "{e:?}");
    // The CLI without tlsca=: exit 2 with an Error line.
    let out = doozer_with(&[], &["-a", &plain_uri, "rev"], b"");
    out.expect_code(2);
    assert!(out.stderr.starts_with("Error: "), "{}", out.stderr);

    // The node is alive and serves TLS clients as before.
    d.assert_alive();
    let mut c = d.raw();
    let rev = c.rev();
    assert_eq!(c.must_set("/after", 0, b"still here"), rev + 1);
    assert!(
        d.stderr().contains("closing: TLS"),
        "the refused handshakes are logged at debug: {}",
        d.stderr()
    );
}

#[test]
fn a_certificate_from_another_ca_is_a_clear_error() {
    let dir = TempDir::new("tls");
    let pki = make_pki(dir.path(), "a");
    let other = make_pki(dir.path(), "other");
    let mut d = tls_node(&pki);

    let wrong = format!("doozer:?ca={}&tlsca={}", d.addr(), other.ca.display());
    let out = doozer_with(&[], &["-a", &wrong, "get", "/ctl/name"], b"");
    out.expect_code(2);
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    let err = out.stderr.trim_end();
    assert!(err.starts_with("Error: "), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(err.contains("certificate"), "says why: {err}");

    // The library: a connection error naming the address.
    let e = doozer::Client::connect(&wrong).expect_err("untrusted node");
    assert!(e.to_string().contains(&d.addr().to_string()), "{e}");

    // A tlsca= file that is missing or holds no certificate.
    for bad in [dir.path().join("nope.pem"), pki.key.clone()] {
        let uri = format!("doozer:?ca={}&tlsca={}", d.addr(), bad.display());
        let out = doozer_with(&[], &["-a", &uri, "rev"], b"");
        out.expect_code(2);
        assert!(out.stderr.starts_with("Error: TLS: "), "{}", out.stderr);
        assert!(
            out.stderr.contains(&bad.display().to_string()),
            "{}",
            out.stderr
        );
    }
    // A tlsca= that never ends is refused after 1 MiB, not read forever.
    let uri = format!("doozer:?ca={}&tlsca=/dev/zero", d.addr());
    let out = doozer_with(&[], &["-a", &uri, "rev"], b"");
    out.expect_code(2);
    assert_eq!(
        out.stderr.trim_end(),
        "Error: TLS: cannot read CA file /dev/zero: larger than 1048576 bytes, the limit for a PEM file"
    );

    // The name checked is the host of ca=: the certificate names 127.0.0.1
    // and localhost, not 127.0.0.2 (which also reaches this node).
    let misnamed = format!(
        "doozer:?ca=127.0.0.2:{}&tlsca={}",
        d.port(),
        pki.ca.display()
    );
    if std::net::TcpStream::connect(("127.0.0.2", d.port())).is_ok() {
        let out = doozer_with(&[], &["-a", &misnamed, "rev"], b"");
        out.expect_code(2);
        assert!(out.stderr.contains("certificate"), "{}", out.stderr);
    }
    let by_name = format!(
        "doozer:?ca=localhost:{}&tlsca={}",
        d.port(),
        pki.ca.display()
    );
    let out = doozer_with(&[], &["-a", &by_name, "get", "/ctl/name"], b"");
    assert_eq!(out.ok(), "local");

    // tlsca= against a node that serves plain TCP: the error says so.
    let plain = Doozerd::start(&[]);
    let uri = format!("doozer:?ca={}&tlsca={}", plain.addr(), pki.ca.display());
    let out = doozer_with(&[], &["-a", &uri, "rev"], b"");
    out.expect_code(2);
    assert!(
        out.stderr.contains("does the node serve TLS"),
        "{}",
        out.stderr
    );

    d.assert_alive();
}

#[test]
fn a_cluster_of_tls_nodes_attaches_promotes_and_replicates() {
    let dir = TempDir::new("tls");
    let pki = make_pki(dir.path(), "a");
    let mut c = Cluster::seed_with_tls(&[], Some(&pki));
    let s1 = c.attach(0, &[]);
    let s2 = c.attach(0, &[]);
    // A slave serves reads over TLS at once.
    assert_eq!(c.d(s1).raw().must_get("/ctl/name").0, b"local");
    c.add_slot(0, 1);
    c.add_slot(0, 2);
    let slot1 = c.wait_cal(s1);
    let slot2 = c.wait_cal(s2);
    assert_ne!(slot1, slot2);

    let at = c.set(s1, "/tls/cluster", 0, b"written on a promoted slave");
    let at2 = c.set(s2, "/tls/other", 0, b"and on the other");
    for i in 0..3 {
        assert_eq!(
            get_at(c.d(i), "/tls/cluster", at).0,
            b"written on a promoted slave",
            "node {i}"
        );
        assert_eq!(get_at(c.d(i), "/tls/other", at2).0, b"and on the other");
    }
    // And through the CLI with tlsca=, on each node.
    for i in 0..3 {
        assert_eq!(
            doozer(c.d(i), &["get", "/tls/other"], b"").ok(),
            "and on the other"
        );
    }
    let history: Vec<Op> = Vec::new();
    c.assert_consistent(&history);
}

#[test]
fn tls_flag_errors_are_one_line_at_start_up() {
    let dir = TempDir::new("tls");
    let pki = make_pki(dir.path(), "a");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is no PEM\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let l = format!("127.0.0.1:{}", free_port());
    let s = |p: &Path| p.display().to_string();
    let (cert, key, ca) = (s(&pki.cert), s(&pki.key), s(&pki.ca));
    let (garbage, missing) = (s(&garbage), s(&missing));
    let other_key = s(&make_pki(dir.path(), "b").key);
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        // bad command lines: exit 2
        (vec!["-tlscert", &cert], 2, "-tlskey"),
        (vec!["-tlskey", &key], 2, "-tlscert"),
        (vec!["-tlscert", &cert, "-tlskey", &key], 2, "-tlsca"),
        (vec!["-tlsca", &ca], 2, "-tlscert"),
        // files the node cannot use: exit 1, naming the file
        (
            vec!["-tlscert", &missing, "-tlskey", &key, "-tlsca", &ca],
            1,
            &missing,
        ),
        (
            vec!["-tlscert", &cert, "-tlskey", &missing, "-tlsca", &ca],
            1,
            &missing,
        ),
        (
            vec!["-tlscert", &cert, "-tlskey", &key, "-tlsca", &missing],
            1,
            &missing,
        ),
        (
            vec!["-tlscert", &garbage, "-tlskey", &key, "-tlsca", &ca],
            1,
            &garbage,
        ),
        (
            vec!["-tlscert", &cert, "-tlskey", &garbage, "-tlsca", &ca],
            1,
            &garbage,
        ),
        // a file without a private key
        (
            vec!["-tlscert", &cert, "-tlskey", &ca, "-tlsca", &ca],
            1,
            &ca,
        ),
        // a key that is not the certificate's
        (
            vec!["-tlscert", &cert, "-tlskey", &other_key, "-tlsca", &ca],
            1,
            &other_key,
        ),
        // files that never end, or are too large: read up to 1 MiB and
        // refused (it used to read /dev/zero forever)
        (
            vec!["-tlscert", "/dev/zero", "-tlskey", &key, "-tlsca", &ca],
            1,
            "-tlscert /dev/zero: cannot read: larger than 1048576 bytes",
        ),
        (
            vec!["-tlscert", &cert, "-tlskey", "/dev/zero", "-tlsca", &ca],
            1,
            "-tlskey /dev/zero: cannot read: larger than 1048576 bytes",
        ),
        (
            vec!["-tlscert", &cert, "-tlskey", &key, "-tlsca", "/dev/zero"],
            1,
            "-tlsca: TLS: cannot read CA file /dev/zero: larger than 1048576 bytes",
        ),
    ];
    for (extra, code, names) in cases {
        let mut args = vec!["-l", l.as_str(), "-w", "false"];
        args.extend(extra.iter().copied());
        let out = doozerd_run(&args);
        assert_eq!(out.code, code, "{extra:?}: {}", out.stderr);
        let err = out.stderr.trim_end();
        assert!(!err.contains('\n'), "{extra:?}: one line: {err}");
        assert!(!err.contains("panicked"), "{extra:?}: {err}");
        assert!(err.contains(names), "{extra:?}: names {names}: {err}");
    }
}

#[test]
fn a_tls_slave_attaches_again_over_tls_when_its_node_dies() {
    let dir = TempDir::new("tls");
    let pki = make_pki(dir.path(), "a");
    let mut cal = tls_node(&pki);
    let port = cal.port();
    cal.raw().must_set("/before", 0, b"1");
    let slave = Doozerd::builder()
        .tls(&pki)
        .args(["-a", &cal.addr().to_string()])
        .start();
    assert_eq!(slave.raw().must_get("/before").0, b"1");
    cal.kill();
    assert_eq!(slave.raw().must_get("/before").0, b"1");
    // A TLS node comes back on the same address: the slave's handshake
    // thread attaches to it again, over TLS, and copies it.
    let cal = Doozerd::builder().tls(&pki).port(port).start();
    let rev = cal.raw().must_set("/after", 0, b"2");
    let r = doozer_tests::poll_until(
        std::time::Duration::from_secs(15),
        "the slave to follow the new node",
        || {
            let r = slave.raw().get("/after", None);
            (r.value.as_deref() == Some(&b"2"[..])).then_some(r)
        },
    );
    assert_eq!(r.rev, Some(rev));
    assert!(
        slave.stderr().contains("following again"),
        "{}",
        slave.stderr()
    );
}

#[test]
fn answers_beyond_the_output_cap_arrive_whole_over_tls() {
    // 300 GETs of a 40 KB file are 12 MB of answers: more than the 8 MiB
    // after which a connection is not read until it drains, so the node
    // pauses and resumes this TLS connection while the client reads.
    let dir = TempDir::new("tls");
    let pki = make_pki(dir.path(), "a");
    let d = tls_node(&pki);
    let mut c = d.raw();
    let body: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let rev = c.must_set("/big", 0, &body);
    for tag in 0..300 {
        c.send(&req(Verb::Get).path("/big").tag(tag));
    }
    for tag in 0..300 {
        let r = c.recv_tag(tag);
        assert_eq!(r.rev, Some(rev), "tag {tag}");
        assert!(
            r.value.as_deref() == Some(&body[..]),
            "tag {tag}: body differs"
        );
    }
}
