//! The session core in a deterministic simulation: every behaviour the real-socket tests
//! show (tests/migration.rs, tests/live_output.rs), and invariants over random fault
//! schedules.
//!
//! `cargo test --test session_sim` runs 10,000 random schedules. A soak runs more, from any
//! first seed, in release:
//!
//! ```text
//! SIM_SCHEDULES=1000000 cargo test --release --test session_sim random_fault_schedules
//! SIM_SEED=1234 SIM_SCHEDULES=1 cargo test --test session_sim random_fault_schedules  # one seed
//! ```
//!
//! A failing schedule names its seed; the second command replays exactly that run, and
//! `SIM_TRACE=1` prints its world and every input, command and event as they happen. Once
//! fixed, a seed joins [`SOAK_FINDINGS`].

mod schedule;
mod sim;

use std::time::Duration;

use obs_goaway::session::{
    BitrateStep, Cause, CutoverKind, DropThresholds, DynamicBitrate, MigrationMode,
    ReconnectPolicy, Report, SessionError, SessionEvent,
};

use schedule::{check, Expect};
use sim::{Fault, ServerSpec, Stream, World};

/// Runs `world` and checks every invariant; returns the report.
fn simulate(world: World) -> (Report, sim::Outcome) {
    let expect = Expect::of(&world);
    let outcome = sim::run(world);
    match check(&expect, &outcome) {
        Ok(report) => (report, outcome),
        Err(error) => panic!("{error}\nevents: {:#?}", outcome.events),
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn at(s: f64, fault: Fault) -> (Duration, Fault) {
    (secs(s), fault)
}

#[test]
fn random_fault_schedules() {
    let count: u64 = std::env::var("SIM_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let first: u64 = std::env::var("SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let started = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8)) as u64;
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut seed = first + t;
                while seed < first + count {
                    if let Err(error) = schedule::run_seed(seed) {
                        return Err(format!(
                            "seed {seed}: {error}\nreplay: SIM_SEED={seed} SIM_SCHEDULES=1 \
                             cargo test --test session_sim random_fault_schedules"
                        ));
                    }
                    seed += threads;
                }
                Ok(())
            })
        })
        .collect();
    for worker in workers {
        if let Err(error) = worker.join().expect("a schedule panicked") {
            panic!("{error}");
        }
    }
    let took = started.elapsed();
    eprintln!(
        "{count} schedules in {took:?} ({:.0}/s)",
        count as f64 / took.as_secs_f64()
    );
}

/// Schedules soaks found failing, each fixed: they stay in every run.
const SOAK_FINDINGS: [u64; 6] = [110_478, 111_354, 163_876, 237_822, 279_928, 352_884];

#[test]
fn schedules_the_soaks_found_failing_pass() {
    for seed in SOAK_FINDINGS {
        if let Err(error) = schedule::run_seed(seed) {
            panic!("seed {seed}: {error}");
        }
    }
}

#[test]
fn a_quiet_stream_arrives_whole_and_ends_with_unpublish() {
    let (report, outcome) = simulate(World::new(Stream::default()));
    assert!(report.cutovers.is_empty());
    assert_eq!(report.connections, 1);
    let last = outcome.received.values().last().expect("one connection");
    assert!(last.unpublished, "the stream ended with FCUnpublish");
}

#[test]
fn go_away_moves_make_before_break_without_loss() {
    let mut world = World::new(Stream::default());
    world.faults = vec![at(2.5, Fault::GoAway { server: 0 })];
    let (report, _) = simulate(world);
    let [cutover] = report.cutovers.as_slice() else {
        panic!("one move expected: {:?}", report.cutovers);
    };
    assert_eq!(cutover.cause, Cause::GoAway);
    assert_eq!(cutover.kind, CutoverKind::MakeBeforeBreak);
    assert_eq!(cutover.keyframe_timestamp, 3000, "at the next keyframe");
    assert_eq!(report.duplicates, 0);
}

#[test]
fn a_refused_second_publish_falls_back_to_break_before_make() {
    let mut world = World::new(Stream::default());
    world.servers[0].single_publisher = true;
    world.faults = vec![at(2.5, Fault::GoAway { server: 0 })];
    let (report, _) = simulate(world);
    let kinds: Vec<_> = report.cutovers.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [CutoverKind::BreakBeforeMake]);
    assert_eq!(report.duplicates, 0);
}

#[test]
fn break_before_make_by_configuration() {
    let mut world = World::new(Stream::default());
    world.config.mode = MigrationMode::BreakBeforeMake;
    world.faults = vec![at(1.2, Fault::GoAway { server: 0 })];
    let (report, outcome) = simulate(world);
    assert_eq!(report.cutovers[0].kind, CutoverKind::BreakBeforeMake);
    assert_eq!(
        outcome.opens.len(),
        2,
        "the new connection only after the keyframe"
    );
}

#[test]
fn a_reset_resumes_from_the_last_acknowledged_keyframe() {
    let mut world = World::new(Stream::default());
    world.faults = vec![at(
        3.4,
        Fault::Restart {
            server: 0,
            down: secs(0.5),
        },
    )];
    let (report, outcome) = simulate(world);
    assert_eq!(report.cutovers.len(), 1);
    assert_eq!(report.cutovers[0].kind, CutoverKind::Resumed);
    assert_eq!(report.cutovers[0].cause, Cause::ConnectionLost);
    assert!(
        outcome
            .events
            .iter()
            .any(|(_, e)| matches!(e, SessionEvent::ConnectionLost { .. })),
        "the loss is reported"
    );
}

#[test]
fn the_old_server_closing_before_the_keyframe_loses_nothing() {
    let mut world = World::new(Stream::default());
    world.faults = vec![
        at(
            2.1,
            Fault::ReconnectRequest {
                server: 0,
                to: Some(1),
            },
        ),
        at(
            2.5,
            Fault::Restart {
                server: 0,
                down: secs(0.1),
            },
        ),
    ];
    world.servers[0].latency = Duration::from_millis(5);
    let (report, _) = simulate(world);
    assert_eq!(report.cutovers.len(), 1);
    assert_eq!(report.cutovers[0].cause, Cause::ReconnectRequest);
    assert_eq!(report.cutovers[0].kind, CutoverKind::Resumed);
    assert!(
        report.duplicates > 0,
        "resent from the keyframe the old server had not acknowledged"
    );
}

#[test]
fn a_reconnect_request_redirects_to_another_ingest() {
    let mut world = World::new(Stream::default());
    world.faults = vec![at(
        1.5,
        Fault::ReconnectRequest {
            server: 0,
            to: Some(1),
        },
    )];
    let (report, outcome) = simulate(world);
    assert_eq!(report.cutovers[0].cause, Cause::ReconnectRequest);
    let servers: Vec<usize> = outcome.opens.iter().map(|&(_, _, s)| s).collect();
    assert_eq!(servers, [0, 1]);
    let last = outcome.received.values().last().expect("connections");
    assert_eq!(last.server, 1, "the stream ends on the new ingest");
    assert!(last.unpublished);
}

#[test]
fn a_user_move_is_make_before_break_even_when_configured_otherwise() {
    let mut world = World::new(Stream::default());
    world.config.mode = MigrationMode::BreakBeforeMake;
    world.faults = vec![at(1.5, Fault::UserMove { server: 1 })];
    let (report, _) = simulate(world);
    assert_eq!(report.cutovers[0].cause, Cause::UserRequest);
    assert_eq!(report.cutovers[0].kind, CutoverKind::MakeBeforeBreak);
}

/// A 6.6 s stream to a server that takes one publisher per key and, having noticed
/// nothing of a connection that went silent, holds its key for 8.9 s.
fn key_holding_world() -> World {
    let mut world = World::new(Stream {
        duration: secs(6.6),
        ..Stream::default()
    });
    world.servers[0].single_publisher = true;
    world.servers[0].idle_timeout = secs(8.9);
    world
}

#[test]
fn a_user_move_while_a_refused_move_reconnects_keeps_reconnecting() {
    // The first move's standby is refused (the server holds the key), so that move breaks
    // before making; a silence swallows the old connection's last bytes, it ends by write
    // timeout, and a second user move arrives while the stream reconnects (soak seed
    // 237822: it became make-before-break with nothing to stand by for, and waited
    // forever). The server then holds the silent connection's key for 9 s.
    let mut world = key_holding_world();
    world.faults = vec![
        at(1.5, Fault::UserMove { server: 0 }),
        at(
            1.7,
            Fault::SilentLoss {
                server: 0,
                lasting: secs(6.3),
            },
        ),
        at(7.9, Fault::UserMove { server: 0 }),
    ];
    let (report, outcome) = simulate(world);
    assert_eq!(report.lost, 0);
    let last = outcome.received.values().last().expect("connections");
    assert!(
        last.unpublished,
        "the stream did not end on a publishing connection"
    );
}

#[test]
fn a_key_held_past_the_quick_retries_is_retried_from_the_schedules_start() {
    // A silence makes the stream reconnect while the server still holds the silent
    // connection's key (for 9 s after the path is back): after the quick retries, the
    // reconnection schedule starts over at 2 s, 3 s... (it used to jump to its 30 s end).
    let mut world = key_holding_world();
    world.faults = vec![at(
        2.6,
        Fault::SilentLoss {
            server: 0,
            lasting: secs(6.3),
        },
    )];
    let (report, outcome) = simulate(world);
    assert_eq!(report.lost, 0);
    let stall = longest_stall(&outcome);
    assert!(stall < secs(20.0), "stalled {stall:?}");
}

#[test]
fn without_a_keyframe_the_deadline_switches_at_the_next_packet() {
    let mut world = World::new(Stream {
        gop: 600,
        ..Stream::default()
    });
    world.config.keyframe_deadline = secs(0.5);
    world.faults = vec![at(1.0, Fault::GoAway { server: 0 })];
    let (report, _) = simulate(world);
    let cutover = &report.cutovers[0];
    assert!(
        (1500..1700).contains(&cutover.keyframe_timestamp),
        "switched at {} ms",
        cutover.keyframe_timestamp
    );
}

#[test]
fn audio_only_streams_move_at_the_next_audio_frame() {
    let mut world = World::new(Stream {
        video: false,
        ..Stream::default()
    });
    world.faults = vec![at(2.0, Fault::GoAway { server: 0 })];
    let (report, _) = simulate(world);
    let cutover = &report.cutovers[0];
    assert_eq!(cutover.kind, CutoverKind::MakeBeforeBreak);
    // Go Away arrives at 2.02 s, the new connection publishes 160 ms later.
    assert!(
        (2180..2230).contains(&cutover.keyframe_timestamp),
        "moved at {} ms",
        cutover.keyframe_timestamp
    );
}

#[test]
fn signals_during_a_move_are_coalesced() {
    let mut world = World::new(Stream::default());
    world.faults = vec![
        at(1.2, Fault::GoAway { server: 0 }),
        at(1.25, Fault::GoAway { server: 0 }),
        at(
            1.3,
            Fault::ReconnectRequest {
                server: 0,
                to: None,
            },
        ),
    ];
    let (report, outcome) = simulate(world);
    assert_eq!(report.cutovers.len(), 1);
    assert_eq!(outcome.opens.len(), 2);
}

#[test]
fn a_signal_from_the_new_server_moves_the_stream_again_after_the_switch() {
    let mut world = World::new(Stream::default());
    world.faults = vec![
        at(
            1.2,
            Fault::ReconnectRequest {
                server: 0,
                to: Some(1),
            },
        ),
        at(1.6, Fault::GoAway { server: 1 }),
    ];
    let (report, _) = simulate(world);
    let causes: Vec<_> = report.cutovers.iter().map(|c| c.cause).collect();
    assert_eq!(causes, [Cause::ReconnectRequest, Cause::GoAway]);
}

/// The longest time the ingests received no new frame (repeats do not count).
fn longest_stall(outcome: &sim::Outcome) -> Duration {
    let mut arrivals: Vec<(Duration, u32)> = outcome
        .received
        .values()
        .flat_map(|r| r.tags.iter())
        .filter_map(|(tag, at)| Some((*at, sim::frame_id(tag)?)))
        .collect();
    arrivals.sort();
    let mut seen = std::collections::BTreeSet::new();
    let fresh: Vec<Duration> = arrivals
        .into_iter()
        .filter(|&(_, id)| seen.insert(id))
        .map(|(at, _)| at)
        .collect();
    fresh
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

/// A world whose server 0 goes silent at 2 s for `lasting`, congestion rules on.
fn silent_world(lasting: f64) -> World {
    let mut world = World::new(Stream {
        duration: secs(2.0 + lasting + 4.0),
        ..Stream::default()
    });
    world.config.congestion = Some(DropThresholds::default());
    world.faults = vec![at(
        2.0,
        Fault::SilentLoss {
            server: 0,
            lasting: secs(lasting),
        },
    )];
    world
}

#[test]
fn a_silent_path_races_fresh_connections_within_a_second_and_drops_nothing() {
    for lasting in [3.0, 12.0, 25.0] {
        let (report, outcome) = simulate(silent_world(lasting));
        assert_eq!(
            outcome.dropped_frames, 0,
            "silent {lasting} s: dropped frames"
        );
        assert_eq!(report.lost, 0, "silent {lasting} s: lost frames");
        let first_retry = outcome.opens.get(1).expect("a reconnection").0;
        assert!(
            first_retry >= secs(2.0 + 0.9) && first_retry <= secs(2.0 + 1.3),
            "silent {lasting} s: the first new connection at {first_retry:?}, not about a second in"
        );
        // Fresh attempts every 250 ms: one starts within 250 ms of the path's return and
        // publishes within 8 round trips.
        let stall = longest_stall(&outcome);
        assert!(
            stall <= secs(lasting + 0.25 + 0.2 + 0.1),
            "silent {lasting} s: stalled {stall:?}"
        );
        // The old connection, if its retransmission came first, or one new connection.
        assert!(
            report.cutovers.len() <= 1,
            "silent {lasting} s: {:?}",
            report.cutovers
        );
    }
}

/// TCP backs off while the path is silent: the old connection would stay mute seconds
/// after the path returns (12 s of silence: its retransmission comes at 12.6 s), and so
/// would a single new attempt (its SYNs at 1, 3, 7 s...). Past the buffer's length the
/// race goes on, a fresh attempt a second: the stream is back within about a second of
/// the path, oldest groups lost.
#[test]
fn a_silence_longer_than_the_buffer_keeps_racing_and_is_back_within_a_second() {
    let mut world = silent_world(12.0);
    world.config.buffer.max_duration = secs(2.0);
    let (report, outcome) = simulate(world);
    assert!(report.lost > 0, "12 s fit a 2 s buffer?");
    assert_eq!(report.cutovers.len(), 1, "{:?}", report.cutovers);
    // Silent from 2 s, racing from 3 s, past the buffer from 5 s: an attempt a second.
    let past: Vec<Duration> = outcome
        .opens
        .iter()
        .map(|(at, _, _)| *at)
        .filter(|at| *at > secs(5.3) && *at <= secs(14.0))
        .collect();
    assert!(past.len() >= 8, "attempts past the buffer: {past:?}");
    assert!(
        past.windows(2).all(|w| w[1] - w[0] <= secs(1.05)),
        "attempts past the buffer: {past:?}"
    );
    let stall = longest_stall(&outcome);
    assert!(stall <= secs(12.0 + 1.0 + 0.3), "stalled {stall:?}");
}

/// A path that never comes back: the race gives up when the reconnection schedule would
/// have (3 attempts: 0 + 2 + 3 s), after the buffer's length.
#[test]
fn a_path_silent_for_good_gives_up_when_the_schedule_would_have() {
    let mut world = silent_world(600.0);
    world.config.buffer.max_duration = secs(2.0);
    world.config.reconnect.max_retries = 3;
    let outcome = sim::run(world);
    match &outcome.result {
        Err(SessionError::GaveUp { attempts, .. }) if *attempts > 3 => {}
        other => panic!("expected giving up after the race's attempts: {other:?}"),
    }
    // Declared dead about 3 s in, then the buffer's 2 s and the schedule's 5 s.
    assert!(
        outcome.ended_at >= secs(9.9) && outcome.ended_at <= secs(11.5),
        "gave up at {:?}",
        outcome.ended_at
    );
}

#[test]
fn a_fresh_connection_beats_the_old_ones_retransmission_backoff() {
    let (_, outcome) = simulate(silent_world(6.5));
    let stall = longest_stall(&outcome);
    assert!(stall < secs(6.5 + 0.6), "stalled {stall:?}");
    let winner = outcome.received.keys().last().expect("connections");
    assert_ne!(*winner, outcome.opens[0].1, "the old connection carried on");
}

#[test]
fn a_path_back_before_any_new_connection_publishes_keeps_the_old_one() {
    // Back after 1.3 s: TCP's retransmission at 1.4 s arrives before the racing attempts
    // (their SYNs were lost) try again.
    let (report, outcome) = simulate(silent_world(1.3));
    assert!(outcome.opens.len() > 1, "no race: {:?}", outcome.opens);
    assert!(report.cutovers.is_empty(), "moved: {:?}", report.cutovers);
    assert_eq!(outcome.received.len(), 1, "another connection published");
    assert_eq!(outcome.dropped_frames, 0);
}

#[test]
fn a_server_that_holds_the_silent_connections_key_gets_it_back_at_once() {
    let mut world = silent_world(3.0);
    world.servers[0].single_publisher = true;
    world.servers[0].idle_timeout = secs(30.0);
    let (report, outcome) = simulate(world);
    assert_eq!(report.lost, 0);
    assert_eq!(outcome.dropped_frames, 0);
    let stall = longest_stall(&outcome);
    assert!(stall <= secs(3.0 + 1.0), "stalled {stall:?}");
}

#[test]
fn congestion_drops_only_video_nothing_refers_to_and_never_audio_or_keyframes() {
    let mut world = World::new(Stream::default());
    world.config.congestion = Some(DropThresholds::default());
    world.servers[0].bandwidth = 9_000;
    let (_, outcome) = simulate(world);
    assert!(outcome.dropped_frames > 0, "a slow link drops video");
    // It acknowledges, only slowly: not a silent path, so no new connection.
    assert_eq!(outcome.opens.len(), 1, "reconnected on a slow path");
}

#[test]
fn dynamic_bitrate_lowers_instead_of_dropping() {
    let mut world = World::new(Stream::default());
    world.config.dynamic_bitrate = Some(DynamicBitrate::new(120, 20));
    world.servers[0].bandwidth = 9_000;
    let (_, outcome) = simulate(world);
    assert_eq!(outcome.dropped_frames, 0);
    let lowered = outcome.events.iter().any(
        |(_, e)| matches!(e, SessionEvent::BitrateChanged(c) if c.step == BitrateStep::Lowered),
    );
    assert!(lowered, "the bitrate went down: {:?}", outcome.events);
}

#[test]
fn reconnection_follows_the_schedule_while_the_server_is_down() {
    let mut world = World::new(Stream::default());
    world.config.reconnect = ReconnectPolicy {
        initial_delay: secs(1.0),
        ..ReconnectPolicy::default()
    };
    world.faults = vec![at(
        1.0,
        Fault::Restart {
            server: 0,
            down: secs(5.0),
        },
    )];
    let (_, outcome) = simulate(world);
    let delays: Vec<Duration> = outcome
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            SessionEvent::Reconnecting { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    assert_eq!(
        delays,
        [secs(0.0), secs(1.0), secs(1.5), secs(2.25), secs(3.375)],
        "immediately, then OBS's backoff until the server is back"
    );
}

#[test]
fn reconnection_gives_up_after_the_configured_attempts() {
    let mut world = World::new(Stream::default());
    world.config.reconnect.max_retries = 3;
    world.config.reconnect.initial_delay = secs(0.5);
    world.faults = vec![at(
        1.0,
        Fault::Restart {
            server: 0,
            down: secs(60.0),
        },
    )];
    let outcome = sim::run(world);
    match outcome.result {
        Err(SessionError::GaveUp { attempts: 3, .. }) => {}
        other => panic!("expected giving up after 3 attempts: {other:?}"),
    }
}

#[test]
fn rebased_timestamps_restart_at_zero_on_every_connection() {
    let mut world = World::new(Stream::default());
    world.config.rebase_timestamps = true;
    world.faults = vec![at(2.5, Fault::GoAway { server: 0 })];
    let outcome = sim::run(world);
    assert!(outcome.result.is_ok());
    for received in outcome.received.values() {
        let first = received.tags.iter().find(|(t, _)| t.is_frame());
        if let Some((tag, _)) = first {
            assert_eq!(tag.timestamp, 0, "every connection starts at zero");
        }
    }
}

#[test]
fn connect_attempts_that_hang_time_out_and_the_session_retries() {
    let mut world = World::new(Stream::default());
    world.servers[1] = ServerSpec::default();
    world.faults = vec![
        at(
            0.5,
            Fault::Hang {
                server: 0,
                lasting: secs(20.0),
            },
        ),
        at(
            1.0,
            Fault::Restart {
                server: 0,
                down: secs(0.0),
            },
        ),
    ];
    let (report, outcome) = simulate(world);
    assert_eq!(report.cutovers.len(), 1);
    let took = report.cutovers[0].took;
    assert!(
        took >= sim::CONNECT_TIMEOUT,
        "waited for the hanging attempt: {took:?}"
    );
    assert!(outcome.opens.len() >= 3);
}

/// Regression (found by the random schedules): frames the buffer limit evicted before the
/// server acknowledged them were not counted when their connection then failed.
#[test]
fn frames_the_buffer_limit_evicted_unacknowledged_count_as_lost_when_the_path_dies() {
    let mut world = World::new(Stream {
        duration: secs(8.0),
        ..Stream::default()
    });
    world.config.buffer = obs_goaway::session::BufferLimits {
        max_duration: secs(1.5),
        max_bytes: usize::MAX,
    };
    world.faults = vec![at(
        2.0,
        Fault::SilentLoss {
            server: 0,
            lasting: secs(6.0),
        },
    )];
    let (report, _) = simulate(world);
    assert!(
        report.lost > 0,
        "an outage longer than the buffer loses frames"
    );
}

/// Regression (found by the random schedules): a connection resumed after the buffer limit
/// evicted the keyframe before it started with video no decoder can use.
#[test]
fn a_resume_without_a_retained_keyframe_waits_for_the_next_one() {
    let mut world = World::new(Stream {
        duration: secs(9.0),
        gop: 90,
        ..Stream::default()
    });
    world.config.buffer = obs_goaway::session::BufferLimits {
        max_duration: secs(1.0),
        max_bytes: usize::MAX,
    };
    world.faults = vec![at(
        4.5,
        Fault::Restart {
            server: 0,
            down: secs(0.0),
        },
    )];
    // The check: every connection's first video frame is a keyframe.
    let (report, outcome) = simulate(world);
    assert!(report.lost > 0, "the video up to the next keyframe is lost");
    let resumed = outcome
        .received
        .values()
        .nth(1)
        .expect("a second connection");
    let first_video = resumed
        .tags
        .iter()
        .find(|(t, _)| t.kind == obs_goaway::media::TagKind::Video && t.is_frame())
        .expect("video on the new connection");
    assert_eq!(first_video.0.timestamp, 6000);
}

/// Regression (found by the random schedules): when the new connection took longer than the
/// keyframe deadline, the switch happened at the next packet even though keyframes had come.
#[test]
fn a_slow_new_connection_still_takes_over_at_a_keyframe() {
    let mut world = World::new(Stream {
        duration: secs(14.0),
        ..Stream::default()
    });
    world.config.keyframe_deadline = secs(3.0);
    world.faults = vec![
        at(
            1.1,
            Fault::Hang {
                server: 0,
                lasting: secs(5.0),
            },
        ),
        at(1.2, Fault::GoAway { server: 0 }),
    ];
    let (report, _) = simulate(world);
    let cutover = &report.cutovers[0];
    assert!(cutover.took > sim::CONNECT_TIMEOUT);
    assert_eq!(
        cutover.keyframe_timestamp % 1000,
        0,
        "switched at a keyframe ({} ms)",
        cutover.keyframe_timestamp
    );
}

/// Found by seed 5588: a resume buffer shorter than a group of pictures, emptied by its limit
/// during an outage, let the next connection start at an inter frame.
#[test]
fn a_resume_after_the_buffer_emptied_starts_at_a_keyframe() {
    schedule::run_seed(5588).unwrap_or_else(|error| panic!("{error}"));
}
