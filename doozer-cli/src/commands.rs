//! Global options, dispatch, and the shell commands (docs/reference.md#commands).

use std::io::{self, Read, Write};

use doozer::uri::redact;
use doozer::{Client, Error, Request, Verb};

use crate::failure::{report, Failure};
use crate::flags::{self, Spec};
use crate::globals::Globals;
use crate::help;
use crate::status;

/// The URI used when neither `-a` nor `$DOOZER_URI` is given.
pub const DEFAULT_URI: &str = "doozer:?ca=127.0.0.1:8046";

/// Options accepted before (and, for the shell commands, after) the command.
const GLOBAL: &[Spec] = &[
    Spec {
        name: "a",
        takes_value: true,
    },
    Spec {
        name: "b",
        takes_value: true,
    },
    Spec {
        name: "r",
        takes_value: true,
    },
    Spec {
        name: "t",
        takes_value: true,
    },
    Spec {
        name: "h",
        takes_value: false,
    },
    Spec {
        name: "help",
        takes_value: false,
    },
    Spec {
        name: "v",
        takes_value: false,
    },
];

/// The options of `status`, besides the global ones.
const STATUS: &[Spec] = &[
    Spec {
        name: "json",
        takes_value: false,
    },
    Spec {
        name: "lag",
        takes_value: true,
    },
    Spec {
        name: "pulse",
        takes_value: true,
    },
];

fn env_nonempty(name: &str) -> Option<String> {
    // Lossy, not dropped: a mangled URI then fails to parse with a clear
    // error instead of silently falling back to the default address.
    std::env::var_os(name)
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| !v.is_empty())
}

/// Runs the command line `args` (without the program name); returns the
/// exit status.
pub fn run(args: &[String]) -> u8 {
    match dispatch(args) {
        Ok(()) => 0,
        Err(f) => {
            let (status, message) = report(&f);
            if let Some(m) = message {
                eprintln!("{m}");
            }
            status
        }
    }
}

fn print(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

fn parse_rev(s: &str, what: &str) -> Result<i64, Failure> {
    s.parse()
        .map_err(|_| Failure::Usage(format!("bad {what} {:?}: want a number", redact(s))))
}

/// Applies parsed global options onto `g` (later ones override).
fn apply_globals(p: &flags::Parsed, g: &mut Globals) -> Result<bool, Failure> {
    if let Some(a) = p.get("a") {
        g.uri = a.to_string();
    }
    if let Some(b) = p.get("b") {
        g.boot_uri = Some(b.to_string()).filter(|b| !b.is_empty());
    }
    if let Some(r) = p.get("r") {
        g.rev = Some(parse_rev(r, "revision")?);
    }
    if let Some(t) = p.get("t") {
        let d = doozer::duration::parse(t).map_err(|e| Failure::Usage(e.to_string()))?;
        g.timeout = Some(d);
    }
    Ok(p.is_set("h") || p.is_set("help"))
}

fn dispatch(args: &[String]) -> Result<(), Failure> {
    let p = flags::parse(args, GLOBAL, true).map_err(Failure::Usage)?;
    let mut g = Globals {
        uri: env_nonempty("DOOZER_URI").unwrap_or_else(|| DEFAULT_URI.to_string()),
        boot_uri: env_nonempty("DOOZER_BOOT_URI"),
        rev: None,
        timeout: None,
    };
    let want_help = apply_globals(&p, &mut g)?;
    if p.is_set("v") {
        return print(format!("{}\n", help::version()).as_bytes());
    }
    let Some((cmd, rest)) = p.args.split_first() else {
        if want_help {
            return print(help::USAGE.as_bytes());
        }
        return Err(Failure::Usage("no command given".into()));
    };
    if want_help {
        return print(help::command_help(cmd).unwrap_or(help::USAGE).as_bytes());
    }
    if cmd == "bench" {
        return crate::bench::run(&g, rest);
    }
    if cmd == "status" {
        return status(&mut g, rest);
    }
    // Shell commands also take the global options after the command name.
    let p = flags::parse(rest, GLOBAL, false).map_err(Failure::Usage)?;
    if apply_globals(&p, &mut g)? {
        return print(help::command_help(cmd).unwrap_or(help::USAGE).as_bytes());
    }
    let a = &p.args;
    let nargs = match cmd.as_str() {
        "rev" | "nop" | "self" => 0,
        "add" | "get" | "stat" | "find" | "wait" | "watch" | "touch" | "backup" => 1,
        "set" | "del" => 2,
        "help" => {
            return match a.as_slice() {
                [] => print(help::USAGE.as_bytes()),
                [c] => match help::command_help(c) {
                    Some(h) => print(h.as_bytes()),
                    None => Err(Failure::Usage(format!("no such command {:?}", redact(c)))),
                },
                _ => Err(Failure::Usage("help takes at most one command".into())),
            }
        }
        _ => return Err(Failure::Usage(format!("unknown command {:?}", redact(cmd)))),
    };
    if a.len() != nargs {
        let usage = help::command_help(cmd)
            .and_then(|h| h.lines().next())
            .unwrap_or("");
        return Err(Failure::Usage(format!(
            "{cmd}: wrong number of arguments ({usage})"
        )));
    }
    // Check REV before connecting, so a typo is a usage error even when the
    // cluster is down.
    let rev_arg = match cmd.as_str() {
        "set" | "del" => Some(parse_rev(&a[1], "REV")?),
        _ => None,
    };
    if cmd == "backup" {
        // Makes its file before connecting.
        return crate::backup::run(&g, &a[0]);
    }
    let c = g.connect()?;
    match (cmd.as_str(), rev_arg) {
        ("add", _) => set(&c, &a[0], 0),
        ("set", Some(rev)) => set(&c, &a[0], rev),
        ("del", Some(rev)) => Ok(c.del(&a[0], rev)?),
        ("get", _) => {
            let (body, _) = c.get(&a[0], g.rev)?;
            print(&body)
        }
        ("rev", _) => print(format!("{}\n", c.rev()?).as_bytes()),
        ("stat", _) => stat(&c, &a[0], g.rev),
        ("find", _) => find(&c, &a[0], g.rev),
        ("wait", _) => wait(&c, &g, &a[0]),
        ("watch", _) => watch(&c, &g, &a[0]),
        ("touch", _) => touch(&c, &a[0], g.rev),
        ("nop", _) => c.nop().map(drop).map_err(Failure::from),
        ("self", _) => print(format!("{}\n", c.self_id()?).as_bytes()),
        _ => Err(Failure::Usage(format!("unknown command {:?}", redact(cmd)))),
    }
}

/// `doozer status`: the global options and its own, after the command
/// name; usage errors before connecting.
fn status(g: &mut Globals, args: &[String]) -> Result<(), Failure> {
    let specs: Vec<Spec> = GLOBAL.iter().chain(STATUS).copied().collect();
    let p = flags::parse(args, &specs, false).map_err(Failure::Usage)?;
    let help = help::command_help("status").unwrap_or(help::USAGE);
    if apply_globals(&p, g)? {
        return print(help.as_bytes());
    }
    if !p.args.is_empty() {
        let usage = help.lines().next().unwrap_or("");
        return Err(Failure::Usage(format!(
            "status: wrong number of arguments ({usage})"
        )));
    }
    let max_lag = match p.get("lag") {
        None => status::DEFAULT_MAX_LAG,
        Some(v) => v.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
            Failure::Usage(format!("bad -lag {:?}: want a number of revs", redact(v)))
        })?,
    };
    let pulse_window = match p.get("pulse") {
        None => status::DEFAULT_PULSE_WINDOW,
        Some(v) => doozer::duration::parse(v)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "bad -pulse {:?}: want a duration such as 2s or 1500ms",
                    redact(v)
                ))
            })?,
    };
    let opts = status::Options {
        json: p.is_set("json"),
        max_lag,
        timeout: g.timeout.unwrap_or(status::DEFAULT_TIMEOUT),
        pulse_window,
    };
    status::run(g, opts)
}

fn set(c: &Client, path: &str, rev: i64) -> Result<(), Failure> {
    let body = read_body(io::stdin().lock())?;
    let new_rev = c.set(path, rev, body)?;
    print(format!("{new_rev}\n").as_bytes())
}

/// The body of a SET from `input`: at most [`doozer::MAX_BODY_LEN`] bytes.
/// Reading stops one byte past the limit, so a huge input is refused with
/// the node's own words without being read whole (or sent).
fn read_body(input: impl Read) -> Result<Vec<u8>, Failure> {
    let limit = doozer::MAX_BODY_LEN;
    let mut body = Vec::new();
    input
        .take(limit as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Failure::Other(format!("reading stdin: {e}")))?;
    if body.len() > limit {
        return Err(Failure::Other(format!(
            "value too large: more than {limit} bytes on stdin; the limit is {limit} bytes"
        )));
    }
    Ok(body)
}

fn stat(c: &Client, path: &str, rev: Option<i64>) -> Result<(), Failure> {
    let st = c.stat(path, rev)?;
    if !st.exists() {
        return Err(Failure::NotFound(path.to_string()));
    }
    if st.is_dir() {
        print(format!("d {}\n", st.len).as_bytes())
    } else {
        print(format!("{} {}\n", st.rev, st.len).as_bytes())
    }
}

fn child_path(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Depth-first listing at one fixed revision. Each directory costs two
/// pipelined round trips (all GETDIRs, then all STATs of the children).
fn find(c: &Client, path: &str, rev: Option<i64>) -> Result<(), Failure> {
    let rev = match rev {
        Some(r) => r,
        None => c.rev()?,
    };
    let st = c.stat(path, Some(rev))?;
    if !st.exists() {
        return Err(Failure::NotFound(path.to_string()));
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    writeln!(out, "{path}")?;
    if st.is_dir() {
        find_dir(c, path, st.len, rev, &mut out)?;
    }
    out.flush()?;
    Ok(())
}

fn find_dir(
    c: &Client,
    dir: &str,
    entries: i32,
    rev: i64,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let ask = |verb: Verb, path: String, offset: Option<i32>| Request {
        verb: Some(verb as i32),
        path: Some(path),
        rev: Some(rev),
        offset,
        ..Default::default()
    };
    let names = c.call_many(
        (0..entries.max(0))
            .map(|i| ask(Verb::Getdir, dir.to_string(), Some(i)))
            .collect(),
    )?;
    let mut names = names
        .into_iter()
        .map(|r| Ok(Error::check(r)?.path.unwrap_or_default()))
        .collect::<Result<Vec<String>, Error>>()?;
    names.sort();
    let paths: Vec<String> = names.iter().map(|n| child_path(dir, n)).collect();
    let stats = c.call_many(
        paths
            .iter()
            .map(|p| ask(Verb::Stat, p.clone(), None))
            .collect(),
    )?;
    for (p, st) in paths.iter().zip(stats) {
        let st = Error::check(st)?;
        writeln!(out, "{p}")?;
        if st.rev == Some(doozer::rev::DIR) {
            find_dir(c, p, st.len.unwrap_or_default(), rev, out)?;
        }
    }
    Ok(())
}

fn next_rev(c: &Client, g: &Globals) -> Result<i64, Failure> {
    Ok(match g.rev {
        Some(r) => r,
        None => c.rev()? + 1,
    })
}

fn wait_one(c: &Client, g: &Globals, glob: &str, rev: i64) -> Result<doozer::Event, Failure> {
    Ok(match g.timeout {
        Some(t) => c.wait_timeout(glob, rev, t)?,
        None => c.wait(glob, rev)?,
    })
}

fn wait(c: &Client, g: &Globals, glob: &str) -> Result<(), Failure> {
    let rev = next_rev(c, g)?;
    let ev = wait_one(c, g, glob, rev)?;
    let mut out = io::stdout().lock();
    ev.write_record(&mut out)?;
    out.flush()?;
    Ok(())
}

fn watch(c: &Client, g: &Globals, glob: &str) -> Result<(), Failure> {
    let mut rev = next_rev(c, g)?;
    loop {
        let ev = wait_one(c, g, glob, rev)?;
        rev = ev.rev + 1;
        let mut out = io::stdout().lock();
        ev.write_record(&mut out)?;
        out.flush()?;
    }
}

fn touch(c: &Client, path: &str, rev: Option<i64>) -> Result<(), Failure> {
    let (body, file_rev) = c.get(path, rev)?;
    c.set(path, file_rev, body)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn usage_errors_are_127_before_connecting() {
        // A port nothing listens on: these must fail before connecting.
        let a = "doozer:?ca=127.0.0.1:1";
        for args in [
            vec!["-a", a, "frob"],
            vec!["-a", a, "get"],
            vec!["-a", a, "get", "/a", "/b"],
            vec!["-a", a, "set", "/a", "x"],
            vec!["-a", a, "del", "/a"],
            vec!["-a", a, "-q", "rev"],
            vec!["-a", a, "-t", "soon", "rev"],
            vec!["-a", a, "-r", "x", "rev"],
            vec!["-a", a],
            vec!["-a", a, "help", "frob"],
            vec!["-a", a, "backup"],
            vec!["-a", a, "backup", "f", "g"],
            vec!["-a", a, "status", "extra"],
            vec!["-a", a, "status", "-lag", "x"],
            vec!["-a", a, "status", "-lag", "-1"],
            vec!["-a", a, "status", "-pulse", "x"],
            vec!["-a", a, "status", "-pulse", "0s"],
            vec!["-a", a, "status", "-frob"],
            vec!["-a", a, "-json", "status"],
        ] {
            assert_eq!(run(&strs(&args)), 127, "{args:?}");
        }
    }

    #[test]
    fn help_and_version_exit_0() {
        for args in [
            vec!["-h"],
            vec!["--help"],
            vec!["-v"],
            vec!["help"],
            vec!["help", "watch"],
            vec!["status", "-h"],
        ] {
            assert_eq!(run(&strs(&args)), 0, "{args:?}");
        }
        for c in [
            "add", "set", "get", "del", "rev", "stat", "find", "wait", "watch", "touch", "nop",
            "self", "backup", "status", "help", "bench",
        ] {
            assert!(help::command_help(c).is_some(), "{c}");
            assert!(help::USAGE.contains(c), "{c}");
        }
    }

    #[test]
    fn unreachable_cluster_or_name_service_is_exit_2() {
        assert_eq!(run(&strs(&["-a", "doozer:?ca=127.0.0.1:1", "rev"])), 2);
        assert_eq!(run(&strs(&["-a", "doozer:?ca=127.0.0.1:1", "status"])), 2);
        assert_eq!(run(&strs(&["-a", "doozer:?cn=x", "rev"])), 2);
        assert_eq!(
            run(&strs(&[
                "-a",
                "doozer:?cn=x",
                "-b",
                "doozer:?ca=127.0.0.1:1",
                "rev"
            ])),
            2
        );
    }

    #[test]
    fn a_body_over_the_limit_is_refused_after_one_byte_more() {
        let limit = doozer::MAX_BODY_LEN;
        let at_limit = vec![b'x'; limit];
        assert_eq!(read_body(&at_limit[..]).ok(), Some(at_limit.clone()));
        // An endless input: only limit + 1 bytes are read.
        let e = read_body(io::repeat(b'y')).expect_err("endless stdin");
        let (status, msg) = report(&e);
        assert_eq!(status, 2);
        assert_eq!(
            msg.as_deref(),
            Some(
                "Error: value too large: more than 49152 bytes on stdin; the limit is 49152 bytes"
            )
        );
    }

    #[test]
    fn child_paths() {
        assert_eq!(child_path("/", "ctl"), "/ctl");
        assert_eq!(child_path("/ctl", "node"), "/ctl/node");
    }
}
