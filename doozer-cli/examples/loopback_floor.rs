//! The machine's floor for one request and its answer: a 40-byte TCP
//! ping-pong over 127.0.0.1 between two threads, no doozer involved.
//! `doozer bench -c 1` latencies are only meaningful next to this figure
//! (docs/benchmarks.md): on a VM whose wakeups are slow, the floor alone
//! can exceed a latency target.
//!
//! Run: `cargo run --release -p doozer-cli --example loopback_floor`

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

const ROUND_TRIPS: usize = 20_000;
const MSG: usize = 40;

fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; MSG];
        while s.read_exact(&mut buf).is_ok() {
            s.write_all(&buf)?;
        }
        Ok(())
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut buf = [0u8; MSG];
    let mut micros = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
        micros.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(s);
    echo.join().expect("echo thread")?;
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() as f64 * q) as usize).min(micros.len() - 1)];
    println!(
        "loopback TCP round trip over {ROUND_TRIPS}: p50 {:.1} µs  p90 {:.1} µs  p99 {:.1} µs",
        at(0.50),
        at(0.90),
        at(0.99)
    );
    Ok(())
}
