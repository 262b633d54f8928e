//! Command-line flags → [`Config`].
//!
//! Flags are Go-style (`-hist 5`, `-hist=5`; `--hist` is accepted too), as
//! the Go doozerd had them, parsed with `getopts` in long-only mode. All
//! validation happens here, before the event loop starts, so a bad value is
//! a one-line error and a non-zero exit.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use bytes::Bytes;
use doozer::uri::redact;

/// Default client/peer listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8046";
/// Default port of the web viewer (on the host of `-l`).
pub const DEFAULT_WEB_PORT: u16 = 8000;
/// Default number of revisions of history kept.
pub const DEFAULT_HISTORY_REVS: u64 = 2000;
/// Largest `-hist` accepted: a bound on memory, far above any real use.
pub const MAX_HISTORY_REVS: u64 = 10_000_000;
/// Largest `-spin` accepted, in microseconds: beyond a millisecond a
/// sleeping process's wake-up is no longer what a wait costs.
pub const MAX_SPIN_US: u64 = 1_000;

/// Everything doozerd needs to start, validated. Its `Debug` form hides
/// the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `-l`: client (TCP) and peer address.
    pub listen: SocketAddr,
    /// `-w`: web viewer address; `None` when disabled (`-w false` or a
    /// secret is set).
    pub web: Option<SocketAddr>,
    /// `-c`: the cluster name.
    pub cluster_name: String,
    /// `-hist`: revisions of history kept.
    pub history_revs: u64,
    /// `DOOZER_RWSECRET`: grants read and write.
    pub rw_secret: Bytes,
    /// `DOOZER_ROSECRET`: grants read only.
    pub ro_secret: Bytes,
    /// True when the web viewer was asked for but is off because a secret
    /// is set (logged at start-up).
    pub web_off_for_secret: bool,
    /// `-a`: cluster members to attach to, in order; empty: seed a new
    /// cluster.
    pub attach: Vec<SocketAddr>,
    /// `-timeout`: silence before a CAL is kicked, or before the records
    /// of a cluster in the name service count as stale, in milliseconds.
    pub timeout_ms: u64,
    /// `-pulse`: between `applied` writes, in milliseconds.
    pub pulse_ms: u64,
    /// `-fill`: before another CAL's seqn is filled with NOP, in
    /// milliseconds.
    pub fill_ms: u64,
    /// `-b` or `$DOOZER_BOOT_URI`: the name service's `doozer:?ca=...`
    /// URI (validated: at least one `ca=`, no `cn=`).
    pub boot: Option<doozer::DoozerUri>,
    /// Where `boot` came from, for messages: `-b` or `DOOZER_BOOT_URI`.
    pub boot_from: &'static str,
    /// `-tlscert`, `-tlskey`, `-tlsca`: serve clients over TLS, and attach
    /// to members over TLS. `None`: plain TCP.
    pub tls: Option<Box<TlsFiles>>,
    /// `-d`: the data directory (durable mode); `None`: memory only.
    pub data_dir: Option<PathBuf>,
    /// `-restore`: a backup to seed a new cluster from.
    pub restore: Option<PathBuf>,
    /// `-spin`: microseconds the event loop busy-polls before it sleeps,
    /// while lightly loaded; 0: never (the default).
    pub spin_us: u64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::replica::session::shown_secret;
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("web", &self.web)
            .field("cluster_name", &self.cluster_name)
            .field("history_revs", &self.history_revs)
            .field("rw_secret", &shown_secret(&self.rw_secret))
            .field("ro_secret", &shown_secret(&self.ro_secret))
            .field("web_off_for_secret", &self.web_off_for_secret)
            .field("attach", &self.attach)
            .field("timeout_ms", &self.timeout_ms)
            .field("pulse_ms", &self.pulse_ms)
            .field("fill_ms", &self.fill_ms)
            .field("boot", &self.boot)
            .field("tls", &self.tls)
            .field("data_dir", &self.data_dir)
            .field("restore", &self.restore)
            .field("spin_us", &self.spin_us)
            .finish()
    }
}

/// The PEM files of a node that serves TLS (read when the node starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `-tlscert`: this node's certificate chain.
    pub cert: PathBuf,
    /// `-tlskey`: its private key.
    pub key: PathBuf,
    /// `-tlsca`: the CA certificate(s) the members this node attaches to
    /// must have certificates from.
    pub ca: PathBuf,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run a node.
    Run(Box<Config>),
    /// Print the version and exit.
    Version,
    /// Print usage and exit.
    Help(String),
}

/// A command line that cannot be run, with a one-line message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn options() -> getopts::Options {
    let mut o = getopts::Options::new();
    o.long_only(true);
    o.optopt("l", "", "listen address for clients and peers", "ADDR");
    o.optmulti(
        "a",
        "",
        "attach to this cluster member (repeatable)",
        "ADDR",
    );
    o.optopt(
        "b",
        "",
        "name-service URI (default $DOOZER_BOOT_URI): find or seed cluster -c there",
        "URI",
    );
    o.optopt("c", "", "cluster name (default local)", "NAME");
    o.optopt(
        "d",
        "",
        "data directory: keep the store, votes and id on disk (default: memory only)",
        "DIR",
    );
    o.optopt(
        "",
        "restore",
        "seed a new cluster from this backup (made by doozer backup)",
        "FILE",
    );
    o.optopt(
        "w",
        "",
        "web viewer address, or false (default: host of -l, port 8000)",
        "ADDR",
    );
    o.optopt(
        "",
        "timeout",
        "seconds of silence before a CAL is kicked, or a name service's records are stale (default 60)",
        "S",
    );
    o.optopt(
        "",
        "pulse",
        "seconds between applied-rev writes (default 1)",
        "S",
    );
    o.optopt(
        "",
        "fill",
        "seconds before filling a seqn with NOP (default 0.1)",
        "S",
    );
    o.optopt("", "hist", "revisions of history kept (default 2000)", "N");
    o.optopt(
        "",
        "spin",
        "microseconds to busy-poll before sleeping while lightly loaded: lower latency for more CPU (default 0: off)",
        "US",
    );
    o.optopt(
        "",
        "tlscert",
        "serve clients over TLS: this node's certificate chain (PEM; it must name the host of -l)",
        "FILE",
    );
    o.optopt(
        "",
        "tlskey",
        "serve clients over TLS: the certificate's private key (PEM)",
        "FILE",
    );
    o.optopt(
        "",
        "tlsca",
        "with -tlscert: CA certificate(s) (PEM) to verify the members this node attaches to; required with -tlscert",
        "FILE",
    );
    o.optflag("v", "version", "print the version and exit");
    o.optflag("h", "help", "print this help and exit");
    o
}

/// The usage text.
pub fn usage() -> String {
    options().usage("Usage: doozerd [flags]\n\nA doozer coordination service node.")
}

/// Parses `args` (without the program name). `env` reads environment
/// variables, passed in so tests need not touch the real environment.
pub fn parse(
    args: &[String],
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Command, ConfigError> {
    let m = options()
        .parse(args)
        .map_err(|e| ConfigError(format!("{} (see doozerd -h)", redact(&e.to_string()))))?;
    if m.opt_present("h") {
        return Ok(Command::Help(usage()));
    }
    if m.opt_present("v") {
        return Ok(Command::Version);
    }
    if let Some(extra) = m.free.first() {
        return Err(ConfigError(format!(
            "unexpected argument {} (doozerd takes only flags; see doozerd -h)",
            shown(extra)
        )));
    }

    let tls = tls_files(&m)?;

    let listen_text = m.opt_str("l").unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen = resolve(&listen_text)
        .map_err(|e| ConfigError(format!("-l {}: {e}", shown(&listen_text))))?;

    let attach = attach_addrs(&m, listen)?;
    let (boot, boot_from) = boot_uri(&m, env)?;

    let cluster_name = cluster_name(&m)?;

    let history_revs = whole(&m, "hist", DEFAULT_HISTORY_REVS, 1..=MAX_HISTORY_REVS)?;
    let spin_us = whole(&m, "spin", 0, 0..=MAX_SPIN_US)?;

    let timeout_ms = seconds(&m, "timeout", 60_000, 1_000, 86_400_000)?;
    let pulse_ms = seconds(&m, "pulse", 1_000, 10, 3_600_000)?;
    let fill_ms = seconds(&m, "fill", 100, 1, 60_000)?;

    let (rw_secret, ro_secret) = secrets(env)?;
    let secret_set = !rw_secret.is_empty() || !ro_secret.is_empty();
    let (web, web_off_for_secret) = web_addr(&m, listen, secret_set)?;
    let (data_dir, restore) = durability(&m, &attach, boot.is_some())?;

    Ok(Command::Run(Box::new(Config {
        listen,
        web,
        cluster_name,
        history_revs,
        rw_secret,
        ro_secret,
        web_off_for_secret,
        attach,
        timeout_ms,
        pulse_ms,
        fill_ms,
        boot,
        boot_from,
        tls,
        data_dir,
        restore,
        spin_us,
    })))
}

/// `-d` and `-restore`. A restore seeds a new cluster, so it never goes
/// with `-a` or `-b` (which join one that runs).
fn durability(
    m: &getopts::Matches,
    attach: &[SocketAddr],
    boot: bool,
) -> Result<(Option<PathBuf>, Option<PathBuf>), ConfigError> {
    let path = |flag: &str| -> Result<Option<PathBuf>, ConfigError> {
        match m.opt_str(flag) {
            Some(p) if p.is_empty() => Err(ConfigError(format!("-{flag}: want a path"))),
            Some(p) => Ok(Some(PathBuf::from(p))),
            None => Ok(None),
        }
    };
    let data_dir = path("d")?;
    let restore = path("restore")?;
    if restore.is_some() && !attach.is_empty() {
        return Err(ConfigError(
            "-restore seeds a new cluster: it cannot go with -a (never restore into a running cluster)"
                .into(),
        ));
    }
    if restore.is_some() && boot {
        return Err(ConfigError(
            "-restore seeds a new cluster: it cannot go with -b or DOOZER_BOOT_URI".into(),
        ));
    }
    Ok((data_dir, restore))
}

/// `-a`, repeatable: the members to attach to (not this node itself).
fn attach_addrs(m: &getopts::Matches, listen: SocketAddr) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut attach = Vec::new();
    for a in m.opt_strs("a") {
        let addr = resolve(&a).map_err(|e| ConfigError(format!("-a {}: {e}", shown(&a))))?;
        if addr == listen {
            return Err(ConfigError(format!(
                "-a {addr}: that is this node's own -l address"
            )));
        }
        attach.push(addr);
    }
    Ok(attach)
}

/// `-b`, or `DOOZER_BOOT_URI`: the name service, reached by address; and
/// which of the two gave it.
fn boot_uri(
    m: &getopts::Matches,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<(Option<doozer::DoozerUri>, &'static str), ConfigError> {
    let env_boot = match env("DOOZER_BOOT_URI") {
        Some(v) => Some(
            v.into_string()
                .map_err(|_| ConfigError("DOOZER_BOOT_URI is not valid UTF-8".into()))?,
        ),
        None => None,
    };
    let Some((from, text)) = m.opt_str("b").map(|b| ("-b", b)).or(env_boot
        .filter(|v| !v.is_empty())
        .map(|v| ("DOOZER_BOOT_URI", v)))
    else {
        return Ok((None, "-b"));
    };
    // Errors name the flag, not the text: it may hold a secret.
    let uri: doozer::DoozerUri = text
        .parse()
        .map_err(|e| ConfigError(format!("{from}: {e}")))?;
    if uri.addrs.is_empty() || uri.cluster.is_some() {
        return Err(ConfigError(format!(
            "{from} {uri}: a name service is reached by address: want doozer:?ca=HOST:PORT"
        )));
    }
    Ok((Some(uri), from))
}

/// `-c`: the cluster name, one component of the paths it is registered
/// under in a name service, so of bounded length.
fn cluster_name(m: &getopts::Matches) -> Result<String, ConfigError> {
    use doozer_proto::ctl::{valid_cluster_name, MAX_CLUSTER_NAME_LEN};
    let name = m.opt_str("c").unwrap_or_else(|| "local".to_string());
    if name.len() > MAX_CLUSTER_NAME_LEN {
        return Err(ConfigError(format!(
            "-c: a cluster name is at most {MAX_CLUSTER_NAME_LEN} bytes, not {} \
             (it is part of the paths /ctl/ns/NAME/ID and /ctl/boot/NAME)",
            name.len()
        )));
    }
    if !valid_cluster_name(&name) {
        return Err(ConfigError(format!(
            "-c {}: a cluster name is one or more of A-Z a-z 0-9 . - (not . or ..)",
            shown(&name)
        )));
    }
    Ok(name)
}

/// A flag taking a whole number in `range` (`-hist`, `-spin`).
fn whole(
    m: &getopts::Matches,
    flag: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    match m.opt_str(flag) {
        None => Ok(default),
        Some(s) => match s.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(ConfigError(format!(
                "-{flag} {}: want a whole number from {} to {}",
                shown(&s),
                range.start(),
                range.end()
            ))),
        },
    }
}

/// `DOOZER_RWSECRET` and `DOOZER_ROSECRET`. Secrets are bytes on the wire
/// (ACCESS value): taken as they are, so a secret that is not UTF-8 still
/// protects the node.
fn secrets(
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<(Bytes, Bytes), ConfigError> {
    let secret = |k| Bytes::from(env(k).map(|v| v.into_vec()).unwrap_or_default());
    let rw_secret = secret("DOOZER_RWSECRET");
    let ro_secret = secret("DOOZER_ROSECRET");
    // A connection starts as if it sent the empty secret, which would match
    // an unset rw secret: a ro secret alone would leave writes open to all.
    if rw_secret.is_empty() && !ro_secret.is_empty() {
        return Err(ConfigError(
            "DOOZER_ROSECRET is set without DOOZER_RWSECRET, which would let any client write; set both"
                .to_string(),
        ));
    }
    Ok((rw_secret, ro_secret))
}

/// `-w`: the web viewer's address (`None`: off), and whether it is off
/// because a secret is set (the viewer has no authentication).
fn web_addr(
    m: &getopts::Matches,
    listen: SocketAddr,
    secret_set: bool,
) -> Result<(Option<SocketAddr>, bool), ConfigError> {
    let web_text = m.opt_str("w");
    let web_wanted = match web_text.as_deref() {
        Some("false") => None,
        Some(text) => {
            Some(resolve(text).map_err(|e| ConfigError(format!("-w {}: {e}", shown(text))))?)
        }
        None => Some(SocketAddr::new(listen.ip(), DEFAULT_WEB_PORT)),
    };
    if let Some(w) = web_wanted {
        if w == listen {
            return Err(ConfigError(format!(
                "-w {w}: the web viewer needs another address than -l"
            )));
        }
    }
    Ok(match web_wanted {
        Some(_) if secret_set => (None, true),
        w => (w, false),
    })
}

/// `-tlscert`, `-tlskey` and `-tlsca`: all three or none. A TLS node needs
/// the CA even without `-a`: once demoted it attaches to another member,
/// which serves TLS too (a cluster serves TLS on every node or on none).
fn tls_files(m: &getopts::Matches) -> Result<Option<Box<TlsFiles>>, ConfigError> {
    let file = |flag: &str| -> Result<Option<PathBuf>, ConfigError> {
        match m.opt_str(flag) {
            Some(p) if p.is_empty() => Err(ConfigError(format!("-{flag}: want a file name"))),
            p => Ok(p.map(PathBuf::from)),
        }
    };
    match (file("tlscert")?, file("tlskey")?, file("tlsca")?) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), Some(ca)) => Ok(Some(Box::new(TlsFiles { cert, key, ca }))),
        (Some(_), None, _) => Err(ConfigError(
            "-tlscert needs -tlskey FILE (the certificate's private key)".into(),
        )),
        (None, Some(_), _) => Err(ConfigError(
            "-tlskey needs -tlscert FILE (the certificate it belongs to)".into(),
        )),
        (Some(_), Some(_), None) => Err(ConfigError(
            "-tlscert needs -tlsca FILE: the CA of the other members' certificates, to attach to them over TLS".into(),
        )),
        (None, None, Some(_)) => Err(ConfigError(
            "-tlsca needs -tlscert and -tlskey (every node of a TLS cluster serves TLS)".into(),
        )),
    }
}

/// A `-flag S` of seconds (a decimal number, as in `-fill 0.1`), in
/// milliseconds, `default` when absent, within `min..=max` ms.
fn seconds(
    m: &getopts::Matches,
    flag: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(text) = m.opt_str(flag) else {
        return Ok(default);
    };
    let ms = text
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite())
        .map(|s| (s * 1000.0).round());
    match ms {
        Some(ms) if ms >= min as f64 && ms <= max as f64 => Ok(ms as u64),
        _ => Err(ConfigError(format!(
            "-{flag} {}: want seconds from {} to {}",
            shown(&text),
            min as f64 / 1000.0,
            max as f64 / 1000.0
        ))),
    }
}

/// A value from the command line as an error shows it: quoted, and
/// without any secret it may hold (a URI given where an address was
/// wanted, say).
fn shown(text: &str) -> String {
    format!("{:?}", redact(text))
}

/// Resolves `HOST:PORT` to one address (DNS happens here, before the loop).
fn resolve(text: &str) -> Result<SocketAddr, String> {
    if !text.contains(':') {
        return Err("want HOST:PORT".to_string());
    }
    let mut addrs = text.to_socket_addrs().map_err(|e| e.to_string())?;
    addrs.next().ok_or_else(|| "no address found".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, ConfigError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&args, &|_| None)
    }

    fn config(args: &[&str]) -> Config {
        match run(args) {
            Ok(Command::Run(c)) => *c,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = config(&[]);
        assert_eq!(c.listen, "127.0.0.1:8046".parse().unwrap());
        assert_eq!(c.web, Some("127.0.0.1:8000".parse().unwrap()));
        assert_eq!(c.cluster_name, "local");
        assert_eq!(c.history_revs, 2000);
        assert_eq!((c.timeout_ms, c.pulse_ms, c.fill_ms), (60_000, 1_000, 100));
        assert_eq!(c.spin_us, 0);
    }

    #[test]
    fn spin_is_whole_microseconds_up_to_a_millisecond() {
        assert_eq!(config(&["-spin", "100"]).spin_us, 100);
        assert_eq!(config(&["-spin", "0"]).spin_us, 0);
        assert_eq!(config(&["-spin", "1000"]).spin_us, MAX_SPIN_US);
        for bad in ["1001", "-1", "0.5", "50us", ""] {
            let e = run(&["-spin", bad]).expect_err(bad);
            assert_eq!(
                e.0,
                format!("-spin {bad:?}: want a whole number from 0 to 1000"),
                "{bad}"
            );
        }
    }

    #[test]
    fn timings_are_decimal_seconds() {
        let c = config(&["-timeout", "5", "-pulse=0.5", "--fill", "0.02"]);
        assert_eq!((c.timeout_ms, c.pulse_ms, c.fill_ms), (5_000, 500, 20));
        for args in [
            &["-timeout", "0"][..],
            &["-timeout", "-3"],
            &["-pulse", "NaN"],
            &["-fill", "inf"],
            &["-fill", "1s"],
        ] {
            let e = run(args).expect_err(&format!("{args:?} should fail"));
            assert!(e.0.contains("want seconds"), "{args:?}: {e}");
        }
    }

    #[test]
    fn go_style_single_dash_and_double_dash_and_equals() {
        let c = config(&[
            "-l",
            "127.0.0.1:9000",
            "--hist",
            "5",
            "-c=prod",
            "-w",
            "false",
        ]);
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.history_revs, 5);
        assert_eq!(c.cluster_name, "prod");
        assert_eq!(c.web, None);
        // the web default follows the host of -l
        let c = config(&["-l", "127.0.0.2:9000"]);
        assert_eq!(c.web, Some("127.0.0.2:8000".parse().unwrap()));
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        for args in [
            &["-hist", "abc"][..],
            &["-hist", "0"],
            &["-l", "nonsense"],
            &["-l", "127.0.0.1:99999"],
            &["-c", "bad name"],
            &["-nosuchflag"],
            &["-l"],
            &["stray"],
            &["-a", "nonsense"],
            &["-a", "127.0.0.1:8046"], // its own -l address
            &["-tlscert", "x.pem"],
            &["-tlskey", "k.pem"],
            &["-tlscert", "x.pem", "-tlskey", "k.pem"],
            &["-tlsca", "ca.pem"],
            &["-tlscert", "", "-tlskey", "k.pem", "-tlsca", "ca.pem"],
        ] {
            let e = run(args).expect_err(&format!("{args:?} should fail"));
            assert!(!e.0.contains('\n'), "{args:?}: {e}");
        }
    }

    #[test]
    fn the_name_service_comes_from_b_or_the_environment() {
        assert_eq!(config(&[]).boot, None);
        let ns = "doozer:?ca=127.0.0.1:9046";
        let shown = |b: Option<doozer::DoozerUri>| b.map(|u| u.to_string());
        assert_eq!(shown(config(&["-b", ns]).boot).as_deref(), Some(ns));
        let env = |k: &str| (k == "DOOZER_BOOT_URI").then(|| "doozer:?ca=127.0.0.1:1".into());
        let from_env = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            match parse(&args, &env) {
                Ok(Command::Run(c)) => (shown(c.boot), c.boot_from),
                other => panic!("{other:?}"),
            }
        };
        // Messages about the name service name where its URI came from.
        assert_eq!(
            from_env(&[]),
            (Some("doozer:?ca=127.0.0.1:1".into()), "DOOZER_BOOT_URI")
        );
        assert_eq!(from_env(&["-b", ns]), (Some(ns.into()), "-b"), "-b wins");
        for bad in ["doozer:?cn=ns", "127.0.0.1:9046", "doozer:?ca=x:99999"] {
            let e = run(&["-b", bad]).unwrap_err();
            assert!(e.0.starts_with("-b"), "{bad}: {e}");
        }
        for bad in [
            "doozer:?cn=ns&sk=hush",
            "doozer:?ca=h&sk=hush&x=1",
            "doozer:?sk=hush",
            "dozer:?ca=127.0.0.1:1&sk=hush",
            "doozer:?ca=127.0.0.1:1&sk=hu%zzsh",
            "doozer:?ca=127.0.0.1:1&sk=a&hush",
        ] {
            let e = run(&["-b", bad]).unwrap_err();
            assert!(!e.0.contains("hush"), "the secret is not echoed: {e}");
            // The same from the environment.
            let env = |k: &str| (k == "DOOZER_BOOT_URI").then(|| bad.into());
            let e = parse(&[], &env).unwrap_err();
            assert!(e.0.starts_with("DOOZER_BOOT_URI"), "{e}");
            assert!(!e.0.contains("hush"), "the secret is not echoed: {e}");
        }
        // A URI given where an address is wanted, or as an argument.
        for args in [
            &["-a", "doozer:?ca=127.0.0.1:1&sk=hush"][..],
            &["-l", "doozer:?sk=hush"],
            &["-w", "doozer:?sk=hush"],
            &["doozer:?ca=127.0.0.1:1&sk=hush"],
            &["-hist", "sk=hush"],
            &["-nosuch=doozer:?sk=hush"],
        ] {
            let e = run(args).unwrap_err();
            assert!(
                !e.0.contains("hush"),
                "{args:?}: the secret is not echoed: {e}"
            );
        }
        assert!(
            run(&["-c", ".."]).is_err(),
            "a cluster name is one path component"
        );
    }

    #[test]
    fn a_cluster_name_is_short_enough_for_the_name_service_paths() {
        let longest = "n".repeat(doozer_proto::ctl::MAX_CLUSTER_NAME_LEN);
        assert_eq!(config(&["-c", &longest]).cluster_name, longest);
        let e = run(&["-c", &"n".repeat(60_000)]).unwrap_err();
        assert_eq!(
            e.0,
            "-c: a cluster name is at most 255 bytes, not 60000 \
             (it is part of the paths /ctl/ns/NAME/ID and /ctl/boot/NAME)"
        );
        let e = run(&["-c", "a b"]).unwrap_err();
        assert_eq!(
            e.0,
            "-c \"a b\": a cluster name is one or more of A-Z a-z 0-9 . - (not . or ..)"
        );
    }

    #[test]
    fn debug_hides_the_secrets() {
        let env = |k: &str| match k {
            "DOOZER_RWSECRET" => Some("rw-hush".into()),
            "DOOZER_ROSECRET" => Some("ro-hush".into()),
            _ => None,
        };
        let args: Vec<String> = ["-b", "doozer:?ca=127.0.0.1:1&sk=ns-hush"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let shown = format!("{:?}", parse(&args, &env));
        assert!(shown.contains("rw_secret: \"<hidden>\""), "{shown}");
        assert!(!shown.contains("hush"), "{shown}");
    }

    #[test]
    fn tls_takes_cert_key_and_ca_together() {
        let c = config(&["-tlscert", "c.pem", "-tlskey=k.pem", "--tlsca", "ca.pem"]);
        assert_eq!(
            c.tls,
            Some(Box::new(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into(),
                ca: "ca.pem".into()
            }))
        );
        assert_eq!(config(&[]).tls, None);
        let e = run(&["-tlscert", "c.pem"]).unwrap_err();
        assert!(e.0.contains("-tlskey"), "{e}");
        let e = run(&["-tlscert", "c.pem", "-tlskey", "k.pem"]).unwrap_err();
        assert!(e.0.contains("-tlsca"), "{e}");
    }

    #[test]
    fn a_secret_turns_the_web_viewer_off() {
        let args: Vec<String> = vec![];
        let c = match parse(&args, &|k| (k == "DOOZER_RWSECRET").then(|| "s".into())) {
            Ok(Command::Run(c)) => *c,
            other => panic!("{other:?}"),
        };
        assert_eq!(c.web, None);
        assert!(c.web_off_for_secret);
        assert_eq!(&c.rw_secret[..], b"s");
    }

    #[test]
    fn a_secret_that_is_not_utf8_is_kept_as_bytes() {
        use std::os::unix::ffi::OsStringExt;
        let args: Vec<String> = vec![];
        let raw = vec![b'x', 0xff, 0xfe];
        let env =
            |k: &str| (k == "DOOZER_RWSECRET").then(|| std::ffi::OsString::from_vec(raw.clone()));
        let c = match parse(&args, &env) {
            Ok(Command::Run(c)) => *c,
            other => panic!("{other:?}"),
        };
        assert_eq!(&c.rw_secret[..], &raw[..]);
        assert_eq!(c.web, None, "a secret is set: no viewer");
    }

    #[test]
    fn a_ro_secret_alone_is_refused() {
        let args: Vec<String> = vec![];
        let e = parse(&args, &|k| (k == "DOOZER_ROSECRET").then(|| "s".into()));
        assert!(matches!(e, Err(ConfigError(m)) if m.contains("DOOZER_RWSECRET")));
    }

    #[test]
    fn version_and_help() {
        assert_eq!(run(&["-v"]), Ok(Command::Version));
        assert!(matches!(run(&["-h"]), Ok(Command::Help(_))));
    }
}
