//! Random fault schedules from a seed, and the invariants every run must keep.

use std::time::Duration;

use obs_goaway::media::TagKind;
use obs_goaway::session::{
    BufferLimits, DropThresholds, DynamicBitrate, MigrationMode, ReconnectPolicy, Report,
};

use crate::sim::{self, frame_id, Fault, Outcome, ServerSpec, Stream, World};

/// After the last fault has cleared, media flows again within this (detection by the
/// write timeout, the policy's largest delay, one hanging attempt, slack).
const RECOVERY: Duration = Duration::from_secs(5 + 4 + 10 + 1);
/// Once flowing without faults, no gap in the recording is longer than this.
const STEADY_GAP: Duration = Duration::from_secs(2);

/// SplitMix64: small, fast, and the same on every machine.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high)`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(self.range(low, high))
    }
}

/// The world a seed describes.
pub(crate) fn world(seed: u64) -> World {
    let mut rng = Rng::new(seed);
    let (video, audio) = match rng.range(0, 20) {
        0 => (false, true),
        1 => (true, false),
        _ => (true, true),
    };
    let stream = Stream {
        duration: rng.millis(2_000, 10_000),
        video,
        audio,
        gop: rng.range(10, 90) as u32,
        keyframe_bytes: rng.range(1_000, 6_000) as usize,
        inter_bytes: rng.range(100, 800) as usize,
    };
    // Bytes per second the stream needs, roughly.
    let rate = if video {
        (stream.keyframe_bytes as u64 * 30 / u64::from(stream.gop)) + stream.inter_bytes as u64 * 25
    } else {
        0
    } + if audio { 47 * 51 } else { 0 };
    let mut world = World::new(stream);
    world.servers = (0..2)
        .map(|_| ServerSpec {
            latency: rng.millis(1, 80),
            bandwidth: if rng.chance(15) {
                rate * rng.range(70, 100) / 100
            } else {
                rate * rng.range(3, 50)
            },
            single_publisher: rng.chance(50),
            acks: match rng.range(0, 20) {
                0..=2 => None,
                3..=5 => Some(rng.millis(1_000, 3_000)),
                _ => Some(rng.millis(0, 300)),
            },
            idle_timeout: rng.millis(2_000, 10_000),
        })
        .collect();
    let config = &mut world.config;
    config.mode = if rng.chance(20) {
        MigrationMode::BreakBeforeMake
    } else {
        MigrationMode::MakeBeforeBreak
    };
    config.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(4),
        ..ReconnectPolicy::default()
    };
    match rng.range(0, 20) {
        0..=4 => config.congestion = Some(DropThresholds::default()),
        5..=7 => config.dynamic_bitrate = Some(DynamicBitrate::new(800, 20)),
        _ => {}
    }
    if rng.chance(15) {
        config.buffer = BufferLimits {
            max_duration: rng.millis(1_000, 8_000),
            max_bytes: rng.range(20_000, 200_000) as usize,
        };
    }
    let faults = rng.range(0, 6);
    let end = world.stream.duration.as_millis() as u64;
    for _ in 0..faults {
        // The first connection's failure ends a session at once: faults come after it.
        let time = rng.millis(1_000, end + 1_500);
        let server = usize::from(rng.chance(30));
        let lasting = rng.millis(50, 8_000);
        let fault = match rng.range(0, 16) {
            0..=3 => Fault::GoAway { server },
            4..=6 => Fault::ReconnectRequest {
                server,
                to: rng.chance(50).then(|| usize::from(rng.chance(50))),
            },
            7..=8 => Fault::Restart {
                server,
                down: rng.millis(0, 3_000),
            },
            9..=10 => Fault::SilentLoss { server, lasting },
            11 => Fault::RefuseConnect { server, lasting },
            12 => Fault::Hang { server, lasting },
            _ => Fault::UserMove { server },
        };
        world.faults.push((time, fault));
    }
    world
}

/// Runs the schedule of `seed` and checks it.
pub(crate) fn run_seed(seed: u64) -> Result<(), String> {
    let world = world(seed);
    let expect = Expect::of(&world);
    let described = format!(
        "stream {:?}\nservers {:?}\nmode {:?} congestion {:?} dynamic {:?} buffer {:?}\nfaults {:?}",
        world.stream,
        world.servers,
        world.config.mode,
        world.config.congestion,
        world.config.dynamic_bitrate,
        world.config.buffer,
        world.faults
    );
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || sim::run(world)))
        .map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
        .inspect_err(|_| {
            if std::env::var_os("SIM_TRACE").is_some() {
                eprintln!("{described}");
            }
        })?;
    check(&expect, &outcome).map(|_| ()).inspect_err(|_| {
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!(
                "{described}\nopens {:?}\nevents {:#?}",
                outcome.opens, outcome.events
            );
        }
    })
}

/// What a world promises, taken before it runs.
pub(crate) struct Expect {
    dropping: bool,
    video: bool,
    audio: bool,
    /// When the last fault is over (the path back, refusals and holds expired).
    quiet_from: Duration,
    deadline_may_pass: bool,
    rebase: bool,
}

impl Expect {
    pub(crate) fn of(world: &World) -> Self {
        let idle = world
            .servers
            .iter()
            .map(|s| s.idle_timeout)
            .max()
            .unwrap_or_default();
        let quiet_from = world
            .faults
            .iter()
            .map(|(at, fault)| {
                *at + match fault {
                    Fault::Restart { down, .. } => *down,
                    Fault::SilentLoss { lasting, .. } => *lasting + idle,
                    Fault::RefuseConnect { lasting, .. } | Fault::Hang { lasting, .. } => *lasting,
                    Fault::GoAway { .. }
                    | Fault::ReconnectRequest { .. }
                    | Fault::UserMove { .. } => Duration::ZERO,
                }
            })
            .max()
            .unwrap_or_default();
        let gop_time = Duration::from_millis(u64::from(world.stream.gop) * 1000 / 30);
        Self {
            dropping: world.config.congestion.is_some() && world.config.dynamic_bitrate.is_none(),
            video: world.stream.video,
            audio: world.stream.audio,
            quiet_from,
            deadline_may_pass: gop_time >= world.config.keyframe_deadline,
            rebase: world.config.rebase_timestamps,
        }
    }
}

/// Every invariant of a finished run; returns its report.
pub(crate) fn check(expect: &Expect, outcome: &Outcome) -> Result<Report, String> {
    let report = match &outcome.result {
        Ok(report) => report.clone(),
        Err(error) => return Err(format!("the session failed: {error}")),
    };
    if let Some(at) = outcome.unjustified_opens.first() {
        return Err(format!(
            "a connection was opened at {at:?} with no signal, failure or request before it"
        ));
    }
    // Each connection: the codec headers in force, then a resume point.
    for (link, received) in &outcome.received {
        let Some(first) = received.tags.iter().position(|(t, _)| t.is_frame()) else {
            continue;
        };
        let frame = &received.tags[first].0;
        let before = &received.tags[..first];
        let has = |kind: TagKind| {
            before.iter().any(|(t, _)| {
                t.kind == kind && t.is_sequence_header() && t.timestamp <= frame.timestamp
            })
        };
        if expect.video && !has(TagKind::Video) || expect.audio && !has(TagKind::Audio) {
            return Err(format!(
                "connection {link:?} started without the codec headers at {} ms",
                frame.timestamp
            ));
        }
        // The first video frame must be one a decoder can start from.
        let first_video = received
            .tags
            .iter()
            .find(|(t, _)| t.kind == TagKind::Video && t.is_frame());
        let resume_point = first_video.is_none_or(|(t, _)| t.is_keyframe());
        let frame = first_video.map_or(frame, |(t, _)| t);
        if !resume_point && !expect.deadline_may_pass {
            return Err(format!(
                "connection {link:?} started at a frame no decoder can start from ({} ms)",
                frame.timestamp
            ));
        }
    }
    // The recording: connections in the order of the media they begin with, then of its
    // arrival (a resume repeats from a keyframe), repeats skipped, as the reference ingest
    // stitches them (it writes the oldest connection and holds newer ones back). Arrival
    // alone is not the stream's order: a connection opened early may take over late (a
    // move's standby, after a race's winner), and a move to a nearer server delivers its
    // first frames before the old server has the last of its own.
    let mut connections: Vec<&sim::Received> = outcome.received.values().collect();
    connections.sort_by_key(|r| {
        r.tags
            .iter()
            .find(|(t, _)| t.is_frame())
            .map(|(t, at)| (t.timestamp, *at))
    });
    let mut last = [None::<u32>; 2];
    let mut recorded = Vec::new();
    for received in connections {
        for (tag, arrival) in &received.tags {
            if !tag.is_frame() {
                continue;
            }
            let track = usize::from(tag.kind == TagKind::Video);
            if last[track].is_some_and(|l| tag.timestamp <= l) {
                continue;
            }
            last[track] = Some(tag.timestamp);
            recorded.push((tag, *arrival));
        }
    }
    if expect.rebase {
        return Ok(report);
    }
    let mut next = recorded.iter().peekable();
    let (mut dropped, mut lost) = (0u64, 0u64);
    let mut first_lost = Vec::new();
    for produced in &outcome.produced {
        match next.peek() {
            Some((tag, _)) if frame_id(tag) == Some(produced.id) => {
                if tag.timestamp != produced.tag.timestamp {
                    return Err(format!(
                        "frame {} arrived stamped {} ms instead of {} ms",
                        produced.id, tag.timestamp, produced.tag.timestamp
                    ));
                }
                next.next();
            }
            _ if produced.droppable && expect.dropping => dropped += 1,
            _ => {
                lost += 1;
                if first_lost.len() < 5 {
                    first_lost.push(produced.tag.timestamp);
                }
            }
        }
    }
    if let Some((tag, _)) = next.next() {
        return Err(format!(
            "frame {:?} at {} ms was recorded out of order",
            frame_id(tag),
            tag.timestamp
        ));
    }
    if lost > report.lost {
        return Err(format!(
            "{lost} frames never recorded that congestion may not drop, the report admits {} \
             (the first at {first_lost:?} ms)",
            report.lost
        ));
    }
    if dropped + lost > outcome.dropped_frames + report.lost {
        return Err(format!(
            "{} frames missing, {} dropped for congestion and {} reported lost",
            dropped + lost,
            outcome.dropped_frames,
            report.lost
        ));
    }
    // After the last fault, the stream flows again soon and steadily.
    let after: Vec<Duration> = recorded
        .iter()
        .map(|&(_, arrival)| arrival)
        .filter(|&a| a >= expect.quiet_from)
        .collect();
    if let Some(&first) = after.first() {
        if first > expect.quiet_from + RECOVERY && outcome.ended_at > expect.quiet_from {
            return Err(format!(
                "media stalled from {:?} (faults over) to {first:?}",
                expect.quiet_from
            ));
        }
        let recovered = first.max(expect.quiet_from + RECOVERY);
        for pair in after.windows(2) {
            if pair[0] >= recovered && pair[1] - pair[0] > STEADY_GAP {
                return Err(format!(
                    "a {:?} gap at {:?} with no fault",
                    pair[1] - pair[0],
                    pair[0]
                ));
            }
        }
    }
    Ok(report)
}
