//! Writes through a slave (docs/reference.md#writes-through-a-slave): a
//! write (SET, DEL, NOP) that a node refuses with `READONLY` is sent to a
//! CAL of the same cluster.
//!
//! A [`Client`] sends its writes where it sends its reads until a write
//! is refused with `READONLY` (the node is a slave). Then it looks up the
//! cluster's CALs on the node it reads from ([`Client::cals`]: the
//! `/ctl/cal/*` slots and each CAL's `/ctl/node/<id>/addr`, all at one
//! rev), connects to the first CAL that answers (with the URI's TLS and
//! secret), sends the write there, and keeps that connection for later
//! writes ([`Client::write_addr`]). Reads keep going to the node they
//! went to.
//!
//! The CALs change: one may stop being a CAL (it answers `READONLY` like
//! a slave) or go away. A write refused with `READONLY` by the kept CAL
//! is sent to the CALs looked up again. Once the kept connection has
//! closed, the next write goes where reads go, as at first (that node may
//! have become a CAL meanwhile), and a refusal there looks the CALs up
//! again. Either way the CALs that just failed are tried last, and each
//! CAL at most once for one write. If none takes it, the caller gets the
//! `READONLY` refusal, its detail saying why no CAL took it (`doozer`
//! prints `Error: read-only: no CAL took the write: ...`).
//!
//! Sending a refused write again is safe: a node answers a write with
//! `READONLY` only before proposing it, when it does not accept writes or
//! when it left consensus before proposing it (docs/reference.md#error-codes),
//! so the write was applied nowhere. A write that fails with a connection
//! error once it was sent to a CAL is not sent again, as everywhere in
//! this crate: it may have been applied ([`crate::client`]).
//!
//! ```no_run
//! # fn main() -> doozer::Result<()> {
//! // A slave's address: reads are served there, writes go to a CAL.
//! let c = doozer::Client::connect("doozer:?ca=10.0.0.9:8046")?;
//! let rev = c.set("/app/x", doozer::rev::CLOBBER, &b"1"[..])?;
//! assert_eq!(c.get("/app/x", Some(rev))?.0, &b"1"[..]);
//! println!("reads from {:?}, writes to {:?}", c.current_addr(), c.write_addr());
//! # Ok(())
//! # }
//! ```

use std::time::Instant;

use doozer_proto::ctl::{self, CtlPath, NodeFile};
use doozer_proto::{ErrCode, Request, Response};

use crate::client::Client;
use crate::error::Result;

/// A CAL of the cluster, as [`Client::cals`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cal {
    /// The name of its slot in `/ctl/cal/` (`"0"`, `"1"`, ...).
    pub slot: String,
    /// The node's id.
    pub id: String,
    /// The node's address, from `/ctl/node/<id>/addr` (`HOST:PORT`).
    pub addr: String,
}

/// Whether `resp` refuses a write with `READONLY`.
fn is_readonly(resp: &Response) -> bool {
    resp.err_code == Some(ErrCode::Readonly as i32)
}

impl Client {
    /// The CALs of the cluster as the node this client reads from knows
    /// them, all read at its current rev: every filled slot of
    /// `/ctl/cal/*`, in slot order, with its node's address. A slot whose
    /// node has no address file is left out.
    pub fn cals(&self) -> Result<Vec<Cal>> {
        let rev = self.rev()?;
        let mut out = Vec::new();
        for slot in self.walk_all(&format!("{}/*", ctl::CAL_DIR), Some(rev))? {
            let Some(CtlPath::CalSlot(name)) = ctl::parse(&slot.path) else {
                continue;
            };
            let id = String::from_utf8_lossy(&slot.body).into_owned();
            if id.is_empty() {
                continue; // a free slot
            }
            let (addr, at) = self.get(&ctl::node_file(&id, NodeFile::Addr), Some(rev))?;
            let addr = String::from_utf8_lossy(&addr).trim().to_string();
            if at != 0 && !addr.is_empty() {
                out.push(Cal {
                    slot: name.to_string(),
                    id,
                    addr,
                });
            }
        }
        Ok(out)
    }

    /// Sends the write `r` to the kept CAL while its connection is open,
    /// else where reads go; a refusal with `READONLY` sends it on to
    /// another CAL ([`Client::redirect`]). Never sent twice after a
    /// connection error.
    pub(crate) fn write(&self, r: Request, deadline: Option<Instant>) -> Result<Response> {
        let kept = self.cal();
        let conn = match kept.clone().filter(|c| !c.is_closed()) {
            Some(c) => c,
            None => self.conn()?,
        };
        let resp = conn.call(r.clone(), deadline)?;
        if !is_readonly(&resp) {
            return Ok(resp);
        }
        // Tried last: the node that refused, and a CAL whose connection
        // closed.
        let mut last = vec![conn.addr().to_string()];
        last.extend(kept.map(|c| c.addr().to_string()));
        self.redirect(&r, deadline, resp, &last)
    }

    /// Sends the write `r`, refused with `refused` (`READONLY`), to the
    /// CALs looked up now, each at most once, those at the addresses
    /// `last` last, until one takes it; keeps that CAL's connection for
    /// later writes. If none takes it, returns `refused`, its detail
    /// saying why.
    fn redirect(
        &self,
        r: &Request,
        deadline: Option<Instant>,
        refused: Response,
        last: &[String],
    ) -> Result<Response> {
        let mut cals = match self.cals() {
            Ok(cals) => cals,
            Err(e) => return Ok(explain(refused, format!("looking up the CALs: {e}"))),
        };
        cals.sort_by_key(|c| last.contains(&c.addr));
        let mut why = Vec::new();
        for cal in cals {
            let conn = match self.open_with_secret(&cal.addr) {
                Ok(c) => c,
                Err(e) if e.is_connection_error() => {
                    why.push(e.to_string());
                    continue;
                }
                Err(e) => return Err(e),
            };
            // Sent from here on: a connection error is not retried.
            let resp = conn.call(r.clone(), deadline)?;
            if is_readonly(&resp) {
                why.push(format!("{} is no longer a CAL", cal.addr));
                continue;
            }
            self.keep_cal(conn);
            return Ok(resp);
        }
        if why.is_empty() {
            why.push(format!("no CAL in {}", ctl::CAL_DIR));
        }
        Ok(explain(
            refused,
            format!("no CAL took the write: {}", why.join("; ")),
        ))
    }
}

/// `refused` with `why` as its detail.
fn explain(mut refused: Response, why: String) -> Response {
    refused.err_detail = Some(why);
    refused
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use bytes::{Bytes, BytesMut};
    use doozer_proto::{encode_frame, FrameDecoder, Verb};
    use parking_lot::Mutex;
    use prost::Message;

    use super::*;
    use crate::error::Error;

    /// The `/ctl` files all fake nodes of a test serve, at rev 1.
    type Tree = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

    /// A fake node: serves REV (1), GET and WALK of `tree`, takes writes
    /// (rev 2) while `cal`, else refuses them with READONLY; a write of
    /// `/die` closes the connection instead. Counts the writes it gets.
    struct Fake {
        addr: String,
        cal: Arc<AtomicBool>,
        writes: Arc<AtomicUsize>,
    }

    fn fake(tree: &Tree, cal: bool) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let f = Fake {
            addr: l.local_addr().unwrap().to_string(),
            cal: Arc::new(AtomicBool::new(cal)),
            writes: Arc::new(AtomicUsize::new(0)),
        };
        let (tree, is_cal, writes) = (tree.clone(), f.cal.clone(), f.writes.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let (tree, is_cal, writes) = (tree.clone(), is_cal.clone(), writes.clone());
                std::thread::spawn(move || serve(s, &tree, &is_cal, &writes));
            }
        });
        f
    }

    fn answer(r: Request, tree: &Tree, cal: &AtomicBool, writes: &AtomicUsize) -> Option<Response> {
        let mut resp = Response {
            tag: r.tag,
            ..Default::default()
        };
        let path = r.path.clone().unwrap_or_default();
        match Verb::try_from(r.verb.unwrap_or(0)).ok()? {
            Verb::Access => {}
            Verb::Rev => resp.rev = Some(1),
            Verb::Get => {
                let body = tree.lock().get(&path).cloned();
                resp.rev = Some(if body.is_some() { 1 } else { 0 });
                resp.value = Some(Bytes::from(body.unwrap_or_default()));
            }
            Verb::Walk => {
                let dir = path.strip_suffix('*').unwrap_or(&path).to_string();
                let t = tree.lock();
                let Some((p, v)) = t
                    .iter()
                    .filter(|(p, _)| p.starts_with(&dir) && !p[dir.len()..].contains('/'))
                    .nth(r.offset.unwrap_or(0) as usize)
                else {
                    return Some(Response::error(r.tag, ErrCode::Range, None));
                };
                (resp.path, resp.rev) = (Some(p.clone()), Some(1));
                resp.value = Some(Bytes::from(v.clone()));
            }
            Verb::Set | Verb::Del | Verb::Nop => {
                writes.fetch_add(1, Ordering::SeqCst);
                if !cal.load(Ordering::SeqCst) {
                    return Some(Response::error(r.tag, ErrCode::Readonly, None));
                }
                if path == "/die" {
                    return None;
                }
                resp.rev = Some(2);
            }
            _ => return Some(Response::error(r.tag, ErrCode::UnknownVerb, None)),
        }
        Some(resp)
    }

    fn serve(mut s: TcpStream, tree: &Tree, cal: &AtomicBool, writes: &AtomicUsize) {
        let (dec, mut buf, mut chunk) = (FrameDecoder::default(), BytesMut::new(), [0u8; 4096]);
        loop {
            while let Ok(Some(f)) = dec.decode(&mut buf) {
                let Some(resp) = answer(Request::decode(f).unwrap(), tree, cal, writes) else {
                    return; // closes the connection
                };
                let mut out = BytesMut::new();
                encode_frame(&resp, &mut out);
                if s.write_all(&out).is_err() {
                    return;
                }
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// A tree with CAL `id` at `addr` in slot `slot` for each of `cals`,
    /// plus a free slot.
    fn tree(cals: &[(&str, &str, &str)]) -> Tree {
        let mut t = BTreeMap::new();
        for (slot, id, addr) in cals {
            t.insert(ctl::cal_slot(slot), id.as_bytes().to_vec());
            t.insert(ctl::node_file(id, NodeFile::Addr), addr.as_bytes().to_vec());
        }
        t.insert(ctl::cal_slot(9), Vec::new());
        Arc::new(Mutex::new(t))
    }

    fn add_cal(t: &Tree, slot: &str, id: &str, addr: &str) {
        let mut t = t.lock();
        t.insert(ctl::cal_slot(slot), id.as_bytes().to_vec());
        t.insert(ctl::node_file(id, NodeFile::Addr), addr.as_bytes().to_vec());
    }

    fn writes(f: &Fake) -> usize {
        f.writes.load(Ordering::SeqCst)
    }

    /// A port with nothing listening on it.
    fn dead_addr() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    }

    #[test]
    fn cals_are_the_filled_slots_with_an_address() {
        let t = tree(&[("0", "A", "h:1"), ("1", "B", "h:2")]);
        t.lock().insert(ctl::cal_slot(2), b"NOADDR".to_vec());
        let s = fake(&t, false);
        let c = Client::connect(&format!("doozer:?ca={}", s.addr)).unwrap();
        let cal = |slot: &str, id: &str, addr: &str| Cal {
            slot: slot.into(),
            id: id.into(),
            addr: addr.into(),
        };
        assert_eq!(
            c.cals().unwrap(),
            [cal("0", "A", "h:1"), cal("1", "B", "h:2")]
        );
    }

    #[test]
    fn a_refused_write_goes_to_a_cal_and_later_writes_follow_it() {
        let t = tree(&[]);
        let (s, a, b) = (fake(&t, false), fake(&t, true), fake(&t, true));
        add_cal(&t, "0", "A", &a.addr);
        add_cal(&t, "1", "B", &b.addr);
        let c = Client::connect(&format!("doozer:?ca={}&sk=x", s.addr)).unwrap();
        assert_eq!(c.write_addr(), None);
        assert_eq!(c.set("/x", -1, Bytes::new()).unwrap(), 2);
        assert_eq!(c.write_addr().as_deref(), Some(a.addr.as_str()));
        c.del("/x", -1).unwrap();
        assert_eq!(c.nop().unwrap(), 2);
        // The slave refused the first write only; reads stay on it.
        assert_eq!((writes(&s), writes(&a), writes(&b)), (1, 3, 0));
        assert_eq!(c.current_addr().as_deref(), Some(s.addr.as_str()));

        // A stops being a CAL: the write it refuses goes to B.
        a.cal.store(false, Ordering::SeqCst);
        c.set("/y", -1, Bytes::new()).unwrap();
        assert_eq!((writes(&s), writes(&a), writes(&b)), (1, 4, 1));
        assert_eq!(c.write_addr().as_deref(), Some(b.addr.as_str()));

        // B's connection breaks under a write: not sent again anywhere.
        let e = c.set("/die", -1, Bytes::new()).unwrap_err();
        assert!(e.is_connection_error(), "{e:?}");
        assert_eq!((writes(&s), writes(&a), writes(&b)), (1, 4, 2));
        // The next write starts where reads go, and A, a CAL again, is
        // tried before B, whose connection broke.
        a.cal.store(true, Ordering::SeqCst);
        c.set("/z", -1, Bytes::new()).unwrap();
        assert_eq!((writes(&s), writes(&a), writes(&b)), (2, 5, 2));
        assert_eq!(c.write_addr().as_deref(), Some(a.addr.as_str()));
    }

    #[test]
    fn a_write_no_cal_takes_is_refused_saying_why() {
        let t = tree(&[]);
        let (s, a) = (fake(&t, false), fake(&t, false));
        let dead = dead_addr();
        add_cal(&t, "0", "A", &a.addr);
        add_cal(&t, "1", "D", &dead);
        let c = Client::connect(&format!("doozer:?ca={}", s.addr)).unwrap();
        let e = c.set("/x", -1, Bytes::new()).unwrap_err();
        assert_eq!(e.code(), Some(ErrCode::Readonly), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with("read-only: no CAL took the write: "),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} is no longer a CAL", a.addr)),
            "{text}"
        );
        assert!(
            text.contains(&format!("cannot connect to {dead}")),
            "{text}"
        );
        assert_eq!((writes(&s), writes(&a), c.write_addr()), (1, 1, None));

        // No CAL at all.
        t.lock().clear();
        let e = c.nop().unwrap_err();
        assert_eq!(
            e.to_string(),
            "read-only: no CAL took the write: no CAL in /ctl/cal"
        );
        // The raw response says the same.
        let r = c
            .call(Request {
                verb: Some(Verb::Nop as i32),
                ..Default::default()
            })
            .unwrap();
        assert!(matches!(Error::check(r), Err(e) if e.code() == Some(ErrCode::Readonly)));
    }
}
