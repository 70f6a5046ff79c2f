//! A deterministic world for a [`SessionCore`]: a virtual clock, a live producer, links with
//! latency and bandwidth, and ingest servers that refuse, hang, signal, restart, lose the
//! path silently, acknowledge slowly or never, and record what they receive.
//!
//! Everything happens at virtual times drawn from one ordered queue, so a run is a pure
//! function of its [`World`] description: a failing seed reproduces exactly.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use obs_goaway::media::{Tag, TagKind};
use obs_goaway::protocol::{Event, ProtocolError};
use obs_goaway::session::{
    Command, Input, LinkId, Report, SessionConfig, SessionCore, SessionError, SessionEvent,
};
use obs_goaway::transport::{DeliveryStats, LinkError, RtmpUrl};

/// Link-side timeouts the transport applies (the session sees their results).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Tags a link holds between the session and the socket (`QueueLimits::LIVE`).
const LINK_QUEUE: usize = 8;
/// Bytes between the server's acknowledgements.
const ACK_WINDOW: u64 = 2_500;
/// How often a link reports its TCP state.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// TCP's first retransmission timeout; each further one doubles it.
const FIRST_RTO: Duration = Duration::from_millis(200);
/// When a connection attempt sends its SYNs (TCP's SYN backoff), after it starts.
const SYN_RETRIES: [u64; 4] = [0, 1_000, 3_000, 7_000];
/// Opens this close to a silence (after it ended) answer it.
const SILENCE_JUSTIFIES: Duration = Duration::from_secs(2);
/// The session must be over this long after the producer stops.
const END_LIMIT: Duration = Duration::from_secs(300);

pub(crate) const HOSTS: [&str; 2] = ["a.example", "b.example"];

/// The producer: a live stream of video with a GOP, audio and metadata.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    pub(crate) duration: Duration,
    pub(crate) video: bool,
    pub(crate) audio: bool,
    /// Video frames per group of pictures.
    pub(crate) gop: u32,
    pub(crate) keyframe_bytes: usize,
    pub(crate) inter_bytes: usize,
}

impl Default for Stream {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(6),
            video: true,
            audio: true,
            gop: 30,
            keyframe_bytes: 3000,
            inter_bytes: 500,
        }
    }
}

/// Something that happens to a server or its path at a virtual time.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// The server sends Go Away to every publisher.
    GoAway { server: usize },
    /// The server sends a Reconnect Request, optionally naming another server.
    ReconnectRequest { server: usize, to: Option<usize> },
    /// Every connection to the server is reset; it refuses connections for `down`.
    Restart { server: usize, down: Duration },
    /// Nothing crosses the path to the server for `lasting`; nobody is told.
    SilentLoss { server: usize, lasting: Duration },
    /// The server refuses TCP connections for `lasting`.
    RefuseConnect { server: usize, lasting: Duration },
    /// Connection attempts to the server hang (until the connect timeout) for `lasting`.
    Hang { server: usize, lasting: Duration },
    /// The user asks to move to the server.
    UserMove { server: usize },
}

/// One server and its path.
#[derive(Debug, Clone)]
pub(crate) struct ServerSpec {
    pub(crate) latency: Duration,
    /// Bytes per second the path carries.
    pub(crate) bandwidth: u64,
    /// nginx-rtmp: a key live on another connection is refused (`BadName`).
    pub(crate) single_publisher: bool,
    /// Acknowledgement delay; `None`: the server never acknowledges.
    pub(crate) acks: Option<Duration>,
    /// How long the server takes to notice a publisher that went silent.
    pub(crate) idle_timeout: Duration,
}

impl Default for ServerSpec {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(20),
            bandwidth: 1_000_000,
            single_publisher: false,
            acks: Some(Duration::ZERO),
            idle_timeout: Duration::from_secs(5),
        }
    }
}

/// A whole run: the session's configuration, the stream, the servers and the faults.
pub(crate) struct World {
    pub(crate) config: SessionConfig,
    pub(crate) stream: Stream,
    pub(crate) servers: Vec<ServerSpec>,
    pub(crate) faults: Vec<(Duration, Fault)>,
}

impl World {
    pub(crate) fn new(stream: Stream) -> Self {
        Self {
            config: config(),
            stream,
            servers: vec![ServerSpec::default(), ServerSpec::default()],
            faults: Vec::new(),
        }
    }
}

/// The session configuration the simulations start from: a live source to server 0.
pub(crate) fn config() -> SessionConfig {
    let url = RtmpUrl::parse("rtmp://a.example/live/key").expect("valid URL");
    let mut config = SessionConfig::new(url);
    config.link.connect_timeout = CONNECT_TIMEOUT;
    config.link.write_timeout = WRITE_TIMEOUT;
    config
}

/// A frame the producer emitted, as the checks see it.
#[derive(Debug, Clone)]
pub(crate) struct Produced {
    pub(crate) id: u32,
    pub(crate) tag: Tag,
    pub(crate) droppable: bool,
}

/// What one connection delivered to its server.
#[derive(Debug, Default, Clone)]
pub(crate) struct Received {
    pub(crate) server: usize,
    pub(crate) tags: Vec<(Tag, Duration)>,
    pub(crate) unpublished: bool,
}

/// Everything a run leaves for the checks.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) result: Result<Report, SessionError>,
    pub(crate) ended_at: Duration,
    pub(crate) produced: Vec<Produced>,
    /// Per connection, in the order they were opened.
    pub(crate) received: BTreeMap<LinkId, Received>,
    pub(crate) events: Vec<(Duration, SessionEvent)>,
    /// Connection attempts the session made beyond the first, and inputs that justify one
    /// (a signal, a failure, a user request) counted when each attempt was made.
    pub(crate) unjustified_opens: Vec<Duration>,
    pub(crate) dropped_frames: u64,
    pub(crate) opens: Vec<(Duration, LinkId, usize)>,
}

#[derive(Debug)]
enum Ev {
    Produce,
    Fault(Fault),
    ConnectDone {
        link: LinkId,
    },
    WriteDone {
        link: LinkId,
    },
    Arrive {
        link: LinkId,
        tag: Tag,
    },
    Ack {
        link: LinkId,
        bytes: u64,
    },
    /// TCP's acknowledgement of `bytes` reached the publisher.
    TcpAck {
        link: LinkId,
        bytes: u64,
    },
    /// The link reads its TCP state.
    Sample {
        link: LinkId,
    },
    FinArrive {
        link: LinkId,
        unpublish: bool,
    },
    ClosedOk {
        link: LinkId,
    },
    Signal {
        link: LinkId,
        event: Event,
    },
    Failed {
        link: LinkId,
        error: fn() -> LinkError,
    },
    KeyFree {
        server: usize,
        link: LinkId,
    },
    ServerNoticesClose {
        link: LinkId,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Connecting,
    Open,
    Dead,
}

struct SimLink {
    server: usize,
    state: State,
    queue: VecDeque<(Tag, Option<u64>)>,
    writing: bool,
    written: u64,
    in_flight: VecDeque<(u64, u64)>,
    delivered: u64,
    finish: Option<bool>,
    fin_sent: bool,
    /// Bytes the server received on this connection.
    arrived: u64,
    /// The server went away: nothing more arrives, nothing is acknowledged.
    cut: bool,
    /// Bytes TCP acknowledged, and when the last acknowledgement came.
    tcp_acked: u64,
    last_tcp_ack: Duration,
}

#[derive(Default)]
struct ServerState {
    publisher: Option<LinkId>,
    key_free_at: Duration,
    lost_until: Duration,
    lost_from: Duration,
    refuse_until: Duration,
    hang_until: Duration,
}

/// Runs `world` to the end.
pub(crate) fn run(world: World) -> Outcome {
    Sim::new(world).run()
}

struct Sim {
    base: Instant,
    now: Duration,
    core: SessionCore,
    queue: BinaryHeap<Reverse<(Duration, u64)>>,
    pending: BTreeMap<u64, Ev>,
    counter: u64,
    world_servers: Vec<ServerSpec>,
    servers: Vec<ServerState>,
    links: BTreeMap<LinkId, SimLink>,
    stream: Stream,
    produced: Vec<Produced>,
    /// Tags the session has not taken yet (a live source buffers in the channel).
    channel: VecDeque<Tag>,
    producer_done: bool,
    input_ended: bool,
    next_frame: (u32, u32),
    received: BTreeMap<LinkId, Received>,
    events: Vec<(Duration, SessionEvent)>,
    max_bytes: usize,
    justified: u64,
    /// Connection attempts that hang until the connect timeout.
    hanging: std::collections::BTreeSet<LinkId>,
    opens: Vec<(Duration, LinkId, usize)>,
    unjustified: Vec<Duration>,
    handle: std::sync::Arc<obs_goaway::session::SessionHandle>,
    /// `SIM_TRACE` set: every input, command and event goes to stderr as it happens.
    trace: bool,
}

impl Sim {
    fn new(world: World) -> Self {
        let max_bytes = world.config.buffer.max_bytes;
        let handle = std::sync::Arc::clone(&world.config.handle);
        let mut sim = Self {
            base: Instant::now(),
            now: Duration::ZERO,
            core: SessionCore::new(world.config),
            queue: BinaryHeap::new(),
            pending: BTreeMap::new(),
            counter: 0,
            servers: world
                .servers
                .iter()
                .map(|_| ServerState::default())
                .collect(),
            world_servers: world.servers,
            links: BTreeMap::new(),
            stream: world.stream,
            produced: Vec::new(),
            channel: VecDeque::new(),
            producer_done: false,
            input_ended: false,
            next_frame: (0, 0),
            received: BTreeMap::new(),
            events: Vec::new(),
            max_bytes,
            justified: 0,
            hanging: Default::default(),
            opens: Vec::new(),
            unjustified: Vec::new(),
            handle,
            trace: std::env::var_os("SIM_TRACE").is_some(),
        };
        for (at, fault) in world.faults {
            sim.at(at, Ev::Fault(fault));
        }
        sim.emit_headers();
        sim.at(Duration::ZERO, Ev::Produce);
        sim
    }

    fn at(&mut self, time: Duration, ev: Ev) {
        self.counter += 1;
        self.queue.push(Reverse((time, self.counter)));
        self.pending.insert(self.counter, ev);
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    fn run(mut self) -> Outcome {
        let result = loop {
            self.pump();
            if let Some(result) = self.core.poll_outcome() {
                break result;
            }
            let timer = self.core.poll_timeout().map(|t| t - self.base);
            let next = self.queue.peek().map(|Reverse((t, _))| *t);
            match (timer, next) {
                (Some(timer), next) if next.is_none_or(|n| timer <= n) => {
                    self.now = self.now.max(timer);
                    self.core.handle_timeout(self.instant());
                }
                (_, Some(_)) => {
                    let Reverse((time, id)) = self.queue.pop().expect("peeked");
                    self.now = time;
                    let ev = self.pending.remove(&id).expect("queued event");
                    self.handle(ev);
                }
                (_, None) => panic!("the session waits for nothing at {:?}", self.now),
            }
            assert!(
                self.now < self.stream.duration + END_LIMIT,
                "the session did not end within {END_LIMIT:?} of the producer stopping"
            );
        };
        Outcome {
            result,
            ended_at: self.now,
            produced: self.produced,
            received: self.received,
            events: self.events,
            unjustified_opens: self.unjustified,
            dropped_frames: self.handle.dropped_frames(),
            opens: self.opens,
        }
    }

    fn input(&mut self, input: Input) {
        let justifies = matches!(
            input,
            Input::ConnectFailed { .. }
                | Input::Server { .. }
                | Input::MoveRequest { .. }
                | Input::Closed { result: Err(_), .. }
        );
        self.justified += u64::from(justifies);
        if self.trace && !matches!(input, Input::Tag(_) | Input::Writable { .. }) {
            eprintln!("{:?} input {input:?}", self.now);
        }
        let now = self.instant();
        self.core.handle_input(now, input);
    }

    /// Carries out commands, grants room, feeds the producer's tags, until nothing moves.
    fn pump(&mut self) {
        for _ in 0..100_000 {
            while let Some(command) = self.core.poll_command() {
                if self.trace && !matches!(command, Command::Send { .. }) {
                    eprintln!("{:?} command {command:?}", self.now);
                }
                self.command(command);
            }
            while let Some(event) = self.core.poll_event() {
                if self.trace {
                    eprintln!("{:?} event {event:?}", self.now);
                }
                self.events.push((self.now, event));
            }
            assert!(
                self.core.buffered_bytes() <= self.max_bytes,
                "the session holds {} bytes, over its {} limit",
                self.core.buffered_bytes(),
                self.max_bytes
            );
            if self.core.wants_input() {
                if let Some(tag) = self.channel.pop_front() {
                    self.input(Input::Tag(tag));
                    continue;
                }
                if self.producer_done && !self.input_ended {
                    self.input_ended = true;
                    self.input(Input::InputEnded);
                    continue;
                }
            }
            if let Some(link) = self.core.wants_room() {
                let room = self
                    .links
                    .get(&link)
                    .is_some_and(|l| l.state == State::Open && l.queue.len() < LINK_QUEUE);
                if room {
                    self.input(Input::Writable { link });
                    continue;
                }
            }
            return;
        }
        panic!(
            "the session keeps acting at {:?} without time passing",
            self.now
        );
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Open { link, url } => {
                let server = HOSTS
                    .iter()
                    .position(|h| *h == url.host)
                    .expect("a simulated host");
                let s = &self.servers[server];
                // A silent path, or connection attempts that go unanswered, justify racing.
                let racing = s.lost_until > Duration::ZERO
                    && self.now >= s.lost_from
                    && self.now <= s.lost_until + SILENCE_JUSTIFIES
                    || self.now <= s.hang_until + SILENCE_JUSTIFIES;
                if !self.opens.is_empty() && !racing {
                    if self.justified == 0 {
                        self.unjustified.push(self.now);
                    }
                    self.justified = self.justified.saturating_sub(1);
                }
                self.opens.push((self.now, link, server));
                self.links.insert(
                    link,
                    SimLink {
                        server,
                        state: State::Connecting,
                        queue: VecDeque::new(),
                        writing: false,
                        written: 0,
                        in_flight: VecDeque::new(),
                        delivered: 0,
                        finish: None,
                        fin_sent: false,
                        arrived: 0,
                        cut: false,
                        tcp_acked: 0,
                        last_tcp_ack: self.now,
                    },
                );
                let spec = &self.world_servers[server];
                let state = &self.servers[server];
                // The first SYN the silence does not swallow gets through.
                let syn = SYN_RETRIES
                    .iter()
                    .map(|&ms| self.now + Duration::from_millis(ms))
                    .find(|&at| at < state.lost_from || at >= state.lost_until);
                let hangs = self.now < state.hang_until || syn.is_none();
                let done = if hangs {
                    self.hanging.insert(link);
                    self.now + CONNECT_TIMEOUT
                } else if let Some(syn) = syn.filter(|&at| at > self.now) {
                    syn + spec.latency * 8
                } else if self.now < state.refuse_until {
                    self.now + spec.latency * 2
                } else {
                    // TCP, handshake, connect, createStream, publish.
                    self.now + spec.latency * 8
                };
                self.at(done, Ev::ConnectDone { link });
            }
            Command::Send { link, tag, seq } => {
                let l = self.links.get_mut(&link).expect("sent on a known link");
                assert_eq!(l.state, State::Open, "sent on a link that is not open");
                assert!(l.queue.len() < LINK_QUEUE, "sent without room");
                l.queue.push_back((tag, seq));
                self.write_next(link);
            }
            Command::Finish { link, unpublish } => {
                if let Some(l) = self.links.get_mut(&link) {
                    l.finish = Some(unpublish);
                }
                self.write_next(link);
            }
            Command::Close { link } => {
                if let Some(mut l) = self.links.remove(&link) {
                    if l.state == State::Open {
                        l.state = State::Dead;
                        let arrive = self.path(l.server, self.now);
                        self.at(arrive, Ev::ServerNoticesClose { link });
                    }
                }
            }
        }
    }

    /// When something sent to or from `server` at `sent` arrives: what a silence swallowed
    /// goes again at the first of TCP's retransmissions (backing off from the silence's
    /// start) after the path is back.
    fn path(&self, server: usize, sent: Duration) -> Duration {
        let latency = self.world_servers[server].latency;
        let arrive = sent + latency;
        if arrive > self.servers[server].lost_from && sent < self.servers[server].lost_until {
            self.retransmitted(server) + latency
        } else {
            arrive
        }
    }

    /// The first retransmission after `server`'s silence ends.
    fn retransmitted(&self, server: usize) -> Duration {
        let s = &self.servers[server];
        let mut rto = FIRST_RTO;
        let mut at = s.lost_from + rto;
        while at < s.lost_until {
            rto *= 2;
            at += rto;
        }
        at
    }

    fn write_next(&mut self, link: LinkId) {
        let Some(server) = self.links.get(&link).map(|l| l.server) else {
            return;
        };
        let retransmitted = self.retransmitted(server);
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.state != State::Open || l.writing {
            return;
        }
        let bandwidth = self.world_servers[server].bandwidth.max(1);
        if let Some((tag, _)) = l.queue.front() {
            let bytes = tag.data.len() as u64 + 11;
            let transmit = Duration::from_nanos(bytes * 1_000_000_000 / bandwidth);
            let s = &self.servers[server];
            let start = if self.now >= s.lost_from && self.now < s.lost_until {
                retransmitted
            } else {
                self.now
            };
            l.writing = true;
            let done = start + transmit;
            if done - self.now > WRITE_TIMEOUT {
                self.at(
                    self.now + WRITE_TIMEOUT,
                    Ev::Failed {
                        link,
                        error: || LinkError::Stalled("writes made no progress"),
                    },
                );
            } else {
                self.at(done, Ev::WriteDone { link });
            }
        } else if let (Some(unpublish), false) = (l.finish, l.fin_sent) {
            l.fin_sent = true;
            let arrive = self.path(server, self.now);
            self.at(arrive, Ev::FinArrive { link, unpublish });
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Produce => self.produce(),
            Ev::Fault(fault) => self.fault(fault),
            Ev::ConnectDone { link } => self.connect_done(link),
            Ev::WriteDone { link } => {
                let Some(l) = self.links.get_mut(&link) else {
                    return;
                };
                if l.state != State::Open || l.cut {
                    return;
                }
                l.writing = false;
                let (tag, seq) = l.queue.pop_front().expect("a tag was being written");
                l.written += tag.data.len() as u64 + 11;
                if let Some(seq) = seq {
                    l.in_flight.push_back((seq, l.written));
                }
                let server = l.server;
                let arrive = self.path(server, self.now);
                self.at(arrive, Ev::Arrive { link, tag });
                self.write_next(link);
            }
            Ev::Arrive { link, tag } => {
                let Some(l) = self.links.get_mut(&link) else {
                    return;
                };
                if l.state == State::Dead || l.cut {
                    return;
                }
                let server = l.server;
                let before = l.arrived;
                let after = before + tag.data.len() as u64 + 11;
                l.arrived = after;
                let received = self.received.entry(link).or_default();
                received.server = server;
                received.tags.push((tag, self.now));
                let back = self.path(server, self.now);
                self.at(back, Ev::TcpAck { link, bytes: after });
                if let Some(delay) = self.world_servers[server].acks {
                    if after / ACK_WINDOW > before / ACK_WINDOW {
                        let back = self.path(server, self.now + delay);
                        self.at(back, Ev::Ack { link, bytes: after });
                    }
                }
            }
            Ev::Ack { link, bytes } => {
                let Some(l) = self.links.get_mut(&link) else {
                    return;
                };
                if l.state != State::Open || l.cut {
                    return;
                }
                let mut upto = None;
                while let Some(&(seq, end)) = l.in_flight.front() {
                    if end > bytes {
                        break;
                    }
                    upto = Some(seq + 1);
                    l.in_flight.pop_front();
                }
                if let Some(upto) = upto {
                    l.delivered = upto;
                    self.input(Input::Delivered { link, upto });
                }
            }
            Ev::TcpAck { link, bytes } => {
                if let Some(l) = self.links.get_mut(&link) {
                    l.tcp_acked = l.tcp_acked.max(bytes);
                    l.last_tcp_ack = self.now;
                }
            }
            Ev::Sample { link } => self.sample(link),
            Ev::FinArrive { link, unpublish } => {
                let Some(l) = self.links.get(&link) else {
                    return;
                };
                if l.state != State::Open || l.cut {
                    return;
                }
                let server = l.server;
                if unpublish {
                    self.received.entry(link).or_default().unpublished = true;
                }
                self.release_key(server, link);
                let back = self.path(server, self.now);
                self.at(back, Ev::ClosedOk { link });
            }
            Ev::ClosedOk { link } => {
                let Some(l) = self.links.get_mut(&link) else {
                    return;
                };
                if l.state != State::Open {
                    return;
                }
                l.state = State::Dead;
                if let Some(&(seq, _)) = l.in_flight.back() {
                    self.input(Input::Delivered {
                        link,
                        upto: seq + 1,
                    });
                }
                self.links.remove(&link);
                self.input(Input::Closed {
                    link,
                    result: Ok(()),
                });
            }
            Ev::Signal { link, event } => {
                if self
                    .links
                    .get(&link)
                    .is_some_and(|l| l.state == State::Open)
                {
                    self.input(Input::Server { link, event });
                }
            }
            Ev::Failed { link, error } => self.fail(link, error()),
            Ev::KeyFree { server, link } => self.release_key(server, link),
            Ev::ServerNoticesClose { link } => {
                for server in 0..self.servers.len() {
                    self.release_key(server, link);
                }
            }
        }
    }

    fn release_key(&mut self, server: usize, link: LinkId) {
        let s = &mut self.servers[server];
        if s.publisher == Some(link) {
            s.publisher = None;
            s.key_free_at = s.key_free_at.min(self.now);
        }
    }

    /// The client's side of `link` fails with `error`.
    fn fail(&mut self, link: LinkId, error: LinkError) {
        let Some(mut l) = self.links.remove(&link) else {
            return;
        };
        if l.state != State::Open {
            return;
        }
        l.state = State::Dead;
        // The server hears of it when the reset crosses the path, or its idle timeout fires.
        let server = l.server;
        let notice = self.path(server, self.now);
        let idle = self.servers[server].lost_from + self.world_servers[server].idle_timeout;
        let notice = if self.now < self.servers[server].lost_until {
            notice.min(idle.max(self.now))
        } else {
            notice
        };
        self.at(notice, Ev::KeyFree { server, link });
        self.input(Input::Closed {
            link,
            result: Err(error),
        });
    }

    fn connect_done(&mut self, link: LinkId) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        let server = l.server;
        let spec = &self.world_servers[server];
        let hung = self.hanging.remove(&link);
        let state = &self.servers[server];
        let error = if hung || self.now < state.lost_until || self.now < state.hang_until {
            Some(LinkError::Timeout(CONNECT_TIMEOUT))
        } else if self.now < state.refuse_until {
            Some(LinkError::Connect {
                addr: "192.0.2.1:1935".parse().expect("address"),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            })
        } else if spec.single_publisher
            && (state.publisher.is_some() || self.now < state.key_free_at)
        {
            Some(LinkError::Protocol(ProtocolError::Rejected {
                stage: "publish",
                code: "NetStream.Publish.BadName".into(),
                description: "Already publishing".into(),
            }))
        } else {
            None
        };
        if let Some(error) = error {
            self.links.remove(&link);
            self.input(Input::ConnectFailed { link, error });
            return;
        }
        let s = &mut self.servers[server];
        s.publisher = Some(link);
        s.key_free_at = Duration::MAX;
        if let Some(l) = self.links.get_mut(&link) {
            l.state = State::Open;
        }
        self.received.entry(link).or_default().server = server;
        let connect_time = self.world_servers[server].latency * 8;
        self.input(Input::Connected { link, connect_time });
        self.at(self.now + SAMPLE_EVERY, Ev::Sample { link });
    }

    /// The link reads its TCP state, as the transport does every [`SAMPLE_EVERY`].
    fn sample(&mut self, link: LinkId) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        if l.state != State::Open || l.cut {
            return;
        }
        let unacked = l.written.saturating_sub(l.tcp_acked);
        let unsent: u64 = l.queue.iter().map(|(t, _)| t.data.len() as u64 + 11).sum();
        let stats = DeliveryStats {
            rtt: Some(self.world_servers[l.server].latency * 2),
            since_last_ack: Some(self.now.saturating_sub(l.last_tcp_ack)),
            bytes_acked: Some(l.tcp_acked),
            unacked_bytes: Some(unacked + unsent),
            unsent_bytes: Some(unsent),
            in_flight_bytes: Some(unacked),
            backoff: None,
            timeouts: None,
        };
        self.input(Input::PathStats { link, stats });
        self.at(self.now + SAMPLE_EVERY, Ev::Sample { link });
    }

    fn fault(&mut self, fault: Fault) {
        let open_on = |sim: &Self, server: usize| -> Vec<LinkId> {
            sim.links
                .iter()
                .filter(|(_, l)| l.server == server && l.state == State::Open)
                .map(|(&id, _)| id)
                .collect()
        };
        match fault {
            Fault::GoAway { server } => {
                for link in open_on(self, server) {
                    let arrive = self.path(server, self.now);
                    self.at(
                        arrive,
                        Ev::Signal {
                            link,
                            event: Event::GoAway,
                        },
                    );
                }
            }
            Fault::ReconnectRequest { server, to } => {
                let tc_url = to.map(|to| format!("rtmp://{}/live", HOSTS[to]));
                for link in open_on(self, server) {
                    let arrive = self.path(server, self.now);
                    let event = Event::ReconnectRequest {
                        tc_url: tc_url.clone(),
                        description: None,
                    };
                    self.at(arrive, Ev::Signal { link, event });
                }
            }
            Fault::Restart { server, down } => {
                let s = &mut self.servers[server];
                s.refuse_until = s.refuse_until.max(self.now + down);
                s.publisher = None;
                s.key_free_at = Duration::ZERO;
                for link in open_on(self, server) {
                    let arrive = self.path(server, self.now);
                    self.at(
                        arrive,
                        Ev::Failed {
                            link,
                            error: || LinkError::Io(std::io::ErrorKind::ConnectionReset.into()),
                        },
                    );
                    self.cut(link);
                }
            }
            Fault::SilentLoss { server, lasting } => {
                let s = &mut self.servers[server];
                if self.now >= s.lost_until {
                    s.lost_from = self.now;
                }
                s.lost_until = s.lost_until.max(self.now + lasting);
                let idle = self.world_servers[server].idle_timeout;
                if let Some(link) = self.servers[server].publisher {
                    if lasting > idle {
                        self.at(self.now + idle, Ev::KeyFree { server, link });
                    }
                }
            }
            Fault::RefuseConnect { server, lasting } => {
                let s = &mut self.servers[server];
                s.refuse_until = s.refuse_until.max(self.now + lasting);
            }
            Fault::Hang { server, lasting } => {
                let s = &mut self.servers[server];
                s.hang_until = s.hang_until.max(self.now + lasting);
            }
            Fault::UserMove { server } => {
                let server = format!("rtmp://{}/live", HOSTS[server]);
                self.input(Input::MoveRequest { server });
            }
        }
    }

    /// Marks `link` as cut at the server: nothing it sent from now on is received.
    fn cut(&mut self, link: LinkId) {
        if let Some(l) = self.links.get_mut(&link) {
            l.cut = true;
            l.in_flight.clear();
            l.queue.clear();
            l.writing = true;
        }
    }

    fn emit_headers(&mut self) {
        let mut headers = vec![Tag {
            kind: TagKind::Script,
            timestamp: 0,
            data: Bytes::from_static(&[
                2, 0, 10, b'o', b'n', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a',
            ]),
        }];
        if self.stream.video {
            headers.push(Tag::video(
                0,
                Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64]),
            ));
        }
        if self.stream.audio {
            headers.push(Tag::audio(0, Bytes::from_static(&[0xaf, 0, 0x12, 0x10])));
        }
        self.channel.extend(headers);
    }

    /// Emits the next frame (video at 30 fps, AAC audio at 48 kHz), in timestamp order.
    fn produce(&mut self) {
        while !self.producer_done {
            if let Some(due) = self.produce_one() {
                self.at(due, Ev::Produce);
                return;
            }
        }
    }

    /// Emits the next frame if its time has come; otherwise returns when it will.
    fn produce_one(&mut self) -> Option<Duration> {
        let (v, a) = self.next_frame;
        let video_ts = (u64::from(v) * 1000 / 30) as u32;
        let audio_ts = (u64::from(a) * 1024 * 1000 / 48_000) as u32;
        let video_next = self.stream.video && (!self.stream.audio || video_ts <= audio_ts);
        let ts = if video_next { video_ts } else { audio_ts };
        let due = Duration::from_millis(u64::from(ts));
        if due >= self.stream.duration {
            self.producer_done = true;
            return None;
        }
        if due > self.now {
            return Some(due);
        }
        let id = self.produced.len() as u32;
        let (tag, droppable) = if video_next {
            self.next_frame.0 += 1;
            let position = v % self.stream.gop;
            // I B B P B B P ...: B frames are unreferenced, P frames referenced.
            let (frame_type, nal, size) = match position {
                0 => (0x17, 0x65, self.stream.keyframe_bytes),
                p if p % 3 == 0 => (0x27, 0x41, self.stream.inter_bytes),
                _ => (0x27, 0x01, self.stream.inter_bytes / 2),
            };
            let size = size.max(16);
            let mut data = vec![0; size];
            data[..2].copy_from_slice(&[frame_type, 1]);
            data[5..9].copy_from_slice(&((size - 9) as u32).to_be_bytes());
            data[9] = nal;
            data[10..14].copy_from_slice(&id.to_be_bytes());
            (Tag::video(ts, Bytes::from(data)), position != 0)
        } else {
            self.next_frame.1 += 1;
            let mut data = vec![0; 40];
            data[..2].copy_from_slice(&[0xaf, 1]);
            data[2..6].copy_from_slice(&id.to_be_bytes());
            (Tag::audio(ts, Bytes::from(data)), false)
        };
        self.produced.push(Produced {
            id,
            tag: tag.clone(),
            droppable,
        });
        self.channel.push_back(tag);
        None
    }
}

/// The id a simulated frame carries in its payload.
pub(crate) fn frame_id(tag: &Tag) -> Option<u32> {
    let at = match tag.kind {
        TagKind::Video => 10,
        TagKind::Audio => 2,
        TagKind::Script => return None,
    };
    let bytes = tag.data.get(at..at + 4)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}
