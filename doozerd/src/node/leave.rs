//! Graceful leave (docs/cluster.md, "Leaving gracefully"): SIGTERM or
//! SIGINT on a CAL empties its slot and waits, a few seconds at most,
//! until that is decided and the others no longer need it; a slave (or
//! the only CAL) exits at once; a second signal exits at once.

use std::io;
use std::time::{Duration, Instant};

use mio::{Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::replica::Replica;

/// The longest a leaving CAL waits for its slot to be emptied.
pub const LEAVE_WAIT: Duration = Duration::from_secs(5);

/// How long a leaving CAL goes on answering its clients after it is
/// done, before it stops: a client that sent a write just before would
/// otherwise find its connection closed (reset, its request unread) and
/// could not tell whether the write happened; answered `READONLY`
/// instead, the write goes to another CAL (the client library does it by
/// itself). Reads are served meanwhile.
pub const LEAVE_LINGER: Duration = Duration::from_millis(200);

/// How the node ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It left cleanly (exit status 0).
    Clean,
    /// A second signal: it stopped at once (exit status 128 + signal).
    Signal(i32),
}

/// The termination signals, as events of the loop.
pub(super) struct Leave {
    signals: Signals,
    /// Since when this node has been leaving, and by when it gives up.
    until: Option<Instant>,
    /// Done leaving: how it ends, and when (after [`LEAVE_LINGER`]).
    closing: Option<(Instant, Exit)>,
}

impl Leave {
    /// Catches SIGTERM and SIGINT from now on, as events of `token`.
    pub(super) fn new(poll: &Poll, token: Token) -> io::Result<Leave> {
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut signals, token, Interest::READABLE)?;
        Ok(Leave {
            signals,
            until: None,
            closing: None,
        })
    }

    /// Signals arrived: the first starts leaving (or ends a node with
    /// nothing to hand over), a second one ends the node at once.
    pub(super) fn signalled(&mut self, replica: &mut Replica) -> Option<Exit> {
        let mut exit = None;
        for sig in self.signals.pending() {
            if self.until.is_some() {
                log::warn!("signal {sig} while leaving: stopping now");
                return Some(Exit::Signal(sig));
            }
            if replica.leave() {
                log::info!(
                    "signal {sig}: leaving consensus (at most {} s; again to stop now)",
                    LEAVE_WAIT.as_secs()
                );
                self.until = Some(Instant::now() + LEAVE_WAIT);
            } else {
                log::info!("signal {sig}: stopping");
                exit = Some(Exit::Clean);
            }
        }
        exit
    }

    /// While leaving: done once the emptied slot is decided (this node
    /// is in no slot any more, so nobody will kick it), every client
    /// write it proposed is answered (stopping earlier would leave its
    /// client not knowing whether it happened), and the others can
    /// decide the last `alpha` seqns it still belongs to without it (a
    /// majority of their set, or else once it left consensus and they no
    /// longer need it), or when the wait is over. Then it goes on
    /// answering clients for [`LEAVE_LINGER`] (new writes refused) before
    /// it stops.
    pub(super) fn done(&mut self, replica: &Replica) -> Option<Exit> {
        let now = Instant::now();
        if let Some((at, exit)) = self.closing {
            return (now >= at).then_some(exit);
        }
        let until = self.until?;
        let out = !replica.is_cal() && !replica.needed_by_others();
        let answered = replica.writes_in_consensus() == 0;
        if !replica.listed_as_cal() && answered && (out || replica.others_are_a_majority()) {
            log::info!("left consensus (its slot is empty); stopping");
        } else if now >= until {
            log::warn!(
                "leaving: not confirmed within {} s; stopping anyway (the others kick this node after -timeout if its slot is still filled)",
                LEAVE_WAIT.as_secs()
            );
        } else {
            return None;
        }
        self.closing = Some((now + LEAVE_LINGER, Exit::Clean));
        None
    }

    /// When the loop must look again without an event.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.closing.map(|(at, _)| at).or(self.until)
    }
}
