//! Waiting for a condition with a deadline, never a fixed sleep.

use std::thread;
use std::time::{Duration, Instant};

/// How long to wait for anything that should happen "soon" (a node
/// starting, a response, a change being reported).
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Calls `f` until it returns `Some`, or panics with `what` after
/// `timeout`. Polls every 20 ms.
pub fn poll_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
