//! Asking every node directly: SELF and REV over a connection of its own
//! (with the URI's TLS and secret), all nodes at once, each within the
//! timeout. A node that has not answered by then did not answer; its
//! thread is left behind (the command exits soon after).

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use doozer::ctl::{self, NodeFile};
use doozer::{DoozerUri, Error, Pipeline, Request, TlsClient, Verb};

use super::Node;
use crate::failure::Failure;

/// What a node answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// It answered REV (and SELF with its own id).
    Yes {
        /// Its rev.
        rev: i64,
        /// From connecting to its answer.
        took: Duration,
    },
    /// It did not: why (refused, timed out, another node at its address).
    No(String),
}

const ACCESS_TAG: i32 = 0;
const SELF_TAG: i32 = 1;
const REV_TAG: i32 = 2;

/// Asks every node of `nodes` that has an address, and records each
/// answer (or why there is none) in the node.
pub fn ask_all(nodes: &mut [Node], uri: &DoozerUri, timeout: Duration) -> Result<(), Failure> {
    let tls = match &uri.tls_ca {
        Some(path) => Some(TlsClient::from_ca_file(path)?),
        None => None,
    };
    let secret = uri.secret.clone().map(Bytes::from);
    let deadline = Instant::now() + timeout;
    let (tx, rx) = mpsc::channel();
    let mut asked = 0;
    for (i, n) in nodes.iter_mut().enumerate() {
        let Some(addr) = n.addr.clone().filter(|a| !a.is_empty()) else {
            let file = ctl::node_file(&n.id, NodeFile::Addr);
            n.answer = Answer::No(format!("no address ({file} is missing)"));
            continue;
        };
        let late = format!("no answer within {timeout:?}");
        n.answer = Answer::No(late.clone());
        let (tx, tls, secret, id) = (tx.clone(), tls.clone(), secret.clone(), n.id.clone());
        let spawned = thread::Builder::new()
            .name(format!("status {addr}"))
            .spawn(move || {
                let start = Instant::now();
                let answer = match ask(&addr, &id, tls.as_ref(), secret, deadline) {
                    Ok(rev) => Answer::Yes {
                        rev,
                        took: start.elapsed(),
                    },
                    Err(why) => Answer::No(why.unwrap_or(late)),
                };
                let _ = tx.send((i, answer));
            });
        match spawned {
            Ok(_) => asked += 1,
            Err(e) => n.answer = Answer::No(format!("cannot start a thread to ask it: {e}")),
        }
    }
    drop(tx);
    for _ in 0..asked {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, answer)) => nodes[i].answer = answer,
            Err(_) => break,
        }
    }
    Ok(())
}

fn request(tag: i32, verb: Verb) -> Request {
    Request {
        tag: Some(tag),
        verb: Some(verb as i32),
        ..Default::default()
    }
}

/// Connects to `addr`, presents `secret`, and asks SELF and REV in one
/// write; the node's rev if it answers both by `deadline` as node `id`,
/// else why not (`None`: it ran out of time).
fn ask(
    addr: &str,
    id: &str,
    tls: Option<&TlsClient>,
    secret: Option<Bytes>,
    deadline: Instant,
) -> Result<i64, Option<String>> {
    let mut p = Pipeline::connect_with(addr, tls).map_err(|e| {
        Some(match e {
            Error::Connect { source, .. } => source.to_string(),
            e => e.to_string(),
        })
    })?;
    let failed = |e: Error| Some(e.to_string());
    if let Some(s) = secret {
        p.send(&Request {
            value: Some(s),
            ..request(ACCESS_TAG, Verb::Access)
        });
    }
    p.send(&request(SELF_TAG, Verb::Self_));
    p.send(&request(REV_TAG, Verb::Rev));
    p.flush().map_err(failed)?;
    let (mut self_id, mut rev) = (None, None);
    while self_id.is_none() || rev.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(None);
        }
        let Some(r) = p.recv_timeout(left).map_err(failed)? else {
            continue;
        };
        let tag = r.tag;
        let r = Error::check(r).map_err(|e| {
            Some(match tag {
                Some(ACCESS_TAG) => format!("ACCESS refused: {e}"),
                Some(SELF_TAG) => format!("SELF failed: {e}"),
                _ => format!("REV failed: {e}"),
            })
        })?;
        match tag {
            Some(SELF_TAG) => {
                self_id = Some(String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned())
            }
            Some(REV_TAG) => rev = Some(r.rev.unwrap_or_default()),
            _ => {}
        }
    }
    match (self_id, rev) {
        (Some(other), _) if other != id => Err(Some(format!("{addr} answers as node {other}"))),
        (_, Some(rev)) => Ok(rev),
        _ => Err(None),
    }
}
