//! Go duration strings, as taken by `time.ParseDuration`: a sequence of
//! decimal numbers with units, like `300ms`, `1.5h`, `2h45m`, `1m30s`.
//! Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`. A bare `0` is zero.
//! Negative durations are refused (they mean nothing for a timeout).
//!
//! ```
//! use std::time::Duration;
//! assert_eq!(doozer::duration::parse("1m30s").unwrap(), Duration::from_secs(90));
//! assert_eq!(doozer::duration::parse("1.5s").unwrap(), Duration::from_millis(1500));
//! ```

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?} (want e.g. 500ms, 10s, 1m30s, 2h)")]
pub struct DurationError(pub String);

/// Parses a Go duration string.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(s.to_string());
    let rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() || rest.starts_with('-') {
        return Err(err());
    }
    let mut total: u128 = 0; // nanoseconds
    let mut rest = rest;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?; // a number without a unit
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(err()),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(err());
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| err())?
        };
        let mut part = int.checked_mul(unit_ns).ok_or_else(err)?;
        // Fraction: exact in nanoseconds up to the digits that matter.
        let mut scale = unit_ns;
        for d in frac.bytes() {
            scale /= 10;
            part = part
                .checked_add(u128::from(d - b'0') * scale)
                .ok_or_else(err)?;
        }
        total = total.checked_add(part).ok_or_else(err)?;
        rest = tail;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| err())?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_examples() {
        let ms = Duration::from_millis;
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("500ms").unwrap(), ms(500));
        assert_eq!(parse("1m30s").unwrap(), ms(90_000));
        assert_eq!(parse("2h").unwrap(), ms(7_200_000));
        assert_eq!(parse("1.5s").unwrap(), ms(1500));
        assert_eq!(parse(".5s").unwrap(), ms(500));
        assert_eq!(parse("1.s").unwrap(), ms(1000));
        assert_eq!(parse("2h45m").unwrap(), ms((2 * 60 + 45) * 60_000));
        assert_eq!(parse("10us").unwrap(), Duration::from_micros(10));
        assert_eq!(parse("10µs").unwrap(), Duration::from_micros(10));
        assert_eq!(parse("7ns").unwrap(), Duration::from_nanos(7));
        assert_eq!(parse("+3s").unwrap(), ms(3000));
        assert_eq!(parse("1h0m0.25s").unwrap(), ms(3_600_250));
    }

    #[test]
    fn bad_durations() {
        for s in [
            "",
            "10",
            "s",
            "1x",
            "-1s",
            "1.2.3s",
            ".s",
            "1 s",
            "1s ",
            "1sm",
            "99999999999999999999h",
            // Found with the `uri` fuzz target: the fraction overflowed.
            "94522879700260684295381835.9h",
        ] {
            assert!(parse(s).is_err(), "{s:?} should be refused");
        }
    }
}
