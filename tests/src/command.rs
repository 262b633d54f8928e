//! Running a program to completion and capturing what it printed
//! ([`run_command`], [`CmdOutput`]).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a command that should finish is allowed to run before it is
/// killed and the test fails.
pub const CMD_DEADLINE: Duration = Duration::from_secs(30);

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

pub(crate) fn read_all_in_thread<R: Read + Send + 'static>(
    mut r: R,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}
