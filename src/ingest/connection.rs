//! One publisher's connection to the ingest, driven by tokio over the sans-IO
//! [`ServerSession`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::{Claim, Control, Outage, Registry, SignalKind};
use crate::protocol::auth::Verdict;
use crate::protocol::{ServerEvent, ServerSession};
use crate::transport::io::{handshake_seed, sleep_until_some, Sending};
use crate::transport::stream::{tune_socket, Stream};
use crate::transport::LinkError;

const TLS_ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one accepted TCP connection until it closes, or until an outage (a change of
/// `outage`) drops it.
pub(crate) async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    conn: u64,
    tls: Option<Arc<rustls::ServerConfig>>,
    registry: Arc<Registry>,
    mut outage: Outage,
) {
    tune_socket(&tcp, Duration::from_secs(10));
    let stream = match tls {
        None => Stream::Tcp(tcp),
        Some(config) => {
            let accept = TlsAcceptor::from(config).accept(tcp);
            let accepted = tokio::select! {
                accepted = tokio::time::timeout(TLS_ACCEPT_TIMEOUT, accept) => accepted,
                Ok(()) = outage.changed() => {
                    log::info!("{peer}: connection {conn} dropped: ingest outage");
                    return;
                }
            };
            match accepted {
                Ok(Ok(stream)) => Stream::Tls(Box::new(stream.into())),
                Ok(Err(e)) => {
                    log::info!("{peer}: TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    log::info!("{peer}: TLS handshake timed out");
                    return;
                }
            }
        }
    };
    let mut connection = Connection {
        conn,
        registry,
        key: None,
        supports_go_away: false,
        supports_reconnect: false,
    };
    match connection.run(stream, outage).await {
        Ok(()) => log::info!("{peer}: connection {conn} closed"),
        Err(e) => log::info!("{peer}: connection {conn} ended: {e}"),
    }
    connection.release();
}

struct Connection {
    conn: u64,
    registry: Arc<Registry>,
    /// The key being published, once accepted.
    key: Option<String>,
    supports_go_away: bool,
    supports_reconnect: bool,
}

impl Connection {
    fn release(&mut self) {
        if let Some(key) = self.key.take() {
            self.registry.release(&key, self.conn);
        }
    }

    async fn run(&mut self, stream: Stream, mut outage: Outage) -> Result<(), LinkError> {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let (epoch, random) = handshake_seed();
        let mut session = ServerSession::new(epoch, &random);
        if self.registry.config.no_acknowledgements {
            session.never_acknowledge();
        }
        let (control_tx, mut control_rx) = mpsc::unbounded_channel();
        let mut input = BytesMut::with_capacity(64 * 1024);
        let mut next_signal = None;
        let mut close_at = None;
        let mut closing = false;
        let mut sending = Sending::default();
        let idle_timeout = self.registry.config.idle_timeout;
        let mut last_input = tokio::time::Instant::now();
        loop {
            if closing && !sending.pending(&session) {
                return Ok(());
            }
            tokio::select! {
                read = reader.read_buf(&mut input) => {
                    if read? == 0 {
                        return Ok(());
                    }
                    let arrival = Instant::now();
                    last_input = tokio::time::Instant::now();
                    session.handle_input(&input)?;
                    input.clear();
                    while let Some(event) = session.poll_event() {
                        match event {
                            ServerEvent::ConnectRequested { app, query, supports_go_away, caps_ex, .. } => {
                                if self.on_connect(&mut session, &app, query.as_deref()) {
                                    log::info!(
                                        "connection {}: connect app={app} supportsGoAway={supports_go_away} capsEx={caps_ex}",
                                        self.conn
                                    );
                                    self.supports_go_away = supports_go_away;
                                    self.supports_reconnect = caps_ex & 1 != 0;
                                } else {
                                    closing = true;
                                }
                            }
                            ServerEvent::PublishRequested { key } => {
                                let claim = Claim {
                                    conn: self.conn,
                                    supports_go_away: self.supports_go_away,
                                    supports_reconnect: self.supports_reconnect,
                                    control: control_tx.clone(),
                                };
                                match self.registry.claim(&key, claim) {
                                    Ok(()) => {
                                        log::info!("connection {}: publishing", self.conn);
                                        session.accept_publish();
                                        next_signal = self.first_signal_at();
                                        close_at = self.registry.config.drop_after.map(|d| tokio::time::Instant::now() + d);
                                        self.key = Some(key);
                                    }
                                    Err(reason) => {
                                        log::info!("connection {}: publish refused: {reason}", self.conn);
                                        session.reject_publish("NetStream.Publish.BadName", reason);
                                        closing = true;
                                    }
                                }
                            }
                            ServerEvent::Media(tag) => {
                                if let Some(key) = &self.key {
                                    self.registry.record(key, self.conn, tag, arrival);
                                }
                            }
                            ServerEvent::Unpublished => self.release(),
                        }
                    }
                }
                sent = sending.step(&mut writer, &session), if sending.pending(&session) => {
                    sending.done(sent?, &mut session);
                }
                Some(control) = control_rx.recv() => match control {
                    Control::Signal(kind) => {
                        self.send_signal(&mut session, kind);
                        if let Some(delay) = self.registry.config.close_after_signal {
                            close_at = Some(tokio::time::Instant::now() + delay);
                        }
                    }
                    Control::Replaced => {
                        log::info!("connection {}: closed: replaced by a new publisher", self.conn);
                        return Ok(());
                    }
                },
                Ok(()) = outage.changed() => {
                    log::info!("connection {}: dropped: ingest outage", self.conn);
                    return Ok(());
                }
                () = tokio::time::sleep_until(last_input + idle_timeout) => {
                    return Err(LinkError::Stalled("the publisher sent nothing"));
                }
                () = sleep_until_some(close_at), if close_at.is_some() => {
                    log::info!("connection {}: closing as configured", self.conn);
                    return Ok(());
                }
                () = sleep_until_some(next_signal), if next_signal.is_some() => {
                    next_signal = self.registry.config.signal_every.map(|every| tokio::time::Instant::now() + every);
                    if let Some(key) = &self.key {
                        self.registry.signal(Some(key), Some(self.conn), self.registry.config.signal);
                    }
                }
            }
        }
    }

    /// Accepts or refuses `connect` (authentication); false if refused.
    fn on_connect(&self, session: &mut ServerSession, app: &str, query: Option<&str>) -> bool {
        match self.registry.authenticate(app, query) {
            None => {}
            Some(Ok(Verdict::Accept { user })) => {
                log::info!("connection {}: authenticated as \"{user}\"", self.conn);
            }
            Some(Ok(Verdict::Refuse {
                description,
                reason,
            })) => {
                log::info!("connection {}: connect refused: {reason}", self.conn);
                session.reject_connect(&description);
                return false;
            }
            Some(Err(e)) => {
                log::error!(
                    "connection {}: no OS randomness for an authentication challenge: {e}",
                    self.conn
                );
                session.reject_connect("Server error: cannot authenticate");
                return false;
            }
        }
        session.accept_connect();
        true
    }

    fn first_signal_at(&self) -> Option<tokio::time::Instant> {
        let config = &self.registry.config;
        config
            .signal_after
            .or(config.signal_every)
            .map(|delay| tokio::time::Instant::now() + delay)
    }

    fn send_signal(&self, session: &mut ServerSession, kind: SignalKind) {
        log::info!("connection {}: sending {kind:?}", self.conn);
        match kind {
            SignalKind::GoAway => session.send_go_away(),
            SignalKind::ReconnectRequest => session.send_reconnect_request(
                self.registry.config.redirect.as_deref(),
                "ingest maintenance: please reconnect",
            ),
        }
    }
}
