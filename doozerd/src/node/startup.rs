//! Start-up: reading the TLS files, binding the listeners (a busy port is
//! a one-line error), and joining a cluster before the loop runs:
//! attaching to `-a`, booting through the name service (`-b`), or seeding
//! a new cluster. Attaching at start-up reads the first copy of the store
//! before any client is served; booting may wait up to a minute for nodes
//! started together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Interest, Poll, Token, Waker};

use super::conns::Conns;
use super::follow::Follower;
use super::restore;
use super::stats::{self, random_u64};
use super::{Clock, Node, NodeError, ATTACHED, CLIENT_LISTENER, PEER_SOCKET, WEB_LISTENER};
use crate::attach::{Attach, Followed};
use crate::boot::{Boot, BootError, Plan, Registrar};
use crate::cluster::NodeInfo;
use crate::config::Config;
use crate::replica::{BackupTree, ClusterConfig, Output, Replica, ReplicaConfig, Secrets};
use crate::tls::NodeTls;
use crate::transport::{PeerKey, PeerTransport};

const LISTEN_HINT: &str = "pick another with -l ADDR";

impl Node {
    /// Binds the listeners and joins a cluster (attaching, booting through
    /// the name service, or seeding a new one); does not serve yet.
    pub fn start(config: &Config, info: NodeInfo) -> Result<Node, NodeError> {
        // Files are read before anything is bound or attached.
        let tls = match &config.tls {
            Some(files) => Some(NodeTls::load(files).map_err(NodeError::Tls)?),
            None => None,
        };
        // lead: -d — with -restore, refuse a DIR that already holds a
        // store here, before the backup is read (SPEC §8).
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
        let mut replica = Replica::new(replica_config(config, &info)?);
        let attach = Attach {
            cluster: config.cluster_name.clone(),
            info: info.clone(),
            secret: config.rw_secret.clone(),
            tls: tls.as_ref().map(|t| t.client.clone()),
        };
        let waker = Arc::new(Waker::new(poll.registry(), ATTACHED)?);
        let boot = config.boot.as_ref().map(|uri| Boot {
            uri: uri.clone(),
            cluster: config.cluster_name.clone(),
            info: info.clone(),
        });
        let clock = Clock::start();
        let (followed, attach_addrs) =
            join(config, &attach, boot.as_ref(), &mut replica, restored)?;
        match &followed {
            None => log::info!(
                "seeded a new cluster {:?}; the only CAL",
                config.cluster_name
            ),
            Some(_) => log::info!(
                "attached to cluster {:?} at rev {}; a slave",
                config.cluster_name,
                replica.store().rev()
            ),
        }
        let follower = Follower::new(
            &poll,
            followed,
            attach_addrs,
            attach,
            waker,
            config.pulse_ms,
        )?;
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
        Ok(Node {
            poll,
            clock,
            listener,
            web_listener,
            peers,
            replica,
            out: Output::default(),
            deadline_ms: None,
            conns,
            follower,
            registrar,
            ns_cal: false,
            node_id: info.id,
            cluster: config.cluster_name.clone(),
        })
    }
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
/// the seed serves.
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
        uri: boot.uri.to_string(),
        why,
    };
    let deadline = Instant::now() + BOOT_DEADLINE;
    let mut pause = Duration::from_millis(50);
    loop {
        let why = match boot.plan() {
            Ok(Plan::Seed) => {
                replica.seed(&config.cluster_name, &attach.info);
                return Ok((None, Vec::new()));
            }
            Ok(Plan::Attach(addrs)) => {
                replica.start_following();
                match attach.first_of(&addrs, replica) {
                    Ok(f) => return Ok((Some(f), addrs)),
                    Err(e) => e.to_string(),
                }
            }
            Err(e @ BootError::Orphaned { .. }) => return Err(failed(e.to_string())),
            // Nothing answers there: say so now rather than in a minute.
            Err(BootError::NameService(e)) if e.is_connection_error() => {
                return Err(failed(e.to_string()))
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(failed(why));
        }
        // Nodes started together: the seed may not serve yet.
        log::info!("boot: {why}; trying again");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
