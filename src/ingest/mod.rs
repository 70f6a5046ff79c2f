//! The reference ingest: an RTMP/RTMPS server that records every stream key to one FLV file
//! across all its connections and sends Go Away or Reconnect Request on schedule or on
//! demand, only to publishers that announced support.
//!
//! It is the test peer of the publisher and an example for server operators of the server
//! side of a lossless move: let the successor publish the same key while the old connection
//! drains, and stitch the two at the switch keyframe.

mod connection;
mod recorder;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use recorder::Recorder;
pub use recorder::StreamStats;

use crate::media::Tag;

/// Which signal asks a publisher to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// RTMP message type 32 (needs `supportsGoAway`).
    GoAway,
    /// Enhanced RTMP `NetConnection.Connect.ReconnectRequest` (needs `capsEx` bit 0x01).
    ReconnectRequest,
}

impl std::str::FromStr for SignalKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "goaway" | "go-away" => Ok(Self::GoAway),
            "reconnect-request" | "reconnect" => Ok(Self::ReconnectRequest),
            other => Err(format!(
                "unknown signal \"{other}\" (goaway or reconnect-request)"
            )),
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Address to bind (port 0: any free port).
    pub addr: SocketAddr,
    /// TLS for rtmps://, if set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// How the ingest behaves.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Sockets to listen on; all share the recordings.
    pub listeners: Vec<ListenerConfig>,
    /// Directory for `<key>.flv` files.
    pub record_dir: PathBuf,
    /// Signal used by the schedule and by [`Ingest::signal_all`] without a kind.
    pub signal: SignalKind,
    /// Signal each publisher once, this long after it started publishing.
    pub signal_after: Option<Duration>,
    /// Signal each publisher every this long.
    pub signal_every: Option<Duration>,
    /// tcUrl to name in Reconnect Requests (absent: "same server").
    pub redirect: Option<String>,
    /// Refuse a second publisher of a live key even after signalling (as nginx-rtmp does),
    /// to exercise the publisher's break-before-make fallback.
    pub refuse_takeover: bool,
    /// Close a publisher's connection this long after signalling it, as a server going
    /// down before the publisher reached a keyframe would.
    pub close_after_signal: Option<Duration>,
    /// Drop each publisher's connection this long after it starts, without any signal: an
    /// unplanned restart, as publishers without Go Away live through today.
    pub drop_after: Option<Duration>,
    /// Close a connection that sends nothing for this long, so a publisher that vanished
    /// without closing does not hold its stream key forever.
    pub idle_timeout: Duration,
}

impl IngestConfig {
    /// One plain listener on `addr`, recording into `record_dir`, no scheduled signals.
    pub fn new(addr: SocketAddr, record_dir: PathBuf) -> Self {
        Self {
            listeners: vec![ListenerConfig { addr, tls: None }],
            record_dir,
            signal: SignalKind::GoAway,
            signal_after: None,
            signal_every: None,
            redirect: None,
            refuse_takeover: false,
            close_after_signal: None,
            drop_after: None,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// A request from the ingest to one connection's task.
#[derive(Debug, Clone)]
pub(crate) enum Control {
    Signal(SignalKind),
}

struct Publisher {
    conn: u64,
    signaled: bool,
    supports_go_away: bool,
    supports_reconnect: bool,
    control: mpsc::UnboundedSender<Control>,
}

struct StreamState {
    recorder: Recorder,
    publishers: Vec<Publisher>,
}

/// State shared by all connections.
pub(crate) struct Registry {
    config: IngestConfig,
    streams: Mutex<HashMap<String, StreamState>>,
}

/// What a connection told the registry about itself when asking to publish.
pub(crate) struct Claim {
    pub(crate) conn: u64,
    pub(crate) supports_go_away: bool,
    pub(crate) supports_reconnect: bool,
    pub(crate) control: mpsc::UnboundedSender<Control>,
}

impl Registry {
    fn streams(&self) -> MutexGuard<'_, HashMap<String, StreamState>> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides whether `claim` may publish `key`: yes if nobody does, or if every current
    /// publisher was asked to move (its successor takes over).
    pub(crate) fn claim(&self, key: &str, claim: Claim) -> Result<(), &'static str> {
        let mut streams = self.streams();
        let name = recorder::file_stem(key);
        if let Some(state) = streams.get_mut(&name) {
            let all_leaving = state.publishers.iter().all(|p| p.signaled);
            if !state.publishers.is_empty() && (!all_leaving || self.config.refuse_takeover) {
                return Err("Already publishing");
            }
        } else {
            let recorder = Recorder::create(&self.config.record_dir, key).map_err(|e| {
                log::error!("cannot create a recording for {name}: {e}");
                "Cannot record"
            })?;
            streams.insert(
                name.clone(),
                StreamState {
                    recorder,
                    publishers: Vec::new(),
                },
            );
        }
        let state = streams.get_mut(&name).ok_or("Cannot record")?;
        state.recorder.stats.connections += 1;
        state.publishers.push(Publisher {
            conn: claim.conn,
            signaled: false,
            supports_go_away: claim.supports_go_away,
            supports_reconnect: claim.supports_reconnect,
            control: claim.control,
        });
        Ok(())
    }

    pub(crate) fn record(&self, key: &str, conn: u64, tag: Tag, arrival: Instant) {
        let mut streams = self.streams();
        if let Some(state) = streams.get_mut(&recorder::file_stem(key)) {
            if let Err(e) = state.recorder.on_tag(conn, tag, arrival) {
                log::error!("recording {key}: {e}");
            }
        }
    }

    /// Connection `conn` stopped publishing `key` (closed or unpublished).
    pub(crate) fn release(&self, key: &str, conn: u64) {
        let mut streams = self.streams();
        if let Some(state) = streams.get_mut(&recorder::file_stem(key)) {
            state.publishers.retain(|p| p.conn != conn);
            if let Err(e) = state.recorder.on_end(conn) {
                log::error!("recording {key}: {e}");
            }
        }
    }

    /// Sends `kind` to every publisher of `key` (or of every key) that supports it and
    /// was not already asked; returns how many were signalled.
    pub(crate) fn signal(&self, key: Option<&str>, conn: Option<u64>, kind: SignalKind) -> usize {
        let mut streams = self.streams();
        let mut count = 0;
        for (name, state) in streams.iter_mut() {
            if key.is_some_and(|k| recorder::file_stem(k) != *name) {
                continue;
            }
            for p in &mut state.publishers {
                let supported = match kind {
                    SignalKind::GoAway => p.supports_go_away,
                    SignalKind::ReconnectRequest => p.supports_reconnect,
                };
                if p.signaled || !supported || conn.is_some_and(|c| c != p.conn) {
                    continue;
                }
                if p.control.send(Control::Signal(kind)).is_ok() {
                    p.signaled = true;
                    state.recorder.stats.signals_sent += 1;
                    count += 1;
                }
            }
        }
        count
    }
}

/// A running ingest.
pub struct Ingest {
    registry: Arc<Registry>,
    addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Ingest {
    /// Binds every listener and starts accepting publishers.
    pub async fn start(config: IngestConfig) -> io::Result<Self> {
        std::fs::create_dir_all(&config.record_dir)?;
        let listeners = config.listeners.clone();
        let registry = Arc::new(Registry {
            config,
            streams: Mutex::new(HashMap::new()),
        });
        let mut addrs = Vec::new();
        let mut tasks = Vec::new();
        let next_conn = Arc::new(std::sync::atomic::AtomicU64::new(1));
        for listener_config in listeners {
            let listener = TcpListener::bind(listener_config.addr).await.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen on {}: {e}", listener_config.addr),
                )
            })?;
            addrs.push(listener.local_addr()?);
            let registry = Arc::clone(&registry);
            let next_conn = Arc::clone(&next_conn);
            tasks.push(tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((tcp, peer)) => {
                            let conn = next_conn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let registry = Arc::clone(&registry);
                            let tls = listener_config.tls.clone();
                            tokio::spawn(connection::serve(tcp, peer, conn, tls, registry));
                        }
                        Err(e) => {
                            log::warn!("accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }));
        }
        Ok(Self {
            registry,
            addrs,
            tasks,
        })
    }

    /// The bound addresses, in listener order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Asks every supporting publisher to move, with `kind` (or the configured signal).
    pub fn signal_all(&self, kind: Option<SignalKind>) -> usize {
        self.registry
            .signal(None, None, kind.unwrap_or(self.registry.config.signal))
    }

    /// Statistics of every key seen, by file stem.
    pub fn stats(&self) -> HashMap<String, StreamStats> {
        self.registry
            .streams()
            .iter()
            .map(|(name, state)| (name.clone(), state.recorder.stats.clone()))
            .collect()
    }

    /// Publishers currently connected for `key`.
    pub fn publishers(&self, key: &str) -> usize {
        self.registry
            .streams()
            .get(&recorder::file_stem(key))
            .map_or(0, |s| s.publishers.len())
    }

    /// Stops accepting; existing connections end when their publishers leave.
    pub fn stop_listening(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.stop_listening();
    }
}
