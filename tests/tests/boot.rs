//! Booting through a name service, end to end
//! (docs/reference.md#name-service, #uris for `cn=`): a 3-CAL doozer
//! cluster serves as the name service; six nodes of two new clusters `a`
//! and `b` start at the same moment with `-b`; each cluster gets exactly
//! one seed (the winner of `/ctl/boot/<name>`) and the others attach to it;
//! CALs are listed under `/ctl/ns/<name>/` there; the CLI reaches each
//! cluster by `cn=`; a kicked CAL's entry disappears.

use std::collections::BTreeMap;

use doozer_tests::browser::http_get;
use doozer_tests::cluster::{node_id, Cluster, CLUSTER_DEADLINE};
use doozer_tests::*;

/// Seconds of silence before a CAL of `a` or `b` is kicked.
const TIMEOUT: &str = "3";

/// `/ctl/ns/<name>/*` in the name service as node 0 of it sees it: id →
/// address.
fn registered(ns: &Cluster, name: &str) -> BTreeMap<String, String> {
    registered_in(ns.d(0), name)
}

/// `/ctl/ns/<name>/*` in the name service `ns`: id → address.
fn registered_in(ns: &Doozerd, name: &str) -> BTreeMap<String, String> {
    let prefix = format!("/ctl/ns/{name}/");
    ns.raw()
        .walk_all(&format!("{prefix}*"), None)
        .into_iter()
        .map(|(p, _, v)| {
            let id = p.strip_prefix(&prefix).unwrap_or(&p).to_string();
            (id, String::from_utf8_lossy(&v).into_owned())
        })
        .collect()
}

/// Id → address of the nodes of `c` whose index is in `which`.
fn addrs_of(c: &Cluster, which: &[usize]) -> BTreeMap<String, String> {
    which
        .iter()
        .map(|&i| (c.id(i).to_string(), c.d(i).addr().to_string()))
        .collect()
}

/// The `doozer` CLI against cluster `name`, found through the name service
/// `ns_uri` given with `-b`.
fn by_name(ns_uri: &str, name: &str, args: &[&str], stdin: &[u8]) -> CmdOutput {
    let uri = format!("doozer:?cn={name}");
    let mut all = vec!["-b", ns_uri, "-a", uri.as_str()];
    all.extend_from_slice(args);
    doozer_with(&[], &all, stdin)
}

#[test]
fn two_clusters_boot_at_once_through_a_name_service() {
    let ns = Cluster::start(3, &[]);
    let ns_uri = ns.uri_all();
    let builders: Vec<DoozerdBuilder> = ["a", "a", "a", "b", "b", "b"]
        .iter()
        .map(|name| {
            Doozerd::builder().args([
                "-hist", "1000000", "-b", &ns_uri, "-c", name, "-timeout", TIMEOUT,
            ])
        })
        .collect();
    let mut nodes = DoozerdBuilder::start_all(builders);
    let b_nodes = nodes.split_off(3);
    let node_args = ["-b", ns_uri.as_str(), "-c", "a", "-timeout", TIMEOUT];
    let mut a = Cluster::adopt(nodes, &node_args);
    let mut b = Cluster::adopt(b_nodes, &node_args);

    for (name, c) in [("a", &a), ("b", &b)] {
        // Exactly one node won /ctl/boot/<name> and seeded; it holds slot 0.
        let (boot, _) = ns.d(0).raw().must_get(&format!("/ctl/boot/{name}"));
        let seed_id = String::from_utf8(boot).expect("an id");
        let seeds: Vec<usize> = (0..3)
            .filter(|&i| c.d(i).stderr().contains("seeded a new cluster"))
            .collect();
        assert_eq!(seeds.len(), 1, "cluster {name}: seeds {seeds:?}");
        let seed = seeds[0];
        assert_eq!(c.id(seed), seed_id, "cluster {name}: /ctl/boot/{name}");
        for i in (0..3).filter(|&i| i != seed) {
            let log = c.d(i).stderr();
            assert!(log.contains("a slave"), "cluster {name} node {i}:\n{log}");
        }
        // Every node is attached: its files are in the seed's store, and
        // the seed is the only CAL so far.
        let mut seen = c.d(seed).raw();
        for i in 0..3 {
            let addr = format!("/ctl/node/{}/addr", c.id(i));
            poll_until(CLUSTER_DEADLINE, &format!("{name}: {addr}"), || {
                (seen.get(&addr, None).value.as_deref()
                    == Some(c.d(i).addr().to_string().as_bytes()))
                .then_some(())
            });
        }
        assert_eq!(
            c.slots(seed),
            BTreeMap::from([("/ctl/cal/0".to_string(), seed_id.clone())])
        );
        assert_eq!(
            registered(&ns, name),
            addrs_of(c, &[seed]),
            "cluster {name}"
        );
    }

    // Slots offered through the CLI by cluster name (with -b, and with the
    // environment): both slaves of each cluster become CALs and register.
    for (name, c) in [("a", &a), ("b", &b)] {
        by_name(&ns_uri, name, &["set", "/ctl/cal/1", "0"], b"").ok();
        let cn = format!("doozer:?cn={name}");
        doozer_with(
            &[
                ("DOOZER_BOOT_URI", ns_uri.as_str()),
                ("DOOZER_URI", cn.as_str()),
            ],
            &["set", "/ctl/cal/2", "0"],
            b"",
        )
        .ok();
        for i in 0..3 {
            c.wait_cal(i);
        }
        poll_until(
            CLUSTER_DEADLINE,
            &format!("every CAL of {name} registered"),
            || (registered(&ns, name) == addrs_of(c, &[0, 1, 2])).then_some(()),
        );
    }

    // Each name reaches its own cluster.
    for name in ["a", "b"] {
        let rev = by_name(&ns_uri, name, &["set", "/which", "0"], name.as_bytes()).ok();
        assert!(rev.trim().parse::<i64>().is_ok(), "{rev:?}");
        assert_eq!(by_name(&ns_uri, name, &["get", "/which"], b"").ok(), name);
    }
    let which = |c: &Cluster| c.d(0).raw().get("/which", None).value.unwrap_or_default();
    assert_eq!(&which(&a)[..], b"a");
    assert_eq!(&which(&b)[..], b"b");
    // An unknown name is a clear error.
    let out = by_name(&ns_uri, "nosuch", &["get", "/which"], b"");
    out.expect_code(2);
    assert!(out.stderr.contains("nosuch"), "{}", out.stderr);

    // A CAL of `a` silent for -timeout is kicked: its slot is emptied and
    // its entry leaves the name service; the others stay.
    let seed_a = String::from_utf8(ns.d(0).raw().must_get("/ctl/boot/a").0).unwrap();
    let victim = (0..3).find(|&i| a.id(i) != seed_a).expect("a non-seed CAL");
    let victim_id = a.id(victim).to_string();
    a.stop(victim);
    let rest: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    poll_until(
        CLUSTER_DEADLINE,
        &format!("{victim_id} to leave /ctl/ns/a"),
        || (registered(&ns, "a") == addrs_of(&a, &rest)).then_some(()),
    );
    assert!(
        !a.slots(rest[0]).values().any(|id| *id == victim_id),
        "the kicked CAL lost its slot"
    );
    assert_eq!(
        registered(&ns, "b"),
        addrs_of(&b, &[0, 1, 2]),
        "b untouched"
    );
    a.assert_consistent(&[]);
    b.assert_consistent(&[]);
}

/// `-a` and `-b` together: the `-a` members first, then the name service;
/// and a cluster whose seed is recorded but none of whose CALs is
/// registered is booted anew once that record has been silent for
/// `-timeout` (docs/cluster.md#stale-name-service-records).
#[test]
fn attach_first_then_the_name_service_and_orphaned_names() {
    let ns = Doozerd::start(&[]);
    let ns_uri = ns.uri();
    let dead = format!("127.0.0.1:{}", free_port());
    // Nothing answers at -a: the node boots cluster c through -b (seeds).
    let first = Doozerd::start(&["-a", &dead, "-b", &ns_uri, "-c", "c"]);
    let first_id = String::from_utf8(ns.raw().must_get("/ctl/boot/c").0).unwrap();
    assert_eq!(doozer(&first, &["self"], b"").ok().trim(), first_id);
    assert!(
        first.stderr().contains("trying the name service"),
        "{}",
        first.stderr()
    );
    // A working -a wins over the name service: the node attaches there.
    let second = Doozerd::start(&["-a", &first.addr().to_string(), "-b", &ns_uri, "-c", "c"]);
    let log = second.stderr();
    assert!(
        log.contains("a slave") && !log.contains("name service"),
        "{log}"
    );

    // /ctl/boot/d names a seed, but nothing is registered under /ctl/ns/d:
    // the record points at no address, so after -timeout it is removed
    // and the node seeds d.
    doozer(&ns, &["set", "/ctl/boot/d", "0"], b"GONE").ok();
    let d = Doozerd::start(&["-b", &ns_uri, "-c", "d", "-timeout", "1"]);
    let d_id = doozer(&d, &["self"], b"").ok().trim().to_string();
    assert_eq!(ns.raw().must_get("/ctl/boot/d").0, d_id.as_bytes());
    let log = d.stderr();
    assert!(
        log.contains(
            "removed stale name-service records of cluster \"d\" (entries: none; /ctl/boot/d: GONE)"
        )
            && log.contains("seeded a new cluster"),
        "{log}"
    );
}

/// `-b NS -c NAME -timeout T`, and `extra`.
fn named(ns_uri: &str, name: &str, timeout: &str, extra: &[&str]) -> DoozerdBuilder {
    Doozerd::builder()
        .args(["-b", ns_uri, "-c", name, "-timeout", timeout])
        .args(extra.iter().copied())
}

/// Boots three nodes of `name` at once through `ns` and makes all three
/// CALs (slots 1 and 2 offered by name); waits until all are registered.
fn boot_three_cals(ns: &Doozerd, name: &str, timeout: &str) -> Cluster {
    let ns_uri = ns.uri();
    let nodes =
        DoozerdBuilder::start_all((0..3).map(|_| named(&ns_uri, name, timeout, &[])).collect());
    let c = Cluster::adopt(nodes, &["-b", &ns_uri, "-c", name, "-timeout", timeout]);
    for slot in ["/ctl/cal/1", "/ctl/cal/2"] {
        by_name(&ns_uri, name, &["set", slot, "0"], b"").ok();
    }
    for i in 0..3 {
        c.wait_cal(i);
    }
    poll_until(
        CLUSTER_DEADLINE,
        &format!("every CAL of {name} registered"),
        || (registered_in(ns, name) == addrs_of(&c, &[0, 1, 2])).then_some(()),
    );
    c
}

/// The one node of `nodes` that seeded (its log says so); every other
/// attached as a slave.
fn the_seed(nodes: &[Doozerd]) -> usize {
    let seeds: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].stderr().contains("seeded a new cluster"))
        .collect();
    assert_eq!(seeds.len(), 1, "seeds: {seeds:?}");
    for (i, n) in nodes.iter().enumerate().filter(|(i, _)| *i != seeds[0]) {
        let log = n.stderr();
        assert!(log.contains("a slave"), "node {i}:\n{log}");
    }
    seeds[0]
}

/// Every node of `nodes` is a node of the cluster `nodes[seed]` seeded:
/// its files are in the seed's store.
fn all_attached_to(nodes: &[Doozerd], seed: usize) {
    let mut seen = nodes[seed].raw();
    for n in nodes {
        let id = node_id(n);
        let addr = format!("/ctl/node/{id}/addr");
        poll_until(CLUSTER_DEADLINE, &addr, || {
            (seen.get(&addr, None).value.as_deref() == Some(n.addr().to_string().as_bytes()))
                .then_some(())
        });
    }
}

/// The acceptance test of stale records: a cluster whose three CALs were
/// all stopped boots again through the name service under the same name,
/// with the same flags and no manual step; the dead cluster's records are
/// removed, and the new cluster is writable by name.
#[test]
fn a_cluster_whose_cals_all_stopped_boots_again_under_its_name() {
    let ns = Doozerd::start(&[]);
    let ns_uri = ns.uri();
    let mut old = boot_three_cals(&ns, "a", TIMEOUT);
    let old_seed = String::from_utf8(ns.raw().must_get("/ctl/boot/a").0).unwrap();
    for i in 0..3 {
        old.kill(i);
    }
    // Three fresh nodes, the same flags: they find the records, nothing
    // answers at the listed addresses for -timeout, they remove them and
    // race to seed as if there had been none.
    let fresh =
        DoozerdBuilder::start_all((0..3).map(|_| named(&ns_uri, "a", TIMEOUT, &[])).collect());
    let seed = the_seed(&fresh);
    let seed_id = node_id(&fresh[seed]);
    assert_ne!(seed_id, old_seed);
    assert_eq!(ns.raw().must_get("/ctl/boot/a").0, seed_id.as_bytes());
    assert_eq!(
        registered_in(&ns, "a"),
        BTreeMap::from([(seed_id.clone(), fresh[seed].addr().to_string())]),
        "only the new seed is registered"
    );
    assert!(
        fresh.iter().any(|n| n.stderr().contains("removed stale")),
        "some node removed the stale records"
    );
    all_attached_to(&fresh, seed);
    // Writable, by name.
    let rev = by_name(&ns_uri, "a", &["set", "/again", "0"], b"yes").ok();
    assert!(rev.trim().parse::<i64>().is_ok(), "{rev:?}");
    assert_eq!(&fresh[seed].raw().must_get("/again").0[..], b"yes");
}

/// Two (here three) nodes booting at once over stale records end in one
/// cluster: the records' conditional deletes let the first remover win,
/// and only one wins `/ctl/boot/<name>` afterwards.
#[test]
fn nodes_booting_at_once_over_stale_records_form_one_cluster() {
    let ns = Doozerd::start(&[]);
    let ns_uri = ns.uri();
    let dead = format!("127.0.0.1:{}", free_port());
    doozer(&ns, &["set", "/ctl/ns/a/OLD", "0"], dead.as_bytes()).ok();
    doozer(&ns, &["set", "/ctl/boot/a", "0"], b"OLD").ok();
    let nodes = DoozerdBuilder::start_all((0..3).map(|_| named(&ns_uri, "a", "1", &[])).collect());
    let seed = the_seed(&nodes);
    let seed_id = node_id(&nodes[seed]);
    assert_eq!(ns.raw().must_get("/ctl/boot/a").0, seed_id.as_bytes());
    assert_eq!(
        registered_in(&ns, "a"),
        BTreeMap::from([(seed_id, nodes[seed].addr().to_string())])
    );
    all_attached_to(&nodes, seed);
}

/// Records are not stale while a listed address answers: with two of
/// three CALs stopped the cluster cannot decide (a slow cluster), but the
/// third answers probes, so a node booting with a short -timeout keeps
/// waiting to attach rather than removing the records and seeding; once
/// the cluster is back it joins it.
#[test]
fn records_of_a_slow_cluster_are_not_stale() {
    let ns = Doozerd::start(&[]);
    let ns_uri = ns.uri();
    // A long -timeout: the stopped CALs are not kicked meanwhile.
    let mut c = boot_three_cals(&ns, "a", "600");
    let boot_before = ns.raw().must_get("/ctl/boot/a");
    let entries_before = registered_in(&ns, "a");
    c.stop(1);
    c.stop(2);
    let live = c.d(0).addr().to_string();
    let mut n = named(&ns_uri, "a", "2", &[]).spawn_unready();
    // It found node 0 answering and tried to attach through it: writing
    // its node files cannot be decided while the cluster cannot decide,
    // so after an attach step (5 s, more than its -timeout of 2 s with
    // two of three addresses silent) it follows node 0 without them
    // (docs/cluster.md#slaves-and-promotion), or reports the attempt.
    poll_until(
        CLUSTER_DEADLINE,
        "an attach attempt through the live CAL",
        || {
            n.stderr()
                .lines()
                .any(|l| {
                    l.contains(&live)
                        && ((l.contains("boot: ") && !l.contains("no address listed"))
                            || l.contains("did not decide"))
                })
                .then_some(())
        },
    );
    assert!(n.is_running(), "{}", n.stderr());
    assert_eq!(registered_in(&ns, "a"), entries_before);
    assert_eq!(ns.raw().must_get("/ctl/boot/a"), boot_before);
    c.cont(1);
    c.cont(2);
    n.wait_ready().unwrap_or_else(|e| panic!("{e}"));
    let log = n.stderr();
    assert!(log.contains("a slave") && !log.contains("stale"), "{log}");
    assert_eq!(registered_in(&ns, "a"), entries_before);
    assert_eq!(ns.raw().must_get("/ctl/boot/a"), boot_before);
    let id = node_id(&n);
    let path = format!("/ctl/node/{id}/addr");
    let mut seen = c.d(0).raw();
    poll_until(CLUSTER_DEADLINE, &path, || {
        seen.get(&path, None).value.is_some().then_some(())
    });
}

/// A node of an old cluster that comes back (it was stopped long enough
/// for a new node to find its records stale and seed anew under the name)
/// does not register again: it logs the conflict, `/$metrics` shows it,
/// and `doozer status -b` names it as a problem.
#[test]
fn an_old_node_back_to_a_name_taken_by_a_new_seed_does_not_register() {
    let ns = Doozerd::start(&[]);
    let ns_uri = ns.uri();
    let web: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let old = named(&ns_uri, "a", "1", &[]).web(&web.to_string()).start();
    let old_id = node_id(&old);
    poll_until(CLUSTER_DEADLINE, "the old node registered", || {
        registered_in(&ns, "a").contains_key(&old_id).then_some(())
    });
    let conflict = || name_conflict_gauge(web);
    assert_eq!(conflict(), Some(0.0));
    let mut old = Cluster::adopt(vec![old], &["-b", &ns_uri, "-c", "a"]);
    old.stop(0);
    let new = named(&ns_uri, "a", "1", &[]).start();
    let new_id = node_id(&new);
    assert!(
        new.stderr().contains("seeded a new cluster"),
        "{}",
        new.stderr()
    );
    assert_eq!(ns.raw().must_get("/ctl/boot/a").0, new_id.as_bytes());
    let only_new = BTreeMap::from([(new_id.clone(), new.addr().to_string())]);
    assert_eq!(registered_in(&ns, "a"), only_new);

    old.cont(0);
    poll_until(
        CLUSTER_DEADLINE,
        "the old node to report the conflict",
        || old.d(0).stderr().contains("name conflict").then_some(()),
    );
    assert_eq!(conflict(), Some(1.0));
    assert_eq!(
        registered_in(&ns, "a"),
        only_new,
        "the old node did not register"
    );
    assert_eq!(ns.raw().must_get("/ctl/boot/a").0, new_id.as_bytes());
    let uri = format!("doozer:?ca={}", old.d(0).addr());
    let out = doozer_with(&[], &["-b", &ns_uri, "-a", &uri, "status"], b"");
    out.expect_code(2);
    assert!(
        out.stderr.contains("name conflict") && out.stderr.contains(&new_id),
        "{}",
        out.stderr
    );
    // The new cluster, by name, is healthy and names no conflict.
    by_name(&ns_uri, "a", &["status"], b"").ok();
}

/// An old CAL whose records were removed as stale while it was stopped,
/// and whose name nobody took since (the remover had not seeded yet),
/// claims the name back when it answers again: it creates
/// `/ctl/boot/<name>` for its own seed at rev 0 (the race a booting node
/// runs) and registers; no conflict.
#[test]
fn an_old_node_back_before_anyone_took_its_name_claims_it_back() {
    let ns = Doozerd::start(&[]);
    let ns_uri = ns.uri();
    let web: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let old = named(&ns_uri, "a", "1", &[]).web(&web.to_string()).start();
    let old_id = node_id(&old);
    let only_old = BTreeMap::from([(old_id.clone(), old.addr().to_string())]);
    poll_until(CLUSTER_DEADLINE, "the old node registered", || {
        (registered_in(&ns, "a") == only_old).then_some(())
    });
    let mut old = Cluster::adopt(vec![old], &["-b", &ns_uri, "-c", "a"]);
    old.stop(0);
    // What a booting node that found them stale does before it seeds.
    let mut raw = ns.raw();
    let now = raw.rev();
    assert_ok(&raw.del(&format!("/ctl/ns/a/{old_id}"), now));
    assert_ok(&raw.del("/ctl/boot/a", now));
    old.cont(0);
    poll_until(
        CLUSTER_DEADLINE,
        "the old node to claim its name back",
        || {
            let boot = ns.raw().get("/ctl/boot/a", None).value;
            (boot.as_deref() == Some(old_id.as_bytes()) && registered_in(&ns, "a") == only_old)
                .then_some(())
        },
    );
    let log = old.d(0).stderr();
    assert!(
        log.contains("claimed it back") && !log.contains("name conflict"),
        "{log}"
    );
    assert_eq!(name_conflict_gauge(web), Some(0.0));
}

/// `doozer_ns_name_conflict` in the `/$metrics` of the node whose web
/// viewer is at `web`.
fn name_conflict_gauge(web: std::net::SocketAddr) -> Option<f64> {
    let text = http_get(web, "/$metrics").text();
    let m = prometheus::parse(&text).unwrap_or_else(|e| panic!("/$metrics: {e}\n{text}"));
    m.value("doozer_ns_name_conflict", &[])
}

/// Probes present the booting node's secret: a node with the cluster's
/// `DOOZER_RWSECRET` finds a live CAL of a cluster with a secret answering
/// and joins it; a node with another secret is refused (ACCESS), which is
/// a live node, not silence: the records stay, however long it tries (a
/// misconfigured node never replaces a live cluster).
#[test]
fn probes_use_the_secret_and_a_refusal_is_not_staleness() {
    let ns = Doozerd::start(&[]);
    let ns_uri = ns.uri();
    let secret = ("DOOZER_RWSECRET", "right");
    let seed = named(&ns_uri, "s", "1", &[])
        .env(secret.0, secret.1)
        .start();
    let seed_id = node_id(&seed);
    let only_seed = BTreeMap::from([(seed_id.clone(), seed.addr().to_string())]);
    poll_until(CLUSTER_DEADLINE, "the seed registered", || {
        (registered_in(&ns, "s") == only_seed).then_some(())
    });
    let boot_before = ns.raw().must_get("/ctl/boot/s");

    let mut wrong = named(&ns_uri, "s", "1", &[])
        .env(secret.0, "wrong")
        .spawn_unready();
    poll_until(CLUSTER_DEADLINE, "the wrong secret to be refused", || {
        wrong.stderr().contains("refused this node").then_some(())
    });
    let log = wrong.stderr();
    assert!(log.contains("ACCESS") && !log.contains("stale"), "{log}");
    assert!(wrong.is_running(), "{log}");
    assert_eq!(registered_in(&ns, "s"), only_seed);
    assert_eq!(ns.raw().must_get("/ctl/boot/s"), boot_before);
    wrong.kill();

    let right = named(&ns_uri, "s", "1", &[])
        .env(secret.0, secret.1)
        .start();
    let log = right.stderr();
    assert!(log.contains("a slave") && !log.contains("stale"), "{log}");
    all_attached_to(&[seed, right], 0);
    assert_eq!(registered_in(&ns, "s"), only_seed);
    assert_eq!(ns.raw().must_get("/ctl/boot/s"), boot_before);
}
