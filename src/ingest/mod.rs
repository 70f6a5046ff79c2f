//! The reference ingest: an RTMP/RTMPS server that records every stream key to one FLV file
//! across all its connections and sends Go Away or Reconnect Request on schedule or on
//! demand, only to publishers that announced support.
//!
//! It is the test peer of the publisher and an example for server operators of the server
//! side of a lossless move: let the successor publish the same key while the old connection
//! drains, and stitch the two at the switch keyframe. With [`IngestConfig::auth`] it asks
//! publishers for a username and password as Adobe Media Server does (`authmod=adobe`, or
//! Limelight's `llnw`), on every connection, moves included.

mod connection;
mod recorder;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use recorder::Recorder;
pub use recorder::StreamStats;

use crate::media::Tag;
use crate::protocol::auth::{AuthMethod, Credentials, ServerAuth, Verdict, SERVER_RANDOM_LEN};

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

/// Publisher authentication: the scheme to ask for and the users to accept.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `authmod` to ask for.
    pub method: AuthMethod,
    /// Accepted usernames and passwords.
    pub users: Vec<Credentials>,
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
    /// A publisher that has sent no media for this long gives way to a new publisher of its
    /// key (`None`: only after a signal). A live stream sends media many times a second;
    /// one that went quiet lost its path, and the new connection is almost always the same
    /// encoder coming back by another route (a changed network, a path that went silent).
    pub takeover_after_silence: Option<Duration>,
    /// Require publishers to authenticate (`None`: anyone may publish).
    pub auth: Option<AuthConfig>,
    /// Never send Acknowledgement (some servers do not).
    pub no_acknowledgements: bool,
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
            takeover_after_silence: Some(Duration::from_millis(500)),
            auth: None,
            no_acknowledgements: false,
        }
    }
}

/// A request from the ingest to one connection's task.
#[derive(Debug, Clone)]
pub(crate) enum Control {
    Signal(SignalKind),
    /// A new publisher of the key took over from this silent one: close.
    Replaced,
}

struct Publisher {
    conn: u64,
    signaled: bool,
    /// When its last media arrived (or it started publishing).
    last_media: Instant,
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
    /// The challenges sent, shared because each answer arrives on a new connection.
    auth: Option<Mutex<ServerAuth>>,
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

    /// Decides a `connect` to `app` with `query` if publishers must authenticate (`None`:
    /// they need not). Fails only without OS randomness for a challenge.
    pub(crate) fn authenticate(
        &self,
        app: &str,
        query: Option<&str>,
    ) -> Option<Result<Verdict, getrandom::Error>> {
        let auth = self.auth.as_ref()?;
        let mut random = [0u8; SERVER_RANDOM_LEN];
        if let Err(e) = getrandom::fill(&mut random) {
            return Some(Err(e));
        }
        let mut auth = auth.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(Ok(auth.check(app, query, &random)))
    }

    /// Decides whether `claim` may publish `key`: yes if nobody does, or if every current
    /// publisher was asked to move (its successor takes over) or has gone silent (it is
    /// closed).
    pub(crate) fn claim(&self, key: &str, claim: Claim) -> Result<(), &'static str> {
        let mut streams = self.streams();
        let name = recorder::file_stem(key);
        if let Some(state) = streams.get_mut(&name) {
            let now = Instant::now();
            let silent = |p: &Publisher| {
                self.config
                    .takeover_after_silence
                    .is_some_and(|after| now.saturating_duration_since(p.last_media) >= after)
            };
            let all_leaving = state.publishers.iter().all(|p| p.signaled || silent(p));
            if !state.publishers.is_empty() && (!all_leaving || self.config.refuse_takeover) {
                return Err("Already publishing");
            }
            for p in state.publishers.iter().filter(|p| !p.signaled) {
                log::info!(
                    "connection {}: silent for {} ms, replaced by connection {}",
                    p.conn,
                    now.saturating_duration_since(p.last_media).as_millis(),
                    claim.conn
                );
                let _ = p.control.send(Control::Replaced);
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
            last_media: Instant::now(),
            supports_go_away: claim.supports_go_away,
            supports_reconnect: claim.supports_reconnect,
            control: claim.control,
        });
        Ok(())
    }

    pub(crate) fn record(&self, key: &str, conn: u64, tag: Tag, arrival: Instant) {
        let mut streams = self.streams();
        if let Some(state) = streams.get_mut(&recorder::file_stem(key)) {
            if let Some(p) = state.publishers.iter_mut().find(|p| p.conn == conn) {
                p.last_media = arrival;
            }
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

/// When the current outage ordered by [`Ingest::interrupt`] ends (`None`: no outage yet).
/// Every change ends the connections accepted before it; see [`accept_loop`].
pub(crate) type Outage = watch::Receiver<Option<Instant>>;

/// A running ingest.
pub struct Ingest {
    registry: Arc<Registry>,
    addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    outage: watch::Sender<Option<Instant>>,
}

impl Ingest {
    /// Binds every listener and starts accepting publishers.
    pub async fn start(config: IngestConfig) -> io::Result<Self> {
        std::fs::create_dir_all(&config.record_dir)?;
        let listeners = config.listeners.clone();
        let auth = config
            .auth
            .as_ref()
            .map(|a| Mutex::new(ServerAuth::new(a.method, a.users.clone())));
        let registry = Arc::new(Registry {
            config,
            streams: Mutex::new(HashMap::new()),
            auth,
        });
        let (outage, _) = watch::channel(None);
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
            tasks.push(tokio::spawn(accept_loop(
                listener,
                listener_config,
                Arc::clone(&registry),
                Arc::clone(&next_conn),
                outage.subscribe(),
            )));
        }
        Ok(Self {
            registry,
            addrs,
            tasks,
            outage,
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

    /// An unplanned outage, as a server crash or restart: drops every current connection at
    /// once (no signal, no goodbye), closes the listening sockets so that connecting is
    /// refused, and listens again on the same addresses after `duration`.
    ///
    /// Recordings survive: a publisher that comes back continues the same `<key>.flv` (with
    /// the usual stitching and duplicate skipping), so a test sees exactly what a publisher
    /// lost to the outage and nothing the ingest lost. Returns at once; a second call during
    /// an outage drops the connections made since and extends it if it ends later. If an
    /// address cannot be bound again (taken by another program), the ingest keeps retrying
    /// and logs why.
    pub fn interrupt(&self, duration: Duration) {
        let until = Instant::now() + duration;
        log::info!(
            "ingest outage for {:.1}s: dropping every connection, refusing new ones",
            duration.as_secs_f32()
        );
        self.outage
            .send_modify(|end| *end = Some(end.map_or(until, |end| end.max(until))));
    }

    /// Stops accepting; existing connections end when their publishers leave.
    pub fn stop_listening(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Accepts connections on one listener; during an outage, closes it (connecting is refused,
/// as with a server that is down) and binds the same address again when the outage ends.
///
/// Each connection gets a clone of this loop's view of the outage: an outage ordered before
/// the loop saw it (even one racing with the accept) still ends a connection accepted in the
/// meantime, because the clone has not seen that change either.
async fn accept_loop(
    mut listener: TcpListener,
    config: ListenerConfig,
    registry: Arc<Registry>,
    next_conn: Arc<std::sync::atomic::AtomicU64>,
    mut outage: Outage,
) {
    let mut addr = config.addr;
    if let Ok(bound) = listener.local_addr() {
        addr = bound;
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let conn = next_conn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::spawn(connection::serve(
                        tcp,
                        peer,
                        conn,
                        config.tls.clone(),
                        Arc::clone(&registry),
                        outage.clone(),
                    ));
                }
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Ok(()) = outage.changed() => {
                drop(listener);
                listener = reopen(addr, &mut outage).await;
            }
        }
    }
}

/// Waits for the outage to end (following extensions), then binds `addr` again, retrying
/// while it is taken.
async fn reopen(addr: SocketAddr, outage: &mut Outage) -> TcpListener {
    let mut warned = false;
    loop {
        let until = *outage.borrow_and_update();
        if let Some(until) = until {
            tokio::select! {
                () = tokio::time::sleep_until(until.into()) => {}
                Ok(()) = outage.changed() => continue,
            }
        }
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                log::info!("ingest outage over: listening on {addr} again");
                return listener;
            }
            Err(e) => {
                if !warned {
                    log::warn!("cannot listen on {addr} again after the outage (retrying): {e}");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.stop_listening();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::flv::FlvReader;
    use crate::protocol::{Event, PublishConfig, Publisher};
    use crate::transport::io::flush_all;
    use bytes::Bytes;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    /// A bare publisher over the sans-IO [`Publisher`], so that this test sees the ingest's
    /// behaviour and not the session's reconnect logic.
    struct TestPublisher {
        tcp: TcpStream,
        session: Publisher,
    }

    impl TestPublisher {
        async fn connect(addr: SocketAddr, key: &str) -> io::Result<Self> {
            let tcp = TcpStream::connect(addr).await?;
            let config = PublishConfig::new("live", &format!("rtmp://{addr}/live"), key);
            let mut this = Self {
                tcp,
                session: Publisher::new(config, 0, &[7; 64]),
            };
            let mut input = Vec::with_capacity(64 * 1024);
            loop {
                flush_all(&mut this.tcp, &mut this.session).await?;
                while let Some(event) = this.session.poll_event() {
                    if event == Event::Publishing {
                        return Ok(this);
                    }
                }
                input.clear();
                if this.tcp.read_buf(&mut input).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                this.session
                    .handle_input(&input)
                    .map_err(io::Error::other)?;
            }
        }

        async fn send(&mut self, tags: &[Tag]) -> io::Result<()> {
            for tag in tags {
                self.session.send_tag(tag).map_err(io::Error::other)?;
            }
            flush_all(&mut self.tcp, &mut self.session).await
        }

        /// Whether the server closed the connection within `within`.
        async fn closed_within(&mut self, within: Duration) -> bool {
            let mut sink = Vec::new();
            let closed = async {
                loop {
                    sink.clear();
                    match self.tcp.read_buf(&mut sink).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            };
            tokio::time::timeout(within, closed).await.is_ok()
        }
    }

    /// An AVC sequence header, then a keyframe and inter frames at 30 fps from `from` ms.
    fn video(from: u32, count: u32, header: bool) -> Vec<Tag> {
        let mut tags = Vec::new();
        if header {
            tags.push(Tag::video(
                0,
                Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64]),
            ));
        }
        for n in 0..count {
            let first = if n == 0 { 0x17 } else { 0x27 };
            let ts = from + n * 33;
            tags.push(Tag::video(
                ts,
                Bytes::from(vec![first, 1, 0, 0, 0, n as u8]),
            ));
        }
        tags
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn an_outage_drops_and_refuses_then_resumes_the_same_recording() {
        let dir = tempfile::tempdir().unwrap();
        let config = IngestConfig::new(([127, 0, 0, 1], 0).into(), dir.path().into());
        let ingest = Ingest::start(config).await.unwrap();
        let addr = ingest.local_addrs()[0];
        let frames = |ingest: &Ingest| ingest.stats().get("k").map_or(0, |s| s.frames_received);

        let mut first = TestPublisher::connect(addr, "k").await.unwrap();
        first.send(&video(0, 10, true)).await.unwrap();
        wait_until("the first frames are recorded", || frames(&ingest) == 10).await;

        let outage = Duration::from_millis(600);
        let interrupted = Instant::now();
        ingest.interrupt(outage);
        assert!(
            first.closed_within(Duration::from_secs(2)).await,
            "the outage must drop the publisher's connection"
        );
        wait_until("the publisher is released", || ingest.publishers("k") == 0).await;
        // The listener closes as soon as its task sees the outage: connecting is refused.
        let mut refused = false;
        while !refused && interrupted.elapsed() < outage / 2 {
            match TcpStream::connect(addr).await {
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
                    refused = true;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        assert!(refused, "connecting during the outage must be refused");

        // The same address accepts again once the outage is over, not before.
        let second = loop {
            match TestPublisher::connect(addr, "k").await {
                Ok(publisher) => break publisher,
                Err(e) => {
                    assert!(interrupted.elapsed() < Duration::from_secs(5), "{e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        assert!(
            interrupted.elapsed() >= outage,
            "accepted after {:?}, during the {outage:?} outage",
            interrupted.elapsed()
        );
        let mut second = second;
        second.send(&video(330, 10, true)).await.unwrap();
        wait_until("the resumed frames are recorded", || frames(&ingest) == 20).await;
        drop(second);
        wait_until("the second publisher leaves", || {
            ingest.publishers("k") == 0
        })
        .await;

        let stats = &ingest.stats()["k"];
        assert_eq!(stats.connections, 2);
        assert_eq!(stats.duplicates, 0);
        assert_eq!(stats.first_timestamps, [0, 330]);
        assert!(stats.path.ends_with("k.flv"), "{}", stats.path.display());
        let file = std::fs::File::open(&stats.path).unwrap();
        let recorded: Vec<u32> = FlvReader::new(file)
            .unwrap()
            .map(|tag| tag.unwrap())
            .filter(Tag::is_frame)
            .map(|tag| tag.timestamp)
            .collect();
        let expected: Vec<u32> = (0..20).map(|n| n * 33).collect();
        assert_eq!(
            recorded, expected,
            "one file, nothing lost, nothing repeated"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
