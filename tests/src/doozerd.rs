//! A `doozerd` process: [`DoozerdBuilder`] starts one on a free port and
//! waits until it answers; [`Doozerd`] is its handle (killed on drop).
//! [`doozerd_run`] runs one that should exit by itself (bad flags, `-v`).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{
    doozerd_bin, free_port_on, run_command_timeout, CmdOutput, RawConn, Request, TempDir, TlsFiles,
    Verb, CMD_DEADLINE, DEADLINE,
};

// ---------------------------------------------------------------------------

/// Builds and starts a [`Doozerd`].
#[derive(Debug, Clone, Default)]
pub struct DoozerdBuilder {
    args: Vec<String>,
    tls: Option<TlsFiles>,
    env: Vec<(String, String)>,
    port: Option<u16>,
    web: Option<String>,
    ip: Option<Ipv4Addr>,
    gid: Option<u32>,
    limits: Vec<(Limit, u64, u64)>,
    durable: bool,
}

/// A resource limit of the daemon's process ([`DoozerdBuilder::limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Open descriptors (`RLIMIT_NOFILE`).
    Files,
    /// Address space in bytes (`RLIMIT_AS`): an allocation past it fails,
    /// and the daemon aborts instead of taking the machine's memory.
    AddressSpace,
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

    /// Listens on this loopback address instead of 127.0.0.1 (any address
    /// of 127.0.0.0/8 is loopback on Linux), so that network faults can
    /// tell the node's datagrams from the others' ([`crate::nemesis`]).
    pub fn ip(mut self, ip: Ipv4Addr) -> Self {
        assert!(ip.is_loopback(), "{ip} is not a loopback address");
        self.ip = Some(ip);
        self
    }

    /// Runs the daemon with this group id (the tests run as root), so that
    /// firewall rules can match the TCP connections it opens by owner
    /// ([`crate::nemesis`]).
    pub fn gid(mut self, gid: u32) -> Self {
        self.gid = Some(gid);
        self
    }

    /// Starts the daemon with this soft and hard limit of `what` (set in
    /// the child between fork and exec).
    pub fn limit(mut self, what: Limit, soft: u64, hard: u64) -> Self {
        self.limits.push((what, soft, hard));
        self
    }

    /// Gives the node a data directory (`-d`, docs/storage.md) inside its
    /// scratch directory, which [`Doozerd::restart`] keeps.
    pub fn durable(mut self) -> Self {
        self.durable = true;
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
            let port = self.port.unwrap_or_else(|| free_port_on(self.listen_ip()));
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
            let port = b.port.unwrap_or_else(|| free_port_on(b.listen_ip()));
            nodes.push(b.spawn(port).unwrap_or_else(|e| panic!("{e}")));
        }
        for n in &mut nodes {
            if let Err(e) = n.wait_ready() {
                panic!("doozerd did not start: {e}");
            }
        }
        nodes
    }

    /// Starts the daemon on a free port without waiting for it to answer
    /// (a node whose start-up blocks, e.g. booting through a name service
    /// while the cluster cannot decide); [`Doozerd::wait_ready`] waits.
    pub fn spawn_unready(self) -> Doozerd {
        let port = self.port.unwrap_or_else(|| free_port_on(self.listen_ip()));
        self.spawn(port).unwrap_or_else(|e| panic!("{e}"))
    }

    fn listen_ip(&self) -> Ipv4Addr {
        self.ip.unwrap_or(Ipv4Addr::LOCALHOST)
    }

    fn try_start(&self, port: u16) -> Result<Doozerd, String> {
        let mut node = self.spawn(port)?;
        node.wait_ready()?;
        Ok(node)
    }

    fn spawn(&self, port: u16) -> Result<Doozerd, String> {
        let dir = TempDir::new("doozerd");
        let addr = SocketAddr::from((self.listen_ip(), port));
        let child = self.command(addr, dir.path())?;
        Ok(Doozerd {
            child,
            addr,
            stdout_path: dir.path().join("stdout"),
            stderr_path: dir.path().join("stderr"),
            dir,
            exited: None,
            tls: self.tls.as_ref().map(|t| (t.clone(), t.client())),
            gid: self.gid,
            web: self.web.as_deref().and_then(|w| w.parse().ok()),
            builder: self.clone(),
        })
    }

    /// Starts the process on `addr`, its output appended to `stdout` and
    /// `stderr` in `dir` (a restarted node's too, so that its log reads
    /// on), and its data directory, if durable, `data` in `dir`.
    fn command(&self, addr: SocketAddr, dir: &Path) -> Result<Child, String> {
        let append = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .map_err(|e| format!("open {name} in {}: {e}", dir.display()))
        };
        let (stdout, stderr) = (append("stdout")?, append("stderr")?);
        let data = data_dir_in(dir);
        let mut cmd = Command::new(doozerd_bin());
        cmd.arg("-l")
            .arg(addr.to_string())
            .arg("-w")
            .arg(self.web.as_deref().unwrap_or("false"))
            .args(if self.durable {
                vec!["-d".as_ref(), data.as_os_str()]
            } else {
                Vec::new()
            })
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
        if let Some(gid) = self.gid {
            cmd.gid(gid);
        }
        if !self.limits.is_empty() {
            let limits = self.limits.clone();
            // SAFETY: the closure runs in the child between fork and exec
            // and only calls setrlimit, which is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    for &(what, soft, hard) in &limits {
                        let lim = libc::rlimit {
                            rlim_cur: soft as libc::rlim_t,
                            rlim_max: hard as libc::rlim_t,
                        };
                        let resource = match what {
                            Limit::Files => libc::RLIMIT_NOFILE,
                            Limit::AddressSpace => libc::RLIMIT_AS,
                        };
                        if libc::setrlimit(resource, &lim) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        cmd.spawn().map_err(|e| format!("spawn doozerd: {e}"))
    }
}

/// Where a durable node keeps its data directory: in its scratch
/// directory, beside its logs.
fn data_dir_in(scratch: &Path) -> PathBuf {
    scratch.join("data")
}

/// A running `doozerd` on 127.0.0.1 (or the loopback address its builder
/// chose). Killed (SIGKILL) and reaped on drop.
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
    /// The group id it runs with, when the builder set one.
    gid: Option<u32>,
    /// The web viewer's address, when it was started with one.
    web: Option<SocketAddr>,
    /// What started it, for [`Doozerd::restart`].
    builder: DoozerdBuilder,
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
    pub fn wait_ready(&mut self) -> Result<(), String> {
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

    /// `doozer:?ca=IP:PORT`, with `&tlsca=CA` when the node serves
    /// TLS.
    pub fn uri(&self) -> String {
        match &self.tls {
            None => format!("doozer:?ca={}", self.addr),
            Some((t, _)) => format!("doozer:?ca={}&tlsca={}", self.addr, t.ca.display()),
        }
    }

    /// The web viewer's address (`-w`), when the node was started with one
    /// ([`DoozerdBuilder::web`]).
    pub fn web(&self) -> Option<SocketAddr> {
        self.web
    }

    /// The TLS files the node serves with, if any.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref().map(|(t, _)| t)
    }

    /// The group id the process runs with, when its builder set one
    /// ([`DoozerdBuilder::gid`]).
    pub fn gid(&self) -> Option<u32> {
        self.gid
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A scratch directory that lives as long as this node.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its data directory (`-d`), when its builder made it durable
    /// ([`DoozerdBuilder::durable`]).
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.builder.durable.then(|| data_dir_in(self.dir.path()))
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

    /// SIGKILLs the process if it runs, then starts it again as it was
    /// started, on the same address (and, if durable, the same data
    /// directory), its output appended to the same log, and waits until it
    /// answers; an error (with its output) if it does not.
    pub fn restart(&mut self) -> Result<(), String> {
        self.respawn()?;
        self.wait_ready()
    }

    /// [`Doozerd::restart`] without the wait: the process is started, and
    /// [`Doozerd::wait_ready`] waits until it answers (so that several
    /// nodes can start at once, as after a power cut).
    pub fn respawn(&mut self) -> Result<(), String> {
        self.kill();
        self.child = self.builder.command(self.addr, self.dir.path())?;
        self.exited = None;
        Ok(())
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
