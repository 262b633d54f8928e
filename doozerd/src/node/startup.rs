//! Start-up: reading the TLS files, binding the listeners (a busy port is
//! a one-line error), and joining a cluster before the loop runs:
//! attaching to `-a`, booting through the name service (`-b`), or seeding
//! a new cluster. Attaching at start-up reads the first copy of the store
//! before any client is served; booting may wait up to a minute for nodes
//! started together, plus `-timeout` when the name service's records of
//! the cluster go unanswered (docs/cluster.md#stale-name-service-records).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Interest, Poll, Token, Waker};

use super::conns::Conns;
use super::disk::Disk;
use super::follow::Follower;
use super::restore;
use super::stats::{self, random_u64};
use super::{Clock, Node, NodeError, ATTACHED, CLIENT_LISTENER, PEER_SOCKET, WEB_LISTENER};
use crate::attach::{Attach, Followed};
use crate::boot::{Boot, BootError, Plan, Registrar, Silence};
use crate::cluster::NodeInfo;
use crate::config::Config;
use crate::replica::{BackupTree, ClusterConfig, Output, Replica, ReplicaConfig, Secrets};
use crate::storage::{DataDir, Meta, Opened, Recovered, StorageError};
use crate::tls::NodeTls;
use crate::transport::{PeerKey, PeerTransport};

const LISTEN_HINT: &str = "pick another with -l ADDR";

impl Node {
    /// Binds the listeners and joins a cluster (attaching, booting through
    /// the name service, or seeding a new one); does not serve yet.
    pub fn start(config: &Config, mut info: NodeInfo) -> Result<Node, NodeError> {
        // Files are read before anything is bound or attached.
        let tls = match &config.tls {
            Some(files) => Some(NodeTls::load(files).map_err(NodeError::Tls)?),
            None => None,
        };
        // The data directory first: it refuses -restore over a store.
        let (mut replica, disk, restarted) = replica_and_disk(config, &mut info)?;
        // A backup is read and checked whole before anything is bound.
        let restored = match &config.restore {
            Some(file) => Some(restore::read_backup(file, &config.cluster_name)?),
            None => None,
        };
        let poll = Poll::new()?;
        let listener = listen(
            &poll,
            config.listen,
            CLIENT_LISTENER,
            "clients",
            LISTEN_HINT,
        )?;
        // Peers talk UDP on the same host:port; binding it now reserves the
        // port and catches a busy one at start-up.
        // With a secret, peer datagrams are sealed with a key derived from
        // it: only nodes sharing the secret take part in consensus.
        let peer_key = PeerKey::from_secret(&config.rw_secret);
        let mut peers =
            PeerTransport::bind(config.listen, peer_key).map_err(|source| NodeError::Bind {
                addr: config.listen,
                what: "peers (UDP)",
                source,
                hint: LISTEN_HINT,
            })?;
        poll.registry()
            .register(peers.socket_mut(), PEER_SOCKET, Interest::READABLE)?;
        let web_listener = match config.web {
            None => None,
            Some(addr) => Some(listen(
                &poll,
                addr,
                WEB_LISTENER,
                "web viewer",
                "pick another with -w ADDR, or turn the viewer off with -w false",
            )?),
        };
        let attach = Attach {
            cluster: config.cluster_name.clone(),
            info: info.clone(),
            secret: config.rw_secret.clone(),
            tls: tls.as_ref().map(|t| t.client.clone()),
        };
        let waker = Arc::new(Waker::new(poll.registry(), ATTACHED)?);
        let boot = booting(config, &attach);
        let clock = Clock::start();
        let (followed, attach_addrs) = if restarted {
            // Back from the data directory: a CAL goes on at once; a slave
            // attaches again from the loop (to the CALs its store names,
            // then -a), without blocking start-up.
            (None, config.attach.clone())
        } else {
            join(config, &attach, boot.as_ref(), &mut replica, restored)?
        };
        if !restarted {
            log_joined(config, followed.is_some(), &replica);
        }
        let mut follower = Follower::new(
            &poll,
            followed,
            attach_addrs,
            attach,
            waker,
            config.pulse_ms,
        )?;
        if restarted && !replica.is_cal() {
            follower.attach_soon();
        }
        let registrar = match boot {
            Some(b) => Some(Registrar::spawn(b)?),
            None => None,
        };
        let (max_clients, max_web) = connection_limits();
        let conns = Conns::new(
            tls.map(|t| t.server),
            replica.store().rev(),
            max_clients,
            max_web,
        );
        // From here on SIGTERM and SIGINT are events of the loop.
        let leave = super::leave::Leave::new(&poll, super::SIGNALS)?;
        Ok(Node {
            poll,
            clock,
            listener,
            // (Before `web_listener` moves.)
            viewer: super::Viewer::new(config, web_listener.is_some()),
            spin: std::time::Duration::from_micros(config.spin_us),
            spin_wakes: 0,
            web_listener,
            peers,
            replica,
            out: Output::default(),
            deadline_ms: None,
            disk,
            leave,
            conns,
            follower,
            registrar,
            ns_cal: false,
            ns_seed: None,
            node_id: info.id,
            cluster: config.cluster_name.clone(),
        })
    }
}

/// Booting through the name service, with `-b`.
fn booting(config: &Config, attach: &Attach) -> Option<Boot> {
    config.boot.as_ref().map(|uri| Boot {
        uri: uri.clone(),
        cluster: config.cluster_name.clone(),
        info: attach.info.clone(),
        attach: attach.clone(),
        timeout: Duration::from_millis(config.timeout_ms),
    })
}

/// Says how this node joined: seeded, or attached.
fn log_joined(config: &Config, attached: bool, replica: &Replica) {
    match attached {
        false => log::info!(
            "seeded a new cluster {:?}; the only CAL",
            config.cluster_name
        ),
        true => log::info!(
            "attached to cluster {:?} at rev {}; a slave",
            config.cluster_name,
            replica.store().rev()
        ),
    }
}

/// The replica, and the data directory with `-d` (which says who this
/// node is, and may hold a store); true if the replica came back from it
/// (a restart: no joining).
fn replica_and_disk(
    config: &Config,
    info: &mut NodeInfo,
) -> Result<(Replica, Option<Disk>, bool), NodeError> {
    let Some(dir) = &config.data_dir else {
        return Ok((Replica::new(replica_config(config, info)?), None, false));
    };
    let started = Instant::now();
    let (dir, recovered) = open_data_dir(dir, config, info)?;
    let read_ms = started.elapsed().as_millis();
    let cfg = replica_config(config, info)?;
    let (replica, restarted) = recover(config, cfg, recovered)?;
    if restarted {
        // What an operator waits for at start-up, and where it goes.
        log::info!(
            "data directory read in {read_ms} ms, store rebuilt in {} ms",
            started.elapsed().as_millis() - read_ms
        );
    }
    Ok((replica, Some(Disk::new(dir)), restarted))
}

/// Opens `-d DIR`: a fresh directory becomes this node's (its id, the
/// cluster's name); an existing one gives this node its id back, and is
/// refused if it belongs to another cluster or `-restore` would seed over
/// its store.
fn open_data_dir(
    dir: &Path,
    config: &Config,
    info: &mut NodeInfo,
) -> Result<(DataDir, Option<Recovered>), NodeError> {
    let err = |e: StorageError| NodeError::DataDir(e.to_string());
    match DataDir::open(dir).map_err(err)? {
        Opened::Fresh(fresh) => {
            let meta = Meta {
                id: info.id.clone(),
                cluster: config.cluster_name.clone(),
            };
            log::info!("data directory {}: new, node {}", dir.display(), meta.id);
            Ok((fresh.init(&meta).map_err(err)?, None))
        }
        Opened::Existing(data, recovered) => {
            let meta = data.meta().clone();
            if meta.cluster != config.cluster_name {
                return Err(NodeError::DataDir(format!(
                    "{} belongs to cluster {:?}, not -c {:?}",
                    dir.display(),
                    meta.cluster,
                    config.cluster_name
                )));
            }
            let holds_store = recovered.snapshot.is_some() || !recovered.records.is_empty();
            if holds_store && config.restore.is_some() {
                return Err(NodeError::DataDir(format!(
                    "{} already holds a store: -restore seeds a new cluster into an empty                      directory only",
                    dir.display()
                )));
            }
            if let Some(torn) = &recovered.torn {
                log::warn!(
                    "data directory: a record torn by a crash cut off at the end of {}: \
                     offset {}, {} bytes dropped (never synced, so never acknowledged)",
                    torn.file.display(),
                    torn.offset,
                    torn.bytes_dropped
                );
            }
            info.id = meta.id;
            Ok((data, Some(recovered)))
        }
    }
}

/// The replica as the data directory left it; true if it holds a store
/// (a restart), false if the node must join as a new one would.
fn recover(
    config: &Config,
    cfg: ReplicaConfig,
    recovered: Option<Recovered>,
) -> Result<(Replica, bool), NodeError> {
    let Some(mut rec) = recovered else {
        return Ok((Replica::new(cfg), false));
    };
    let dir = config
        .data_dir
        .as_deref()
        .unwrap_or(Path::new(""))
        .display();
    let restored = rec
        .take_restored()
        .map_err(|e| NodeError::DataDir(e.to_string()))?;
    let restarted = restored.is_some() || !rec.records.is_empty();
    let replica = Replica::recover(cfg, restored, &rec.records)
        .map_err(|e| NodeError::DataDir(format!("{dir}: {e}")))?;
    if restarted {
        log::info!(
            "data directory {dir}: store back at rev {} ({} records after the snapshot)",
            replica.store().rev(),
            rec.records.len()
        );
    }
    Ok((replica, restarted))
}

/// Most client connections open at once, whatever the descriptors allow.
pub const MAX_CLIENTS: usize = 20_000;
/// Most web connections open at once.
pub const MAX_WEB: usize = 4_096;
/// Descriptors kept for everything but connections: listeners, the peer
/// socket, the follow stream, attach and name-service connections, files.
const RESERVED_FDS: usize = 64;

/// How many client and web connections this process may have open: its
/// descriptor limit (the soft one raised to the hard one first), less a
/// reserve, split so web clients can never take the descriptors clients
/// need (at most an eighth for the web).
fn connection_limits() -> (usize, usize) {
    let fds = stats::raise_fd_limit();
    let usable = fds.saturating_sub(RESERVED_FDS).max(16);
    let web = (usable / 8).clamp(8, MAX_WEB);
    let clients = (usable - web.min(usable)).clamp(8, MAX_CLIENTS);
    log::debug!("descriptor limit {fds}: up to {clients} client and {web} web connections");
    (clients, web)
}

/// A TCP listener on `addr`, registered under `token`; `what` and `hint`
/// make the error of a busy address say which flag to change.
fn listen(
    poll: &Poll,
    addr: SocketAddr,
    token: Token,
    what: &'static str,
    hint: &'static str,
) -> Result<TcpListener, NodeError> {
    let mut l = TcpListener::bind(addr).map_err(|source| NodeError::Bind {
        addr,
        what,
        source,
        hint,
    })?;
    poll.registry()
        .register(&mut l, token, Interest::READABLE)?;
    Ok(l)
}

/// The replica's settings, from the flags.
fn replica_config(config: &Config, info: &NodeInfo) -> Result<ReplicaConfig, NodeError> {
    Ok(ReplicaConfig {
        self_id: info.id.clone(),
        secrets: Secrets {
            rw: config.rw_secret.clone(),
            ro: config.ro_secret.clone(),
        },
        history_revs: config.history_revs,
        cluster: ClusterConfig {
            fill_ms: config.fill_ms,
            timeout_ms: config.timeout_ms,
            pulse_ms: config.pulse_ms,
            seed: random_u64()?,
            ..ClusterConfig::default()
        },
        durable: config.data_dir.is_some(),
    })
}

/// How long start-up keeps trying the name service (`-b`) before it gives
/// up: nodes started at once may find each other's advertisements before
/// the seed serves. Records nobody answers are removed after `-timeout`
/// (docs/cluster.md#stale-name-service-records), which this deadline
/// comes on top of.
const BOOT_DEADLINE: Duration = Duration::from_secs(60);

/// Joins a cluster at start-up: seeds a new cluster from a backup (if
/// `-restore` gave one), else attaches to `-a` (if given), else boots
/// through the name service (if given), else seeds a new cluster. Returns
/// the stream to follow (`None`: this node seeded) and the members to
/// re-attach to later.
fn join(
    config: &Config,
    attach: &Attach,
    boot: Option<&Boot>,
    replica: &mut Replica,
    restored: Option<BackupTree>,
) -> Result<(Option<Followed>, Vec<SocketAddr>), NodeError> {
    if let Some(tree) = restored {
        // The flags refuse -restore with -a or -b: always a new cluster.
        replica.seed_restored(&config.cluster_name, &attach.info, tree);
        return Ok((None, Vec::new()));
    }
    if !config.attach.is_empty() {
        replica.start_following();
        match attach.first_of(&config.attach, replica) {
            Ok(f) => return Ok((Some(f), config.attach.clone())),
            Err(e) if boot.is_none() => return Err(e.into()),
            Err(e) => log::warn!("cannot attach to -a: {e}; trying the name service"),
        }
    }
    let Some(boot) = boot else {
        replica.seed(&config.cluster_name, &attach.info);
        return Ok((None, Vec::new()));
    };
    let failed = |why: String| NodeError::Boot {
        from: config.boot_from,
        uri: boot.uri.to_string(),
        why,
    };
    let deadline = Instant::now() + BOOT_DEADLINE + boot.timeout;
    let mut pause = Duration::from_millis(50);
    let mut silence = Silence::default();
    let mut last_why = String::new();
    loop {
        let why = match boot.plan(&mut silence) {
            Ok(Plan::Seed) => {
                replica.seed_booted(&config.cluster_name, &attach.info);
                return Ok((None, Vec::new()));
            }
            Ok(Plan::Attach(addrs)) => {
                replica.start_following();
                match attach.first_of(&addrs, replica) {
                    Ok(f) => return Ok((Some(f), addrs)),
                    Err(e) => e.to_string(),
                }
            }
            // Nothing answers there: say so now rather than in a minute.
            Err(BootError::NameService(e)) if e.is_connection_error() => {
                return Err(failed(e.to_string()))
            }
            // Another node moved first: look again at once.
            Err(BootError::Changed(_)) if Instant::now() < deadline => continue,
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(failed(why));
        }
        // Nodes started together: the seed may not serve yet. Said once
        // per reason, not every pause.
        if why != last_why {
            log::info!("boot: {why}; trying again");
            last_why = why;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
