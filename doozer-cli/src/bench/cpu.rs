//! `-cpu WEB[,WEB...]`: the server CPU per operation of a get/set bench.
//! Each node's `process_cpu_seconds_total` is read from its web viewer's
//! `/$metrics` before and after the measured run (docs/reference.md#commands);
//! CPU time per operation hardly depends on what else a shared machine
//! runs, unlike operations per second.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::failure::Failure;

/// How long one `/$metrics` request may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a `/$metrics` answer read.
const MAX_ANSWER: u64 = 1 << 20;
/// The metric read.
const METRIC: &str = "process_cpu_seconds_total";

/// The web addresses of `-cpu`, split at commas; none may be empty.
pub(super) fn parse_addrs(list: &str) -> Result<Vec<String>, Failure> {
    let addrs: Vec<String> = list.split(',').map(|a| a.trim().to_string()).collect();
    if addrs.iter().any(String::is_empty) {
        return Err(Failure::Usage(format!(
            "bench: bad -cpu {list:?}: want web addresses (HOST:PORT) separated by commas"
        )));
    }
    Ok(addrs)
}

/// The CPU seconds each node of `addrs` has used so far.
pub(super) fn sample(addrs: &[String]) -> Result<Vec<f64>, Failure> {
    addrs.iter().map(|a| cpu_seconds(a)).collect()
}

/// The nodes' CPU per operation, in µs: the sum over the nodes of what
/// they used between `before` and `after`, over `ops`.
pub(super) fn per_op_us(before: &[f64], after: &[f64], ops: u64) -> Option<f64> {
    if ops == 0 {
        return None;
    }
    let used: f64 = after
        .iter()
        .zip(before)
        .map(|(a, b)| (a - b).max(0.0))
        .sum();
    Some(used / ops as f64 * 1e6)
}

fn cpu_seconds(addr: &str) -> Result<f64, Failure> {
    let fail = |why: String| Failure::Other(format!("bench: -cpu {addr}: {why}"));
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".into()))?;
    let mut s = TcpStream::connect_timeout(&sock, TIMEOUT).map_err(|e| fail(e.to_string()))?;
    s.set_read_timeout(Some(TIMEOUT))
        .and_then(|_| s.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| fail(e.to_string()))?;
    s.write_all(b"GET /$metrics HTTP/1.1\r\nHost: doozer\r\nConnection: close\r\n\r\n")
        .map_err(|e| fail(e.to_string()))?;
    let mut answer = String::new();
    s.take(MAX_ANSWER)
        .read_to_string(&mut answer)
        .map_err(|e| fail(e.to_string()))?;
    metric(&answer).ok_or_else(|| {
        fail(format!(
            "no {METRIC} in its /$metrics (a web viewer of doozerd?)"
        ))
    })
}

/// The value of [`METRIC`] in an HTTP answer holding a Prometheus text
/// exposition.
fn metric(answer: &str) -> Option<f64> {
    if !answer.starts_with("HTTP/1.1 200") {
        return None;
    }
    answer.lines().find_map(|l| {
        let rest = l.strip_prefix(METRIC)?.strip_prefix(' ')?;
        rest.trim().parse::<f64>().ok().filter(|v| v.is_finite())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_metric_and_refuses_anything_else() {
        let ok = "HTTP/1.1 200 OK\r\n\r\n# HELP process_cpu_seconds_total x\nprocess_cpu_seconds_total 1.25\n";
        assert_eq!(metric(ok), Some(1.25));
        assert_eq!(
            metric("HTTP/1.1 404 Not Found\r\n\r\nprocess_cpu_seconds_total 1\n"),
            None
        );
        assert_eq!(
            metric("HTTP/1.1 200 OK\r\n\r\nprocess_cpu_seconds_total_x 1\n"),
            None
        );
        assert_eq!(
            metric("HTTP/1.1 200 OK\r\n\r\nprocess_cpu_seconds_total NaN\n"),
            None
        );
    }

    #[test]
    fn per_op_sums_the_nodes() {
        assert_eq!(per_op_us(&[1.0, 2.0], &[1.5, 2.5], 1000), Some(1000.0));
        assert_eq!(per_op_us(&[1.0], &[2.0], 0), None);
        assert!(parse_addrs("a:1,,b:2").is_err());
        assert_eq!(parse_addrs("a:1, b:2").unwrap(), ["a:1", "b:2"]);
    }
}
