//! A slave's stream from the node it follows, and attaching again when it
//! breaks. The stream's responses go to the replica as they are read (a
//! bounded amount per loop iteration, so a large copy does not hold up
//! clients); the replica's requests on it (a slot claim, catch-up NOPs)
//! are written back. When the followed node goes away, the attach
//! handshake runs on a helper thread (connecting to a stopped member can
//! take seconds) and the loop reads the copy from the stream it hands
//! back, like any later change.

use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use doozer_proto::{encode_frame, FrameDecoder, Request, Response};
use mio::net::TcpStream;
use mio::{Interest, Poll, Waker};
use prost::Message;

use super::conns::READ_CHUNK;
use super::FOLLOW_STREAM;
use crate::attach::{self, Attach, AttachError, Followed};
use crate::replica::{Input, Replica};
use crate::tls;

/// Shortest silence of a follow stream after which the slave attaches
/// elsewhere (see [`Follower::new`]).
const FOLLOW_IDLE_MIN: Duration = Duration::from_secs(5);
/// Wait between attempts to attach again after losing the followed node.
const REATTACH_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes of the follow stream read per loop iteration: a copy of a large
/// store arrives over many iterations, with clients served in between.
const READ_BUDGET: usize = 1 << 20;

/// The connection a slave follows its CAL on.
struct FollowConn {
    stream: TcpStream,
    /// The TLS session, when the cluster serves TLS.
    tls: Option<Box<rustls::ClientConnection>>,
    rbuf: BytesMut,
    /// Requests of this node to the CAL (slot claims, catch-up NOPs).
    wbuf: BytesMut,
    /// WRITABLE interest is registered.
    want_write: bool,
    /// When bytes last arrived: every CAL pulses, so a silent stream means
    /// the followed node is stopped or cut off.
    last_data: Instant,
}

impl FollowConn {
    /// Makes the attached (blocking) stream part of the loop, keeping the
    /// bytes already read from it.
    fn register(poll: &Poll, followed: Followed) -> io::Result<FollowConn> {
        followed.stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(followed.stream);
        poll.registry()
            .register(&mut stream, FOLLOW_STREAM, Interest::READABLE)?;
        Ok(FollowConn {
            stream,
            tls: followed.tls,
            rbuf: followed.rbuf,
            wbuf: BytesMut::new(),
            want_write: false,
            last_data: Instant::now(),
        })
    }

    /// Writes what it can of the queued requests.
    fn flush(&mut self, poll: &Poll) -> io::Result<()> {
        tls::write_maybe(self.tls.as_deref_mut(), &mut self.stream, &mut self.wbuf)?;
        let want_write =
            !self.wbuf.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write());
        if want_write != self.want_write {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            poll.registry()
                .reregister(&mut self.stream, FOLLOW_STREAM, interest)?;
            self.want_write = want_write;
        }
        Ok(())
    }
}

/// Following a node, and finding another one to follow.
pub(super) struct Follower {
    /// The stream, while following.
    conn: Option<FollowConn>,
    /// `-a` members (or those the name service gave at start-up).
    attach_addrs: Vec<SocketAddr>,
    /// A stream silent this long is given up (a few pulses).
    idle: Duration,
    /// Members whose stream broke or who refused: tried last, in turn.
    lost_members: attach::LostMembers,
    attach: Attach,
    /// When to try attaching again after losing the followed node.
    reattach_at: Option<Instant>,
    reattach_failures: u32,
    /// An attach handshake running on a helper thread.
    attaching: Option<mpsc::Receiver<Result<Followed, AttachError>>>,
    /// Wakes the loop when the handshake is done.
    waker: Arc<Waker>,
    decoder: FrameDecoder,
    scratch: Vec<u8>,
    /// The read budget ran out with bytes maybe still waiting: read again
    /// without waiting for readiness (the poll is edge-triggered).
    more: bool,
}

impl Follower {
    /// Follows `followed` (none: this node seeded); `pulse_ms` sets how
    /// long a silent stream is trusted.
    pub(super) fn new(
        poll: &Poll,
        followed: Option<Followed>,
        attach_addrs: Vec<SocketAddr>,
        attach: Attach,
        waker: Arc<Waker>,
        pulse_ms: u64,
    ) -> io::Result<Follower> {
        let conn = match followed {
            Some(f) => Some(FollowConn::register(poll, f)?),
            None => None,
        };
        Ok(Follower {
            conn,
            attach_addrs,
            idle: FOLLOW_IDLE_MIN.max(Duration::from_millis(pulse_ms) * 5),
            lost_members: attach::LostMembers::default(),
            attach,
            reattach_at: None,
            reattach_failures: 0,
            attaching: None,
            waker,
            decoder: FrameDecoder::default(),
            scratch: vec![0; READ_CHUNK],
            // A TLS session may hold decrypted bytes of the stream already,
            // which no socket event would announce.
            more: true,
        })
    }

    /// When the loop must look at the follower again without an event.
    pub(super) fn deadline(&self) -> Option<Instant> {
        if self.more && self.conn.is_some() {
            return Some(Instant::now());
        }
        let idle = self.conn.as_ref().map(|f| f.last_data + self.idle);
        [idle, self.reattach_at].into_iter().flatten().min()
    }

    /// Goes on reading a stream whose last read stopped at the budget.
    pub(super) fn read_more(&mut self, poll: &Poll, replica: &mut Replica, now_ms: u64) {
        if self.more {
            self.readable(poll, replica, now_ms);
        }
    }

    /// Applies what the followed node sent, frame by frame as it is read
    /// (the buffer stays about one read long), up to the read budget. A
    /// broken stream is dropped and the node attaches again.
    pub(super) fn readable(&mut self, poll: &Poll, replica: &mut Replica, now_ms: u64) {
        self.more = false;
        // Bytes read with the handshake come first.
        if let Err(e) = self.apply_frames(replica, now_ms) {
            return self.broken(poll, replica, now_ms, &e);
        }
        let mut budget = READ_BUDGET;
        let lost = loop {
            let Some(f) = self.conn.as_mut() else {
                return;
            };
            if budget == 0 {
                self.more = true;
                return;
            }
            let n = match tls::read_maybe(f.tls.as_deref_mut(), &mut f.stream, &mut self.scratch) {
                Ok(0) => break Some("the followed node closed the connection".to_string()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(e.to_string()),
            };
            budget = budget.saturating_sub(n);
            f.rbuf.extend_from_slice(&self.scratch[..n]);
            f.last_data = Instant::now();
            if let Err(e) = self.apply_frames(replica, now_ms) {
                break Some(e);
            }
        };
        if let Some(why) = lost {
            self.broken(poll, replica, now_ms, &why);
        }
    }

    /// Hands every complete response buffered on the stream to the
    /// replica.
    fn apply_frames(&mut self, replica: &mut Replica, now_ms: u64) -> Result<(), String> {
        let Some(f) = self.conn.as_mut() else {
            return Ok(());
        };
        while let Some(frame) = self
            .decoder
            .decode(&mut f.rbuf)
            .map_err(|e| e.to_string())?
        {
            let resp = Response::decode(frame).map_err(|e| e.to_string())?;
            replica
                .step(now_ms, Input::Follow(resp))
                .map_err(|e| e.to_string())?;
            if replica.is_cal() {
                return Ok(()); // promoted: the rest of the stream is not needed
            }
        }
        Ok(())
    }

    /// The stream cannot go on: drop it and attach again, trying the node
    /// it came from last.
    pub(super) fn broken(&mut self, poll: &Poll, replica: &mut Replica, now_ms: u64, why: &str) {
        log::warn!("lost the followed node ({why}); attaching again");
        if let Some(a) = self.conn.as_ref().and_then(|f| f.stream.peer_addr().ok()) {
            self.lost_members.note(SocketAddr::new(a.ip(), a.port()));
        }
        self.drop_stream(poll);
        let _ = replica.step(now_ms, Input::FollowLost);
        self.reattach_at = Some(Instant::now());
    }

    /// Attaches from the loop as soon as it runs (a slave restarted from
    /// its data directory).
    pub(super) fn attach_soon(&mut self) {
        self.reattach_at = Some(Instant::now());
    }

    /// A promoted slave stops following; a demoted CAL attaches again.
    pub(super) fn promoted(&mut self, poll: &Poll) {
        log::info!("promoted to CAL; no longer following");
        self.drop_stream(poll);
        self.reattach_at = None;
    }

    /// A demoted CAL attaches again (at once).
    pub(super) fn demoted(&mut self, poll: &Poll) {
        self.drop_stream(poll);
        self.reattach_at = Some(Instant::now());
    }

    fn drop_stream(&mut self, poll: &Poll) {
        if let Some(mut f) = self.conn.take() {
            let _ = poll.registry().deregister(&mut f.stream);
        }
        self.more = false;
    }

    /// Sends the replica's requests on the stream; gives up a silent
    /// stream; starts an attach attempt that is due.
    pub(super) fn on_loop(
        &mut self,
        poll: &Poll,
        requests: &[Request],
        replica: &mut Replica,
        now_ms: u64,
    ) {
        if let Some(f) = self.conn.as_mut() {
            for r in requests {
                encode_frame(r, &mut f.wbuf);
            }
            if let Err(e) = f.flush(poll) {
                self.broken(poll, replica, now_ms, &format!("write: {e}"));
            }
        }
        if self
            .conn
            .as_ref()
            .is_some_and(|f| f.last_data.elapsed() >= self.idle)
        {
            self.broken(poll, replica, now_ms, "nothing received for a while");
        }
        if self.reattach_at.is_some_and(|t| t <= Instant::now()) {
            self.reattach(replica);
        }
    }

    /// Starts one attempt to follow a CAL again: those named in the
    /// copied `/ctl` files, then the `-a` addresses. The handshake runs on
    /// a helper thread; [`Follower::attached`] takes the stream.
    fn reattach(&mut self, replica: &Replica) {
        if self.attaching.is_some() {
            return;
        }
        self.reattach_at = None;
        let mut candidates = attach::candidates(replica, &self.attach.info.id, &self.attach_addrs);
        self.lost_members.order(&mut candidates);
        let resume = attach::Resume::of(replica);
        let listed = replica.listed_as_cal();
        let attach = self.attach.clone();
        let waker = Arc::clone(&self.waker);
        let (tx, rx) = mpsc::channel();
        self.attaching = Some(rx);
        let spawned = std::thread::Builder::new()
            .name("attach".into())
            .spawn(move || {
                let _ = tx.send(attach.handshake_first_of(&candidates, resume, listed));
                let _ = waker.wake();
            });
        if let Err(e) = spawned {
            log::error!("attach: cannot start a thread: {e}");
            self.attaching = None;
            self.reattach_at = Some(Instant::now() + REATTACH_INTERVAL);
        }
    }

    /// The attach handshake finished: follow the member, or retry later.
    pub(super) fn attached(&mut self, poll: &Poll, replica: &mut Replica, now_ms: u64) {
        let Some(rx) = self.attaching.as_ref() else {
            return;
        };
        let result = match rx.try_recv() {
            Ok(r) => r,
            Err(mpsc::TryRecvError::Empty) => return, // a stale wake-up
            Err(mpsc::TryRecvError::Disconnected) => Err(AttachError::Refused {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                what: "the attach thread ended without an answer".into(),
            }),
        };
        self.attaching = None;
        let registered = result.and_then(|f| {
            FollowConn::register(poll, f).map_err(|e| AttachError::Refused {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                what: format!("register the follow stream: {e}"),
            })
        });
        match registered {
            Ok(f) => {
                log::info!("following again from rev {}", replica.store().rev());
                // A fresh stream: copy or READY first.
                let _ = replica.step(now_ms, Input::FollowLost);
                self.conn = Some(f);
                self.reattach_failures = 0;
                self.readable(poll, replica, now_ms);
            }
            Err(e) => {
                // Once at warn, then quietly: a CAL may be down for long.
                if self.reattach_failures == 0 {
                    log::warn!("cannot attach again yet: {e}; retrying every second");
                } else {
                    log::debug!("attach: {e}");
                }
                self.reattach_failures += 1;
                self.reattach_at = Some(Instant::now() + REATTACH_INTERVAL);
            }
        }
    }
}
