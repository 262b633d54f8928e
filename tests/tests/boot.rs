//! Booting through a name service, end to end
//! (docs/reference.md#name-service, #uris for `cn=`): a 3-CAL doozer
//! cluster serves as the name service; six nodes of two new clusters `a`
//! and `b` start at the same moment with `-b`; each cluster gets exactly
//! one seed (the winner of `/ctl/boot/<name>`) and the others attach to it;
//! CALs are listed under `/ctl/ns/<name>/` there; the CLI reaches each
//! cluster by `cn=`; a kicked CAL's entry disappears.

use std::collections::BTreeMap;

use doozer_tests::cluster::{Cluster, CLUSTER_DEADLINE};
use doozer_tests::*;

/// Seconds of silence before a CAL of `a` or `b` is kicked.
const TIMEOUT: &str = "3";

/// `/ctl/ns/<name>/*` in the name service as node 0 of it sees it: id →
/// address.
fn registered(ns: &Cluster, name: &str) -> BTreeMap<String, String> {
    let prefix = format!("/ctl/ns/{name}/");
    ns.d(0)
        .raw()
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
/// registered is a clear start-up error naming the file to delete.
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

    // /ctl/boot/d names a seed, but nothing is registered under /ctl/ns/d.
    doozer(&ns, &["set", "/ctl/boot/d", "0"], b"GONE").ok();
    let port = free_port().to_string();
    let l = format!("127.0.0.1:{port}");
    let out = doozerd_run(&["-l", &l, "-w", "false", "-b", &ns_uri, "-c", "d"]);
    out.expect_code(1);
    assert!(
        out.stderr.contains("GONE") && out.stderr.contains("delete /ctl/boot/d"),
        "{}",
        out.stderr
    );
}
