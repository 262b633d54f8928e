//! [`Testbed`]: a cluster whose every node has its own loopback address
//! and group id on one [`Net`], with `-timeout` small enough for kicks to
//! happen within a test.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::net::{Host, Net};
use super::probe;
use crate::cluster::{Cluster, State};

/// A cluster on a [`Net`].
pub struct Testbed {
    /// The nodes (`c.nodes[i]`), started and stopped through the
    /// [`Cluster`] helpers.
    pub c: Cluster,
    /// Cuts between nodes. Declared after `c`: the nodes are killed
    /// before the rules go.
    pub net: Net,
    /// Every node's `-timeout`, in seconds.
    pub timeout: f64,
}

impl Testbed {
    /// `cals` CALs (node 0 seeds, the others are promoted one at a time
    /// into slots 1, 2, ...) and `slaves` slaves attached to the CALs in
    /// turn (slave k to CAL (k + 1) mod `cals`), every node with
    /// `-timeout` `timeout`.
    pub fn start(cals: usize, slaves: usize, timeout: f64) -> Testbed {
        Testbed::start_full(cals, slaves, timeout, false)
    }

    /// [`Testbed::start`], every node with a data directory of its own
    /// (`-d`, docs/storage.md), so that [`Fault::Restart`] can bring nodes
    /// back.
    ///
    /// [`Fault::Restart`]: super::fault::Fault::Restart
    pub fn start_durable(cals: usize, slaves: usize, timeout: f64) -> Testbed {
        Testbed::start_full(cals, slaves, timeout, true)
    }

    fn start_full(cals: usize, slaves: usize, timeout: f64, durable: bool) -> Testbed {
        let net = Net::new();
        let t = timeout.to_string();
        let args = ["-timeout", t.as_str()];
        let mut c = if durable {
            Cluster::start_durable_on(&net, cals, &args)
        } else {
            Cluster::start_on(&net, cals, &args)
        };
        for k in 0..slaves {
            c.attach((k + 1) % cals, &[]);
        }
        Testbed { c, net, timeout }
    }

    /// Node `i`'s host (address and group id).
    pub fn host(&self, i: usize) -> Host {
        let d = self.c.d(i);
        let IpAddr::V4(ip) = d.addr().ip() else {
            unreachable!("nodes listen on IPv4 loopback")
        };
        Host {
            ip,
            gid: d.gid().expect("a testbed node has a gid"),
        }
    }

    /// The hosts of `nodes`.
    pub fn hosts(&self, nodes: &[usize]) -> Vec<Host> {
        nodes.iter().map(|&i| self.host(i)).collect()
    }

    /// Node `i`'s client address.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.c.d(i).addr()
    }

    /// `node 2 (ID at ADDR)`, for reports.
    pub fn desc(&self, i: usize) -> String {
        format!("node {i} ({} at {})", self.c.id(i), self.addr(i))
    }

    /// Nodes whose process runs (neither stopped nor killed by the test).
    pub fn live(&self) -> Vec<usize> {
        self.c.running()
    }

    /// Nodes not killed (running or stopped).
    pub fn alive(&self) -> Vec<usize> {
        (0..self.c.nodes.len())
            .filter(|&i| self.c.nodes[i].state != State::Killed)
            .collect()
    }

    /// The node whose id is `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        (0..self.c.nodes.len()).find(|&i| self.c.id(i) == id)
    }

    /// The slots as node `via` sees them now.
    pub fn slots_via(&self, via: usize) -> Result<BTreeMap<String, String>, String> {
        Ok(probe::walk(self.addr(via), "/ctl/cal/*", None)?
            .into_iter()
            .map(|(p, _, v)| (p, String::from_utf8_lossy(&v).into_owned()))
            .collect())
    }

    /// The CAL nodes (indices) named by `slots`, in slot order.
    pub fn cals_in(&self, slots: &BTreeMap<String, String>) -> Vec<usize> {
        slots.values().filter_map(|id| self.index_of(id)).collect()
    }

    /// The CALs as the first live node that answers sees them; panics if
    /// none does.
    pub fn cals(&self) -> Vec<usize> {
        for i in self.live() {
            if let Ok(slots) = self.slots_via(i) {
                return self.cals_in(&slots);
            }
        }
        panic!("no live node answers a WALK of /ctl/cal/*")
    }

    /// Starts a new slave attached to the first live CAL; its index.
    pub fn add_slave(&mut self) -> usize {
        let live = self.live();
        let to = self
            .cals()
            .into_iter()
            .find(|i| live.contains(i))
            .expect("a live CAL to attach to");
        self.c.attach(to, &[])
    }
}
