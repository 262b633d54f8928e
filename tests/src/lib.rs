//! End-to-end test harness: real `doozerd` and `doozer` processes on
//! 127.0.0.1.
//!
//! Map of the crate:
//! - [`Doozerd`] / [`DoozerdBuilder`]: start a daemon on a free port, wait
//!   until it answers, kill it (SIGKILL) when dropped.
//! - [`doozer`], [`doozer_with`]: run the real `doozer` command to
//!   completion and capture its output ([`CmdOutput`]).
//! - [`Spawned`]: a long-running child (e.g. `doozer watch`) whose output is
//!   read while it runs; killed when dropped.
//! - [`RawConn`]: a raw TCP (or TLS) connection speaking length-prefixed
//!   protobuf frames (or arbitrary bytes) to a node.
//! - [`TlsFiles`]: a node's PEM files; a node started with them
//!   ([`DoozerdBuilder::tls`]) is talked to over TLS by every helper.
//! - [`poll_until`]: wait for a condition with a deadline, never a fixed
//!   sleep.
//! - [`browser`]: headless chromium through chromedriver (WebDriver over a
//!   small HTTP/1.1 client), and that client for raw requests to `-w`.
//! - [`prometheus`]: a strict parser of the Prometheus text format.
//! - [`cluster`]: clusters of several nodes (seed, slaves, operator-made
//!   CAL slots), SIGSTOP/SIGCONT, store comparison at one rev, and a
//!   recorded client workload for [`history`].
//!
//! The binaries are looked up next to the test executable
//! (`<target>/debug/`); run `cargo build --workspace` before the tests.

pub mod browser;
pub mod cluster;
pub mod history;
pub mod prometheus;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use prost::Message;

pub use doozer_proto::{ErrCode, Request, Response, Verb};

/// How long to wait for anything that should happen "soon" (a node
/// starting, a response, a change being reported).
pub const DEADLINE: Duration = Duration::from_secs(10);

/// How long a command that should finish is allowed to run before it is
/// killed and the test fails.
pub const CMD_DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Binaries and temporary directories
// ---------------------------------------------------------------------------

/// The directory holding the workspace binaries: the parent of the
/// `deps/` directory the test executable runs from.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("test executable has a parent")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn find_bin(name: &str) -> PathBuf {
    let path = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "binary `{name}` not found at {}: run `cargo build --workspace` first",
            path.display()
        );
    }
    path
}

/// Path of the `doozerd` binary.
pub fn doozerd_bin() -> PathBuf {
    find_bin("doozerd")
}

/// Path of the `doozer` binary.
pub fn doozer_bin() -> PathBuf {
    find_bin("doozer")
}

/// A directory under the system temp dir, removed (with its contents) when
/// dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, uniquely named directory.
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!(
            "doozer-tests-{prefix}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// Ports and polling
// ---------------------------------------------------------------------------

/// A port on 127.0.0.1 that is free for both TCP and UDP right now (it is
/// released before returning, so a race with other processes is possible;
/// [`DoozerdBuilder::start`] retries on "address in use").
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = tcp.local_addr().expect("local_addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP after 100 tries");
}

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
// doozerd
// ---------------------------------------------------------------------------

/// Builds and starts a [`Doozerd`].
#[derive(Debug, Clone, Default)]
pub struct DoozerdBuilder {
    args: Vec<String>,
    tls: Option<TlsFiles>,
    env: Vec<(String, String)>,
    port: Option<u16>,
    web: Option<String>,
}

impl DoozerdBuilder {
    /// Appends command-line arguments (after `-l` and `-w`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable of the daemon.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Listens on this port instead of a fresh free one (e.g. to restart a
    /// node on the same address).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Serves TLS with these files (`-tlscert`, `-tlskey`, `-tlsca`); the
    /// node's [`Doozerd::raw`] connections and [`Doozerd::uri`] use TLS.
    pub fn tls(mut self, files: &TlsFiles) -> Self {
        self.tls = Some(files.clone());
        self
    }

    /// Passes this `-w` value instead of `false`.
    pub fn web(mut self, addr: &str) -> Self {
        self.web = Some(addr.into());
        self
    }

    /// Starts the daemon and waits (up to [`DEADLINE`]) until it answers a
    /// REV request. Panics, printing the daemon's output, if it does not.
    pub fn start(self) -> Doozerd {
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = self.port.unwrap_or_else(free_port);
            match self.try_start(port) {
                Ok(d) => return d,
                Err(e) => {
                    // Another process may have taken the port between
                    // free_port() and the daemon's bind: retry elsewhere.
                    let in_use = e.to_lowercase().contains("in use");
                    last_err = e;
                    if !in_use || self.port.is_some() {
                        break;
                    }
                }
            }
        }
        panic!("doozerd did not start: {last_err}");
    }

    /// Starts every daemon of `builders` before waiting for any (so they
    /// run at once, as nodes booting together through a name service
    /// do), then waits until each answers. Panics if one does not; the
    /// others are killed as they are dropped.
    pub fn start_all(builders: Vec<DoozerdBuilder>) -> Vec<Doozerd> {
        let mut nodes = Vec::new();
        for b in &builders {
            let port = b.port.unwrap_or_else(free_port);
            nodes.push(b.spawn(port).unwrap_or_else(|e| panic!("{e}")));
        }
        for n in &mut nodes {
            if let Err(e) = n.wait_ready() {
                panic!("doozerd did not start: {e}");
            }
        }
        nodes
    }

    fn try_start(&self, port: u16) -> Result<Doozerd, String> {
        let mut node = self.spawn(port)?;
        node.wait_ready()?;
        Ok(node)
    }

    fn spawn(&self, port: u16) -> Result<Doozerd, String> {
        let dir = TempDir::new("doozerd");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let stdout_path = dir.path().join("stdout");
        let stderr_path = dir.path().join("stderr");
        let stdout = std::fs::File::create(&stdout_path).expect("create stdout file");
        let stderr = std::fs::File::create(&stderr_path).expect("create stderr file");
        let mut cmd = Command::new(doozerd_bin());
        cmd.arg("-l")
            .arg(addr.to_string())
            .arg("-w")
            .arg(self.web.as_deref().unwrap_or("false"))
            .args(&self.args)
            .args(self.tls.iter().flat_map(|t| {
                [
                    "-tlscert".as_ref(),
                    t.cert.as_os_str(),
                    "-tlskey".as_ref(),
                    t.key.as_os_str(),
                    "-tlsca".as_ref(),
                    t.ca.as_os_str(),
                ]
            }))
            .env_remove("DOOZER_RWSECRET")
            .env_remove("DOOZER_ROSECRET")
            .env_remove("DOOZER_BOOT_URI")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| format!("spawn doozerd: {e}"))?;
        Ok(Doozerd {
            child,
            addr,
            dir,
            stdout_path,
            stderr_path,
            exited: None,
            tls: self.tls.as_ref().map(|t| (t.clone(), t.client())),
        })
    }
}

/// A running `doozerd` on 127.0.0.1. Killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Doozerd {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    exited: Option<ExitStatus>,
    /// The node's TLS files and a client trusting their CA, when it
    /// serves TLS.
    tls: Option<(TlsFiles, doozer::TlsClient)>,
}

impl Doozerd {
    /// A builder for a node with custom flags or environment.
    pub fn builder() -> DoozerdBuilder {
        DoozerdBuilder::default()
    }

    /// Starts `doozerd -l 127.0.0.1:PORT -w false ARGS...`.
    pub fn start(args: &[&str]) -> Doozerd {
        Doozerd::builder().args(args.iter().copied()).start()
    }

    /// Waits (up to [`DEADLINE`]) until the daemon answers a REV request;
    /// an error (with its output) if it exits or does not answer.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.try_wait() {
                return Err(format!(
                    "doozerd exited during start-up with {status}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.stdout(),
                    self.stderr()
                ));
            }
            if self.answers_rev() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "doozerd on {} did not answer REV within {DEADLINE:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.addr,
                    self.stdout(),
                    self.stderr()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The client (and peer) address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port of [`Doozerd::addr`].
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `doozer:?ca=127.0.0.1:PORT`, with `&tlsca=CA` when the node serves
    /// TLS.
    pub fn uri(&self) -> String {
        match &self.tls {
            None => format!("doozer:?ca={}", self.addr),
            Some((t, _)) => format!("doozer:?ca={}&tlsca={}", self.addr, t.ca.display()),
        }
    }

    /// The TLS files the node serves with, if any.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref().map(|(t, _)| t)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A scratch directory that lives as long as this node.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the daemon wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Asserts the process has not exited (e.g. after feeding it bad input),
    /// printing its stderr if it has.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.try_wait() {
            panic!(
                "doozerd exited with {status}\n--- stderr ---\n{}",
                self.stderr()
            );
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// Opens a raw protocol connection (TLS if the node serves it).
    pub fn raw(&self) -> RawConn {
        match &self.tls {
            None => RawConn::connect(self.addr),
            Some((_, client)) => RawConn::connect_tls(self.addr, client),
        }
    }

    /// Whether a REV request gets a response (of any kind) right now.
    fn answers_rev(&self) -> bool {
        let Ok(stream) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)) else {
            return false;
        };
        let stream = match &self.tls {
            None => doozer::Stream::Plain(stream),
            Some((_, client)) => match client.handshake(&self.addr.to_string(), stream) {
                Ok(s) => doozer::Stream::Tls(Box::new(s)),
                Err(_) => return false,
            },
        };
        let mut conn = RawConn::from_any(stream);
        conn.send(&Request {
            tag: Some(0),
            verb: Some(Verb::Rev as i32),
            ..Default::default()
        });
        conn.recv_timeout(Duration::from_secs(2)).is_some()
    }
}

impl Drop for Doozerd {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "--- doozerd {} stderr ---\n{}\n--- end ---",
                self.addr,
                self.stderr()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

/// A node's TLS files (PEM), as `-tlscert`, `-tlskey` and `-tlsca` take
/// them; `ca` is also what clients pass as `tlsca=`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The node's certificate (chain).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA certificate the node's certificate is signed by.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// A client library TLS setting trusting [`TlsFiles::ca`].
    pub fn client(&self) -> doozer::TlsClient {
        doozer::TlsClient::from_ca_file(&self.ca)
            .unwrap_or_else(|e| panic!("CA {}: {e}", self.ca.display()))
    }
}

// ---------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------

/// What a finished command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdOutput {
    /// Raw stdout bytes.
    pub stdout: Vec<u8>,
    /// Stderr as (lossy) text.
    pub stderr: String,
    /// Exit code; -1 if killed by a signal.
    pub code: i32,
}

impl CmdOutput {
    /// Stdout as (lossy) text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panics, showing everything, unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "unexpected exit code; stdout={:?} stderr={:?}",
            self.out(),
            self.stderr
        );
        self
    }

    /// Panics unless the command succeeded; returns stdout as text.
    pub fn ok(&self) -> String {
        self.expect_code(0);
        self.out()
    }
}

/// Runs `program args...` with `env` added (and `remove` removed), feeding
/// `stdin`, and waits up to [`CMD_DEADLINE`] for it to finish (killing it
/// and panicking otherwise).
pub fn run_command(
    program: &Path,
    args: &[&str],
    stdin: &[u8],
    env: &[(&str, &str)],
    remove: &[&str],
) -> CmdOutput {
    run_command_timeout(program, args, stdin, env, remove, CMD_DEADLINE).unwrap_or_else(|| {
        panic!(
            "{} {:?} did not finish within {CMD_DEADLINE:?}",
            program.display(),
            args
        )
    })
}

/// Like [`run_command`], but returns `None` (after killing the process) if
/// it runs longer than `timeout`.
pub fn run_command_timeout(
    program: &Path,
    args: &[&str],
    stdin: &[u8],
    env: &[(&str, &str)],
    remove: &[&str],
    timeout: Duration,
) -> Option<CmdOutput> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for k in remove {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    let mut child_stdin = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    let writer = thread::spawn(move || {
        // The program may exit without reading; ignore EPIPE.
        let _ = child_stdin.write_all(&input);
    });
    let out_reader = read_all_in_thread(child.stdout.take().expect("stdout"));
    let err_reader = read_all_in_thread(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(e) => panic!("wait: {e}"),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    let stdout = out_reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    let status = status?;
    Some(CmdOutput {
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        code: status.code().unwrap_or(-1),
    })
}

fn read_all_in_thread<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

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

/// Runs `doozerd ARGS...` expecting it to exit by itself (bad flags, `-v`)
/// within [`CMD_DEADLINE`]; panics (after killing it) if it keeps running.
pub fn doozerd_run(args: &[&str]) -> CmdOutput {
    doozerd_run_env(args, &[])
}

/// [`doozerd_run`] with extra environment variables.
pub fn doozerd_run_env(args: &[&str], env: &[(&str, &str)]) -> CmdOutput {
    run_command_timeout(
        &doozerd_bin(),
        args,
        b"",
        env,
        &["DOOZER_RWSECRET", "DOOZER_ROSECRET", "DOOZER_BOOT_URI"],
        CMD_DEADLINE,
    )
    .unwrap_or_else(|| panic!("doozerd {args:?} kept running; it should have exited"))
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

// ---------------------------------------------------------------------------
// Raw protocol connection
// ---------------------------------------------------------------------------

/// A raw TCP connection to a node: sends frames or arbitrary bytes and
/// reads length-prefixed [`Response`]s.
#[derive(Debug)]
pub struct RawConn {
    stream: doozer::Stream,
    buf: BytesMut,
    /// Responses read while looking for another tag.
    pending: HashMap<i32, Response>,
    next_tag: i32,
}

/// What reading from a [`RawConn`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Recv {
    /// A complete, decodable response.
    Response(Response),
    /// The peer closed the connection (EOF or reset).
    Closed,
    /// Nothing complete arrived before the timeout.
    Timeout,
    /// A complete frame that does not decode as a Response.
    Garbage(Bytes),
}

impl RawConn {
    /// Connects to `addr` (panics if the connection is refused).
    pub fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        RawConn::from_stream(stream)
    }

    /// Connects to `addr` over TLS, trusting `client`'s CA (panics if the
    /// connection or the handshake fails).
    pub fn connect_tls(addr: SocketAddr, client: &doozer::TlsClient) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let stream = client
            .handshake(&addr.to_string(), stream)
            .unwrap_or_else(|e| panic!("TLS to {addr}: {e}"));
        RawConn::from_any(doozer::Stream::Tls(Box::new(stream)))
    }

    /// Wraps a connected stream.
    pub fn from_stream(stream: TcpStream) -> RawConn {
        RawConn::from_any(doozer::Stream::Plain(stream))
    }

    /// Wraps a connected plain or TLS stream.
    pub fn from_any(stream: doozer::Stream) -> RawConn {
        let _ = stream.socket().set_nodelay(true);
        RawConn {
            stream,
            buf: BytesMut::new(),
            pending: HashMap::new(),
            next_tag: 1000,
        }
    }

    /// Sends one request as a frame.
    pub fn send(&mut self, req: &Request) {
        let mut out = BytesMut::new();
        doozer_proto::encode_frame(req, &mut out);
        self.send_bytes(&out);
    }

    /// Sends `body` framed with its length (the body need not be a valid
    /// protobuf).
    pub fn send_frame_body(&mut self, body: &[u8]) {
        let mut out = Vec::with_capacity(4 + body.len());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
        self.send_bytes(&out);
    }

    /// Writes raw bytes. Errors (the server closed on us) are ignored; a
    /// later read reports [`Recv::Closed`].
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
        let _ = self.stream.flush();
    }

    /// Shuts down the sending half.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads the next frame (up to `timeout`).
    pub fn recv_any(&mut self, timeout: Duration) -> Recv {
        let deadline = Instant::now() + timeout;
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                    as usize;
                if self.buf.len() >= 4 + len {
                    let _ = self.buf.split_to(4);
                    let body = self.buf.split_to(len).freeze();
                    return match Response::decode(body.clone()) {
                        Ok(r) => Recv::Response(r),
                        Err(_) => Recv::Garbage(body),
                    };
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Recv::Timeout;
            }
            let _ = self
                .stream
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Recv::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Recv::Timeout
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Recv::Closed,
            }
        }
    }

    /// The next response, or `None` on timeout or close.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Response> {
        match self.recv_any(timeout) {
            Recv::Response(r) => Some(r),
            _ => None,
        }
    }

    /// The next response (any tag), panicking after [`DEADLINE`].
    pub fn recv(&mut self) -> Response {
        match self.recv_any(DEADLINE) {
            Recv::Response(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// The response with `tag`, keeping others for later; panics after
    /// [`DEADLINE`].
    pub fn recv_tag(&mut self, tag: i32) -> Response {
        if let Some(r) = self.pending.remove(&tag) {
            return r;
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let now = Instant::now();
            if now >= deadline {
                panic!("no response with tag {tag} within {DEADLINE:?}");
            }
            match self.recv_any(deadline - now) {
                Recv::Response(r) if r.tag == Some(tag) => return r,
                Recv::Response(r) => {
                    self.pending.insert(r.tag.unwrap_or(0), r);
                }
                other => panic!("waiting for tag {tag}: {other:?}"),
            }
        }
    }

    /// Whether a response with `tag` was already received and is held back.
    pub fn has_pending(&self, tag: i32) -> bool {
        self.pending.contains_key(&tag)
    }

    /// A fresh tag, distinct from earlier ones on this connection.
    pub fn tag(&mut self) -> i32 {
        self.next_tag += 1;
        self.next_tag
    }

    /// Sends `req` with a fresh tag and waits for its response.
    pub fn call(&mut self, mut req: Request) -> Response {
        let tag = self.tag();
        req.tag = Some(tag);
        self.send(&req);
        let r = self.recv_tag(tag);
        assert_eq!(r.tag, Some(tag));
        r
    }

    // -- one helper per verb -------------------------------------------------

    /// GET `path` (at `rev` if given).
    pub fn get(&mut self, path: &str, rev: Option<i64>) -> Response {
        self.call(req(Verb::Get).path(path).rev_opt(rev))
    }

    /// SET `path` to `value` if `rev` ≥ the file's rev.
    pub fn set(&mut self, path: &str, rev: i64, value: &[u8]) -> Response {
        self.call(req(Verb::Set).path(path).rev(rev).value(value))
    }

    /// DEL `path` if `rev` ≥ the file's rev.
    pub fn del(&mut self, path: &str, rev: i64) -> Response {
        self.call(req(Verb::Del).path(path).rev(rev))
    }

    /// REV; panics unless it succeeds; returns the rev.
    pub fn rev(&mut self) -> i64 {
        let r = self.call(req(Verb::Rev));
        assert_eq!(r.err_code, None, "REV failed: {r:?}");
        r.rev.expect("REV response has a rev")
    }

    /// WAIT for `glob` from `rev`.
    pub fn wait(&mut self, glob: &str, rev: i64) -> Response {
        self.call(req(Verb::Wait).path(glob).rev(rev))
    }

    /// NOP.
    pub fn nop(&mut self) -> Response {
        self.call(req(Verb::Nop))
    }

    /// WALK `glob` at `offset` (and `rev` if given).
    pub fn walk(&mut self, glob: &str, offset: i32, rev: Option<i64>) -> Response {
        self.call(req(Verb::Walk).path(glob).offset(offset).rev_opt(rev))
    }

    /// GETDIR `path` at `offset` (and `rev` if given).
    pub fn getdir(&mut self, path: &str, offset: i32, rev: Option<i64>) -> Response {
        self.call(req(Verb::Getdir).path(path).offset(offset).rev_opt(rev))
    }

    /// STAT `path` (at `rev` if given).
    pub fn stat(&mut self, path: &str, rev: Option<i64>) -> Response {
        self.call(req(Verb::Stat).path(path).rev_opt(rev))
    }

    /// SELF.
    pub fn self_id(&mut self) -> Response {
        self.call(req(Verb::Self_))
    }

    /// ACCESS with `secret`.
    pub fn access(&mut self, secret: &[u8]) -> Response {
        self.call(req(Verb::Access).value(secret))
    }

    /// SET that must succeed; returns the new rev.
    pub fn must_set(&mut self, path: &str, rev: i64, value: &[u8]) -> i64 {
        let r = self.set(path, rev, value);
        assert_eq!(r.err_code, None, "SET {path} failed: {r:?}");
        r.rev.expect("SET response has a rev")
    }

    /// GET that must succeed; returns `(value, rev)`.
    pub fn must_get(&mut self, path: &str) -> (Vec<u8>, i64) {
        let r = self.get(path, None);
        assert_eq!(r.err_code, None, "GET {path} failed: {r:?}");
        (
            r.value.map(|v| v.to_vec()).unwrap_or_default(),
            r.rev.unwrap_or(0),
        )
    }

    /// Every file matching `glob` at `rev`, via WALK with increasing
    /// offsets until `RANGE`: `(path, rev, value)`.
    pub fn walk_all(&mut self, glob: &str, rev: Option<i64>) -> Vec<(String, i64, Vec<u8>)> {
        let mut out = Vec::new();
        for offset in 0.. {
            let r = self.walk(glob, offset, rev);
            if r.err_code == Some(ErrCode::Range as i32) {
                return out;
            }
            assert_eq!(r.err_code, None, "WALK {glob} {offset}: {r:?}");
            out.push((
                r.path.unwrap_or_default(),
                r.rev.unwrap_or(0),
                r.value.map(|v| v.to_vec()).unwrap_or_default(),
            ));
            assert!(offset < 100_000, "WALK never ended");
        }
        unreachable!()
    }

    /// Every file in the store except the per-node files under
    /// `/ctl/node/` (which a node may rewrite by itself, e.g. its applied
    /// rev every `-pulse`): compare two of these to show that a request
    /// changed nothing, including `/ctl/err`.
    pub fn user_visible_state(&mut self) -> Vec<(String, i64, Vec<u8>)> {
        self.walk_all("/**", None)
            .into_iter()
            .filter(|(p, _, _)| !p.starts_with("/ctl/node/"))
            .collect()
    }

    /// Every entry of directory `path`, via GETDIR until `RANGE`.
    pub fn getdir_all(&mut self, path: &str, rev: Option<i64>) -> Vec<String> {
        let mut out = Vec::new();
        for offset in 0.. {
            let r = self.getdir(path, offset, rev);
            if r.err_code == Some(ErrCode::Range as i32) {
                return out;
            }
            assert_eq!(r.err_code, None, "GETDIR {path} {offset}: {r:?}");
            out.push(r.path.unwrap_or_default());
            assert!(offset < 100_000, "GETDIR never ended");
        }
        unreachable!()
    }
}

/// A request with `verb` and nothing else; add fields with the
/// [`RequestExt`] builder methods.
pub fn req(verb: Verb) -> Request {
    Request {
        verb: Some(verb as i32),
        ..Default::default()
    }
}

/// Builder-style setters for [`Request`].
pub trait RequestExt {
    /// Sets the path.
    fn path(self, p: &str) -> Self;
    /// Sets the rev.
    fn rev(self, r: i64) -> Self;
    /// Sets the rev if `Some`.
    fn rev_opt(self, r: Option<i64>) -> Self;
    /// Sets the value.
    fn value(self, v: &[u8]) -> Self;
    /// Sets the offset.
    fn offset(self, o: i32) -> Self;
    /// Sets the tag.
    fn tag(self, t: i32) -> Self;
}

impl RequestExt for Request {
    fn path(mut self, p: &str) -> Self {
        self.path = Some(p.into());
        self
    }
    fn rev(mut self, r: i64) -> Self {
        self.rev = Some(r);
        self
    }
    fn rev_opt(mut self, r: Option<i64>) -> Self {
        self.rev = r;
        self
    }
    fn value(mut self, v: &[u8]) -> Self {
        self.value = Some(Bytes::copy_from_slice(v));
        self
    }
    fn offset(mut self, o: i32) -> Self {
        self.offset = Some(o);
        self
    }
    fn tag(mut self, t: i32) -> Self {
        self.tag = Some(t);
        self
    }
}

/// The error code of a response as an [`ErrCode`] (`None` on success;
/// panics on a code that is not in the protocol).
pub fn err_of(r: &Response) -> Option<ErrCode> {
    r.err_code
        .map(|c| ErrCode::try_from(c).unwrap_or_else(|_| panic!("unknown err_code {c} in {r:?}")))
}

/// Panics unless `r` is an error with `code`.
pub fn assert_err(r: &Response, code: ErrCode) {
    assert_eq!(err_of(r), Some(code), "expected {code:?}, got {r:?}");
}

/// Panics unless `r` has no error.
pub fn assert_ok(r: &Response) {
    assert_eq!(err_of(r), None, "expected success, got {r:?}");
}

/// The value of a response as bytes (empty if absent).
pub fn value_of(r: &Response) -> Vec<u8> {
    r.value.as_ref().map(|v| v.to_vec()).unwrap_or_default()
}

/// A tiny deterministic PRNG (xorshift64*), so fuzz-style tests are
/// reproducible from a seed without extra dependencies.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (0 is remapped).
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}
