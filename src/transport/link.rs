//! One publishing connection driven by tokio: [`establish`] runs the handshake and the
//! publish sequence, [`Link`] then streams tags on its own task and reports what the server
//! says and how much of the stream it has provably received.
//!
//! The link reads the clock (write stalls, acknowledgement stalls); the state machine below
//! it does not.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};

use super::io::{flush_all, handshake_seed, sleep_until_some, Sending, Sent};
use super::route;
use super::stream::{dial, LocalEnd, Stream};
use super::tcp_info::{delivery_stats, DeliveryStats};
use super::url::RtmpUrl;
use super::LinkError;
use crate::media::Tag;
use crate::protocol::auth::ClientAuth;
use crate::protocol::{Event, PublishConfig, Publisher, Transmit};

/// How long a finished link waits for the server to close after our FIN.
const FIN_WAIT: Duration = Duration::from_secs(3);

/// How often a link reads its socket's TCP state ([`Link::delivery`]).
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Every how many readings the link checks that its network path still exists.
const ROUTE_CHECK_EVERY: u32 = 3;

/// Most tags a link tracks for delivery. Past this, neighbouring entries merge: delivery is
/// then proved in coarser steps, never for more than was received, and memory stays
/// bounded however long the server goes without acknowledging.
const MAX_IN_FLIGHT: usize = 4096;

/// Plaintext a TLS layer may hold in a record of which only part was acknowledged.
const TLS_RECORD_SLACK: u64 = 17 * 1024;

/// How links connect and when they give up.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Announce Go Away support in `connect` (and act on it).
    pub announce_go_away: bool,
    /// Announce Enhanced RTMP Reconnect Request support in `connect` (and act on it).
    pub announce_reconnect: bool,
    /// Enhanced RTMP FourCCs for `fourCcList` (empty for H.264 + AAC).
    pub fourcc_list: Vec<String>,
    /// TLS client configuration for rtmps:// (built once, fresh sessions per connection).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Limit for DNS + TCP + TLS + handshake + connect + publish.
    pub connect_timeout: Duration,
    /// A write that makes no progress for this long means the peer is gone.
    pub write_timeout: Duration,
    /// Acknowledgements that stop for this long while data is outstanding mean the peer is
    /// gone (only for servers that acknowledge at all).
    pub ack_timeout: Duration,
    /// Local address and IP family.
    pub local: LocalEnd,
    /// How much a link holds between the session and the socket: tags handed over, and
    /// bytes serialized but not yet written. It bounds memory per link and passes
    /// backpressure up to the session; a live source wants it small, because media held
    /// here is invisible to congestion control.
    pub queue: QueueLimits,
}

/// See [`LinkOptions::queue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Tags in flight between the session and the link task.
    pub tags: usize,
    /// Stop taking tags while this many bytes wait for the socket.
    pub bytes: usize,
}

impl QueueLimits {
    /// For files: deep queues, the fastest transfer.
    pub const BULK: Self = Self {
        tags: 64,
        bytes: 1 << 20,
    };
    /// For live encoders: a few frames, so a slow connection shows at once as unsent media.
    pub const LIVE: Self = Self {
        tags: 8,
        bytes: 64 << 10,
    };
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            announce_go_away: true,
            announce_reconnect: true,
            fourcc_list: Vec::new(),
            tls: None,
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(8),
            local: LocalEnd::default(),
            queue: QueueLimits::BULK,
        }
    }
}

/// What a link reports to its session.
#[derive(Debug)]
pub enum LinkEvent {
    /// The server sent Go Away or a Reconnect Request, or another status.
    Server(Event),
    /// A reading of the socket's TCP state (every 100 ms), for telling a silent path from
    /// a slow one.
    Path(DeliveryStats),
    /// The link ended: `Ok` after a requested finish, `Err` when the connection failed.
    Closed(Result<(), LinkError>),
}

#[derive(Debug)]
pub(crate) enum Command {
    /// A tag and its sequence number in the session's stream (`None` for the headers a
    /// new connection starts with, which prove nothing about the stream's delivery).
    Tag {
        tag: Tag,
        seq: Option<u64>,
    },
    Finish {
        unpublish: bool,
    },
}

/// A connection that completed `publish` and is ready for media.
#[derive(Debug)]
pub struct Established {
    stream: Stream,
    publisher: Publisher,
    url: RtmpUrl,
    early_events: Vec<Event>,
    /// Time from dialling to `NetStream.Publish.Start`.
    pub connect_time: Duration,
}

/// Connects to `url` and publishes its key; returns once the server said Publish.Start.
///
/// With credentials in `url`, every refusal that asks for an authentication step is
/// answered on a new connection, as the scheme requires; the whole exchange counts against
/// the connect timeout.
pub async fn establish(url: &RtmpUrl, options: &LinkOptions) -> Result<Established, LinkError> {
    let started = Instant::now();
    let work = async {
        let mut auth = url.credentials().cloned().map(ClientAuth::new);
        loop {
            match attempt(url, options, auth, started).await? {
                Attempt::Publishing(established) => return Ok(*established),
                Attempt::Reauthenticate(next) => auth = Some(next),
            }
        }
    };
    timeout(options.connect_timeout, work)
        .await
        .map_err(|_| LinkError::Timeout(options.connect_timeout))?
}

/// How one connection of [`establish`] ended.
enum Attempt {
    Publishing(Box<Established>),
    /// The server refused `connect` with an authentication step: connect again with this.
    Reauthenticate(ClientAuth),
}

/// One connection: dial, handshake, connect, publish (`started`: when [`establish`] began).
async fn attempt(
    url: &RtmpUrl,
    options: &LinkOptions,
    auth: Option<ClientAuth>,
    started: Instant,
) -> Result<Attempt, LinkError> {
    let mut stream = dial(
        url,
        options.tls.as_ref(),
        options.write_timeout,
        options.local,
    )
    .await?;
    let mut config = PublishConfig::new(&url.app, &url.tc_url(), url.key());
    config.announce_go_away = options.announce_go_away;
    config.announce_reconnect = options.announce_reconnect;
    config.fourcc_list.clone_from(&options.fourcc_list);
    config.auth = auth;
    let (epoch, random) = handshake_seed();
    let mut publisher = Publisher::new(config, epoch, &random);
    let mut early_events = Vec::new();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        // Before writing: a server that refused `connect` may have closed already.
        if let Some(next) = publisher.reauthenticate() {
            return Ok(Attempt::Reauthenticate(next.clone()));
        }
        flush_all(&mut stream, &mut publisher).await?;
        if publisher.is_publishing() {
            return Ok(Attempt::Publishing(Box::new(Established {
                stream,
                publisher,
                url: url.clone(),
                early_events,
                connect_time: started.elapsed(),
            })));
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(LinkError::ClosedDuring(publisher.stage()));
        }
        publisher.handle_input(&buf)?;
        buf.clear();
        while let Some(event) = publisher.poll_event() {
            if matches!(event, Event::GoAway | Event::ReconnectRequest { .. }) {
                early_events.push(event);
            }
        }
    }
}

/// A live publishing connection running on its own task.
#[derive(Debug)]
pub struct Link {
    url: RtmpUrl,
    tx: mpsc::Sender<Command>,
    events: mpsc::UnboundedReceiver<LinkEvent>,
    delivered: Arc<AtomicU64>,
    delivery: watch::Receiver<Option<DeliverySample>>,
    task: JoinHandle<()>,
}

/// The latest reading of a link's TCP state, for telling a silent path from a slow one
/// ([`super::PathWatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySample {
    /// When it was read.
    pub at: Instant,
    /// What the kernel said.
    pub stats: DeliveryStats,
}

impl Established {
    /// The URL this connection publishes to.
    pub fn url(&self) -> &RtmpUrl {
        &self.url
    }

    /// Starts streaming on a task of the current runtime.
    pub fn spawn(self, options: &LinkOptions) -> Link {
        let (tx, rx) = mpsc::channel(options.queue.tags.max(1));
        let (event_tx, events) = mpsc::unbounded_channel();
        for event in self.early_events {
            let _ = event_tx.send(LinkEvent::Server(event));
        }
        let delivered = Arc::new(AtomicU64::new(0));
        let (delivery_tx, delivery) = watch::channel(None);
        // A second handle on the socket, to read its TCP state while the stream is split.
        let probe = socket2::SockRef::from(self.stream.tcp())
            .try_clone()
            .inspect_err(|e| log::debug!("no TCP state for this link: {e}"))
            .ok();
        let tls = matches!(self.stream, Stream::Tls(_));
        let tcp = self.stream.tcp();
        let ends = tcp.local_addr().ok().zip(tcp.peer_addr().ok());
        let driver = Driver {
            publisher: self.publisher,
            commands: rx,
            events: event_tx,
            delivered: Arc::clone(&delivered),
            in_flight: VecDeque::new(),
            write_timeout: options.write_timeout,
            ack_timeout: options.ack_timeout,
            queue_bytes: options.queue.bytes,
            tcp: TcpDelivery {
                probe,
                tls,
                on_socket: 0,
                in_use: false,
                sample: delivery_tx,
                ends,
                readings: 0,
            },
        };
        let task = tokio::spawn(driver.run(self.stream));
        Link {
            url: self.url,
            tx,
            events,
            delivered,
            delivery,
            task,
        }
    }
}

impl Link {
    /// The URL this link publishes to.
    pub fn url(&self) -> &RtmpUrl {
        &self.url
    }

    /// The command sender and the event receiver, borrowed apart so a session can wait for
    /// room and for events at once.
    pub(crate) fn parts(
        &mut self,
    ) -> (
        &mpsc::Sender<Command>,
        &mut mpsc::UnboundedReceiver<LinkEvent>,
    ) {
        (&self.tx, &mut self.events)
    }

    /// Asks the link to flush everything and close; with `unpublish`, FCUnpublish and
    /// deleteStream go first (a stop the user asked for, never a migration).
    pub fn finish(&self, unpublish: bool) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(Command::Finish { unpublish }).await;
        });
    }

    /// The next event; `None` once the task is gone and every event was taken.
    pub async fn event(&mut self) -> Option<LinkEvent> {
        self.events.recv().await
    }

    /// One past the highest tag sequence number the server has provably received
    /// (acknowledged, or read before closing after our finish).
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
    }

    /// The socket's TCP state as last read (every 100 ms while the link runs); `None` before
    /// the first reading or where the platform gives none.
    pub fn delivery(&self) -> Option<DeliverySample> {
        *self.delivery.borrow()
    }
}

/// Room for one tag on a link.
#[derive(Debug)]
pub struct Slot(mpsc::OwnedPermit<Command>);

impl Slot {
    pub(crate) fn new(permit: mpsc::OwnedPermit<Command>) -> Self {
        Self(permit)
    }

    /// Hands `tag` to the link; `seq` is its number in the session's stream, or `None` for
    /// connection-start headers.
    pub fn send(self, tag: Tag, seq: Option<u64>) {
        self.0.send(Command::Tag { tag, seq });
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Driver {
    publisher: Publisher,
    commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<LinkEvent>,
    delivered: Arc<AtomicU64>,
    /// (tag sequence number, output byte count after it) not yet acknowledged.
    in_flight: VecDeque<(u64, u64)>,
    write_timeout: Duration,
    ack_timeout: Duration,
    queue_bytes: usize,
    tcp: TcpDelivery,
}

/// Delivery as TCP sees it: for servers that send no RTMP Acknowledgement, what the
/// server's machine acknowledged is the best proof of delivery there is.
struct TcpDelivery {
    /// The socket, to read its state; `None` if it could not be shared.
    probe: Option<socket2::Socket>,
    /// Whether a TLS layer sits between the publisher's bytes and the socket's.
    tls: bool,
    /// The publisher's output byte count handed to the socket as of the last flush.
    on_socket: u64,
    /// Whether the server has sent two acknowledgement windows' worth without a single
    /// acknowledgement; once one comes, its acknowledgements are the proof again.
    in_use: bool,
    sample: watch::Sender<Option<DeliverySample>>,
    /// The connection's (local, peer) addresses, to see its path disappear.
    ends: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
    readings: u32,
}

impl TcpDelivery {
    /// Reads the socket's state and publishes it; `None` if unknown.
    fn read(&mut self, now: Instant) -> Option<DeliveryStats> {
        let stats = match delivery_stats(self.probe.as_ref()?) {
            Ok(stats) => stats,
            Err(e) => {
                log::debug!("TCP state unreadable: {e}");
                self.probe = None;
                return None;
            }
        };
        self.sample
            .send_replace(Some(DeliverySample { at: now, stats }));
        Some(stats)
    }

    /// How much of the publisher's output the server's machine provably received.
    fn received(&self, stats: &DeliveryStats) -> Option<u64> {
        let slack = if self.tls { TLS_RECORD_SLACK } else { 0 };
        stats
            .unacked_bytes
            .map(|unacked| self.on_socket.saturating_sub(unacked + slack))
    }

    /// Why the connection's network path is gone, checked every few readings.
    fn path_gone(&mut self) -> Option<&'static str> {
        self.readings = self.readings.wrapping_add(1);
        let (local, peer) = self.ends?;
        (self.readings % ROUTE_CHECK_EVERY == 0)
            .then(|| route::gone(local, peer))
            .flatten()
    }
}

/// Halves `in_flight` by merging neighbours (each pair keeps its later entry), so
/// delivery is still never claimed early.
fn thin_out(in_flight: &mut VecDeque<(u64, u64)>) {
    let mut index = 0;
    in_flight.retain(|_| {
        index += 1;
        index % 2 == 0
    });
}

impl Driver {
    async fn run(mut self, stream: Stream) {
        let result = self.drive(stream).await;
        if let Err(error) = &result {
            log::debug!("link ended: {error}");
        }
        let _ = self.events.send(LinkEvent::Closed(result));
    }

    fn mark_delivered(&mut self, acked: u64) {
        while let Some(&(seq, end)) = self.in_flight.front() {
            if end > acked {
                break;
            }
            self.delivered.store(seq + 1, Ordering::Release);
            self.in_flight.pop_front();
        }
    }

    async fn drive(&mut self, stream: Stream) -> Result<(), LinkError> {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let mut sampling = tokio::time::interval(SAMPLE_EVERY);
        sampling.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut input = BytesMut::with_capacity(16 * 1024);
        let mut finishing = false;
        let mut fin_deadline = None;
        let mut write_progress = Instant::now();
        let mut sending = Sending::default();
        let (mut acked, mut ack_progress) = (self.publisher.bytes_acked(), Instant::now());
        loop {
            let now = Instant::now();
            if self.publisher.bytes_acked() != acked {
                acked = self.publisher.bytes_acked();
                ack_progress = now;
                self.mark_delivered(acked);
            }
            let queued = self.publisher.queued();
            let pending = sending.pending(&self.publisher);
            if !pending {
                write_progress = now;
            }
            if finishing && !pending && fin_deadline.is_none() {
                writer.shutdown().await?;
                fin_deadline = Some(now + FIN_WAIT);
            }
            // Only servers that acknowledge at all can be judged by their acknowledgements.
            let outstanding = self.publisher.bytes_sent() - acked;
            let window = u64::from(self.publisher.config().ack_window);
            self.tcp.in_use = acked == 0 && outstanding > 2 * window;
            let ack_deadline =
                (acked > 0 && outstanding > 2 * window).then(|| ack_progress + self.ack_timeout);
            tokio::select! {
                read = reader.read_buf(&mut input) => {
                    let read = match read {
                        // After our FIN, a TLS peer that closes without close_notify has
                        // still read everything.
                        Err(e) if fin_deadline.is_some() && e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                        other => other?,
                    };
                    if read == 0 {
                        if fin_deadline.is_some() {
                            // The server read our FIN, so it read everything before it.
                            self.mark_delivered(u64::MAX);
                            return Ok(());
                        }
                        return Err(LinkError::ClosedByServer);
                    }
                    self.publisher.handle_input(&input)?;
                    input.clear();
                    while let Some(event) = self.publisher.poll_event() {
                        let _ = self.events.send(LinkEvent::Server(event));
                    }
                }
                command = self.commands.recv(), if !finishing && queued < self.queue_bytes => match command {
                    Some(Command::Tag { tag, seq }) => {
                        let end = self.publisher.send_tag(&tag)?;
                        if let Some(seq) = seq {
                            if self.in_flight.len() >= MAX_IN_FLIGHT {
                                thin_out(&mut self.in_flight);
                            }
                            self.in_flight.push_back((seq, end));
                        }
                    }
                    Some(Command::Finish { unpublish }) => {
                        if unpublish {
                            self.publisher.finish_stream();
                        }
                        finishing = true;
                    }
                    None => finishing = true,
                },
                sent = sending.step(&mut writer, &self.publisher), if pending => {
                    let sent = sent?;
                    sending.done(sent, &mut self.publisher);
                    if sent == Sent::Flushed {
                        self.tcp.on_socket =
                            self.publisher.bytes_sent() - self.publisher.queued() as u64;
                    }
                    write_progress = Instant::now();
                }
                _ = sampling.tick() => {
                    if let Some(gone) = self.tcp.path_gone() {
                        return Err(LinkError::PathGone(gone));
                    }
                    if let Some(stats) = self.tcp.read(Instant::now()) {
                        let received = self.tcp.received(&stats);
                        if let (true, Some(received)) = (self.tcp.in_use, received) {
                            self.mark_delivered(received);
                        }
                        let _ = self.events.send(LinkEvent::Path(stats));
                    }
                }
                () = sleep_until(write_progress + self.write_timeout), if pending => {
                    return Err(LinkError::Stalled("writes made no progress"));
                }
                () = sleep_until_some(ack_deadline) => {
                    return Err(LinkError::Stalled("the server stopped acknowledging"));
                }
                () = sleep_until_some(fin_deadline) => {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Thinning keeps every second entry, each the later of its pair: delivery is proved
    /// in coarser steps and never for a tag whose bytes were not all acknowledged.
    #[test]
    fn thinning_in_flight_keeps_the_later_of_each_pair() {
        let mut in_flight: VecDeque<(u64, u64)> = (0..6).map(|s| (s, (s + 1) * 100)).collect();
        thin_out(&mut in_flight);
        assert_eq!(in_flight, [(1, 200), (3, 400), (5, 600)]);
    }
}
