//! Latency histograms for the bench: the `hdrhistogram` crate (a port of
//! Gil Tene's HdrHistogram), 3 significant digits, values in microseconds
//! up to an hour (larger ones count as an hour), behind the few calls the
//! bench makes.

/// The largest value kept apart: one hour in microseconds.
const HIGHEST: u64 = 3_600_000_000;
/// Significant decimal digits kept (relative error ≤ 0.1 %).
const SIGFIG: u8 = 3;

/// Counts of recorded values (microseconds in practice).
#[derive(Clone)]
pub struct Histogram(hdrhistogram::Histogram<u64>);

impl Default for Histogram {
    fn default() -> Self {
        // Fixed, valid bounds: construction cannot fail.
        Histogram(
            hdrhistogram::Histogram::new_with_max(HIGHEST, SIGFIG).expect("valid histogram bounds"),
        )
    }
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, v: u64) {
        self.0.saturating_record(v);
    }

    /// Adds all values of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// Largest value recorded (to the histogram's precision).
    pub fn max(&self) -> u64 {
        self.0.max()
    }

    /// The value at quantile `q` (0..=1); 0 if empty.
    pub fn quantile(&self, q: f64) -> u64 {
        self.0.value_at_quantile(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_fraction_of_a_percent() {
        let mut h = Histogram::default();
        for v in 1..=10_000 {
            h.record(v);
        }
        let close = |got: u64, want: f64| (got as f64 - want).abs() / want < 0.002;
        for (q, want) in [
            (0.5, 5000.0),
            (0.9, 9000.0),
            (0.99, 9900.0),
            (1.0, 10_000.0),
        ] {
            assert!(close(h.quantile(q), want), "q{q}: {}", h.quantile(q));
        }
        assert!(close(h.max(), 10_000.0), "{}", h.max());
        let mut other = Histogram::default();
        other.record(1_000_000);
        other.record(u64::MAX); // counts as an hour
        h.merge(&other);
        assert_eq!(h.count(), 10_002);
        assert!(h.max() >= HIGHEST, "{}", h.max());
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }
}
