//! [`Recorder`]: records client operations from many threads (invoke,
//! then a response or nothing).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::op::{Call, Micros, Op, Outcome};

struct RecorderInner {
    start: Instant,
    ops: Mutex<Vec<Op>>,
}

/// Records operations from many client threads; clone it for each thread.
///
/// `invoke` just before sending a request, then `complete` the returned
/// handle with the response. Dropping a handle without completing it
/// records a timeout (the outcome is unknown).
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            inner: Arc::new(RecorderInner {
                start: Instant::now(),
                ops: Mutex::new(Vec::new()),
            }),
        }
    }

    fn now(&self) -> Micros {
        self.inner.start.elapsed().as_micros() as Micros
    }

    /// Records that `client` is about to send `call`.
    pub fn invoke(&self, client: usize, call: Call) -> OpHandle {
        let mut ops = self.inner.ops.lock().unwrap_or_else(|e| e.into_inner());
        let invoke_time = self.now();
        ops.push(Op {
            client,
            invoke_time,
            complete_time: None,
            call,
            result: None,
        });
        OpHandle {
            recorder: self.clone(),
            index: ops.len() - 1,
        }
    }

    /// A copy of everything recorded so far, in invocation order.
    /// Operations still in flight appear as timed out.
    pub fn history(&self) -> Vec<Op> {
        self.inner
            .ops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// An operation in flight; see [`Recorder`].
pub struct OpHandle {
    recorder: Recorder,
    index: usize,
}

impl OpHandle {
    /// Records the response. For an answer that does not tell whether the
    /// operation took effect (connection lost), drop the handle instead.
    pub fn complete(self, result: Outcome) {
        let t = self.recorder.now();
        let mut ops = self
            .recorder
            .inner
            .ops
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let op = &mut ops[self.index];
        op.complete_time = Some(t.max(op.invoke_time));
        op.result = Some(result);
    }

    /// The index of this operation in [`Recorder::history`].
    pub fn index(&self) -> usize {
        self.index
    }
}
