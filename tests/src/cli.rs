//! The real `doozer` command: run to completion ([`doozer()`],
//! [`doozer_with`]) or kept running while its output is read
//! ([`Spawned`]), and its `wait`/`watch` records ([`parse_records`]).

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::command::read_all_in_thread;
use crate::{doozer_bin, run_command, CmdOutput, Doozerd};

/// Environment variables of the `doozer` command that the tests control;
/// they are removed from the inherited environment of every run.
const DOOZER_ENV: &[&str] = &["DOOZER_URI", "DOOZER_BOOT_URI"];

/// Runs the real `doozer` CLI against `node` (`DOOZER_URI` = its URI).
pub fn doozer(node: &Doozerd, args: &[&str], stdin: &[u8]) -> CmdOutput {
    let uri = node.uri();
    doozer_with(&[("DOOZER_URI", uri.as_str())], args, stdin)
}

/// Runs the real `doozer` CLI with exactly the given doozer environment
/// (e.g. a custom `DOOZER_URI`).
pub fn doozer_with(env: &[(&str, &str)], args: &[&str], stdin: &[u8]) -> CmdOutput {
    run_command(&doozer_bin(), args, stdin, env, DOOZER_ENV)
}

/// A long-running child process whose stdout is collected while it runs.
/// Killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    out_rx: mpsc::Receiver<Vec<u8>>,
    stdout: Vec<u8>,
    err_reader: Option<thread::JoinHandle<Vec<u8>>>,
}

impl Spawned {
    /// Spawns `doozer ARGS...` against `node`.
    pub fn doozer(node: &Doozerd, args: &[&str]) -> Spawned {
        let mut cmd = Command::new(doozer_bin());
        for k in DOOZER_ENV {
            cmd.env_remove(k);
        }
        cmd.env("DOOZER_URI", node.uri())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn doozer");
        let mut out = child.stdout.take().expect("stdout");
        let (tx, out_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let err_reader = Some(read_all_in_thread(child.stderr.take().expect("stderr")));
        Spawned {
            child,
            out_rx,
            stdout: Vec::new(),
            err_reader,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything read from stdout so far (after draining what arrived).
    pub fn stdout_now(&mut self) -> &[u8] {
        while let Ok(chunk) = self.out_rx.try_recv() {
            self.stdout.extend_from_slice(&chunk);
        }
        &self.stdout
    }

    /// Waits until stdout satisfies `pred` (up to `timeout`), returning a
    /// copy of stdout then. Panics with what was read otherwise.
    pub fn wait_stdout(&mut self, timeout: Duration, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        loop {
            self.stdout_now();
            if pred(&self.stdout) {
                return self.stdout.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "timed out after {timeout:?}; stdout so far: {:?}",
                    String::from_utf8_lossy(&self.stdout)
                );
            }
            if let Ok(chunk) = self.out_rx.recv_timeout(deadline - now) {
                self.stdout.extend_from_slice(&chunk);
            }
        }
    }

    /// Waits for the process to exit by itself (up to `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process and returns its stderr.
    pub fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.err_reader
            .take()
            .and_then(|h| h.join().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One record printed by `doozer wait`/`watch`: `(path, rev, kind, body)`,
/// kind being `set`, `del` or empty (a NOP).
pub type Record = (String, i64, String, Vec<u8>);

/// Parses `doozer wait`/`watch` output into [`Record`]s. Returns `None` if the bytes end in the middle
/// of a record or are malformed.
pub fn parse_records(mut out: &[u8]) -> Option<Vec<Record>> {
    let mut records = Vec::new();
    while !out.is_empty() {
        let nl = out.iter().position(|&b| b == b'\n')?;
        let header = std::str::from_utf8(&out[..nl]).ok()?;
        let parts: Vec<&str> = header.split(' ').collect();
        if parts.len() != 4 {
            return None;
        }
        let rev: i64 = parts[1].parse().ok()?;
        let len: usize = parts[3].parse().ok()?;
        let rest = &out[nl + 1..];
        if rest.len() < len + 1 {
            return None;
        }
        if rest[len] != b'\n' {
            return None;
        }
        records.push((
            parts[0].to_string(),
            rev,
            parts[2].to_string(),
            rest[..len].to_vec(),
        ));
        out = &rest[len + 1..];
    }
    Some(records)
}
