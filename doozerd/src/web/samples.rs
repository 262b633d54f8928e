//! The last 15 minutes of a node's figures, one sample a second, for the
//! charts of the stats page (docs/web.md#samples). The event loop takes
//! the samples (it owns the clock); this is only the ring and its JSON.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::json;

/// How often the event loop takes a sample.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Samples kept: 15 minutes at [`SAMPLE_INTERVAL`], so a page opened now
/// draws the last 15 minutes at once.
pub const SAMPLES_KEPT: usize = 900;

/// The figures of one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the node started.
    pub t_s: f64,
    /// Reads answered so far (a counter: the page draws its rate).
    pub reads: u64,
    /// Writes proposed so far (a counter).
    pub writes: u64,
    /// WAITs received so far (a counter).
    pub waits: u64,
    /// WAITs and future-rev reads waiting now.
    pub waits_pending: u64,
    /// Client connections open now.
    pub clients: u64,
    /// The store's head rev.
    pub rev: i64,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
}

/// A bounded ring of [`Sample`]s, each numbered (`seq`, from 0 at start)
/// so a page asks only for the ones it has not seen.
#[derive(Debug, Default)]
pub struct Samples {
    ring: VecDeque<Sample>,
    /// The seq of the next sample pushed.
    next_seq: u64,
}

impl Samples {
    /// Adds `s`, forgetting the oldest beyond [`SAMPLES_KEPT`].
    pub fn push(&mut self, s: Sample) {
        if self.ring.len() == SAMPLES_KEPT {
            self.ring.pop_front();
        }
        self.ring.push_back(s);
        self.next_seq += 1;
    }

    /// How many are kept now.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether none was taken yet.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// The samples after seq `after` (all of them without it, or when
    /// `after` is not a seq this ring can continue from: older than the
    /// ring, or ahead of it after a restart), as columns. `seq` in the
    /// answer is the seq of the first sample given: a page that asked
    /// with `after` appends when `seq == after + 1`, else starts over.
    pub fn json(&self, after: Option<u64>) -> serde_json::Value {
        let first_seq = self.next_seq - self.ring.len() as u64;
        let skip = match after {
            Some(a) if a >= first_seq && a < self.next_seq => (a + 1 - first_seq) as usize,
            _ => 0,
        };
        let col = |f: fn(&Sample) -> serde_json::Value| -> Vec<serde_json::Value> {
            self.ring.iter().skip(skip).map(f).collect()
        };
        json!({
            "interval_s": SAMPLE_INTERVAL.as_secs_f64(),
            "kept": SAMPLES_KEPT,
            "seq": first_seq + skip as u64,
            "next": self.next_seq,
            "t": col(|s| json!((s.t_s * 1000.0).round() / 1000.0)),
            "reads": col(|s| json!(s.reads)),
            "writes": col(|s| json!(s.writes)),
            "waits": col(|s| json!(s.waits)),
            "waits_pending": col(|s| json!(s.waits_pending)),
            "clients": col(|s| json!(s.clients)),
            "rev": col(|s| json!(s.rev)),
            "rss_bytes": col(|s| json!(s.rss_bytes)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: u64) -> Sample {
        Sample {
            t_s: i as f64,
            reads: i * 10,
            writes: i,
            rev: i as i64,
            ..Sample::default()
        }
    }

    #[test]
    fn the_ring_keeps_the_last_fifteen_minutes() {
        let mut s = Samples::default();
        assert!(s.is_empty());
        for i in 0..1000 {
            s.push(sample(i));
        }
        assert_eq!(s.len(), SAMPLES_KEPT);
        let j = s.json(None);
        assert_eq!(j["seq"], 100);
        assert_eq!(j["next"], 1000);
        assert_eq!(j["t"].as_array().unwrap().len(), SAMPLES_KEPT);
        assert_eq!(j["writes"][0], 100);
        assert_eq!(j["reads"][899], 9990);
    }

    #[test]
    fn after_gives_only_newer_samples_or_starts_over() {
        let mut s = Samples::default();
        for i in 0..10 {
            s.push(sample(i));
        }
        let j = s.json(Some(7));
        assert_eq!(
            (j["seq"].clone(), j["rev"].clone()),
            (json!(8), json!([8, 9]))
        );
        // Up to date: nothing, and seq says where the next one goes.
        let j = s.json(Some(9));
        assert_eq!((j["seq"].clone(), j["rev"].clone()), (json!(10), json!([])));
        // Ahead (the node restarted) or unknown: everything, from seq 0.
        for after in [Some(50), Some(u64::MAX), None] {
            let j = s.json(after);
            assert_eq!(j["seq"], 0, "{after:?}");
            assert_eq!(j["rev"].as_array().unwrap().len(), 10, "{after:?}");
        }
        // Older than the ring: everything it has.
        for i in 10..1000 {
            s.push(sample(i));
        }
        let j = s.json(Some(3));
        assert_eq!(j["seq"], 100);
    }
}
