//! Lowering the video encoder's bitrate instead of dropping frames when the connection
//! cannot keep up: OBS's "Dynamically change bitrate to manage congestion", reproduced step
//! for step from its RTMP output (plugins/obs-outputs/rtmp-stream.c: `dbr_add_frame`,
//! `dbr_bitrate_lowered`, `dbr_inc_bitrate` and their callers, the same from 29.0 to 32.2),
//! so a user who turned it on gets what OBS's own output does.
//!
//! - Throughput: the media bytes handed to the connection over the last one to two seconds,
//!   minus the audio bitrate (OBS: `dbr_add_frame` after every send).
//! - Lowering: when the unsent media spans 200 ms or more, the bitrate goes down to that
//!   throughput (rounded down to 100 kb/s, at least 50) if it is lower than the current
//!   bitrate; the samples are then forgotten, so the next lowering waits for a second of new
//!   ones. Without a lower estimate, a raise that came too early is undone.
//! - Raising: four seconds after any change, by a tenth of the original bitrate, then every
//!   four seconds until the original is reached.
//!
//! No clock is read here: the session passes the time in, so the policy is deterministic.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// Unsent media from which the bitrate is lowered (OBS: `DBR_TRIGGER_USEC`).
const TRIGGER: Duration = Duration::from_millis(200);
/// A throughput estimate needs samples spanning this long (OBS: `MIN_ESTIMATE_DURATION_MS`).
const MIN_ESTIMATE_SPAN: Duration = Duration::from_secs(1);
/// Samples spanning this long lose their oldest (OBS: `MAX_ESTIMATE_DURATION_MS`).
const MAX_ESTIMATE_SPAN: Duration = Duration::from_secs(2);
/// The lowest bitrate asked for, in kb/s (OBS's floor).
const FLOOR_KBPS: u32 = 50;

/// One tag handed to the connection (OBS: `struct dbr_frame`).
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// When it could have gone: when its predecessor went.
    ready: Instant,
    bytes: u64,
}

/// Dynamic bitrate for a session whose producer is a live encoder that can change its
/// bitrate on the fly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamicBitrate {
    /// The encoder's configured video bitrate (kb/s): the start and the ceiling.
    pub video_kbps: u32,
    /// The audio bitrate (kb/s), taken off the measured throughput to get the room left for
    /// video.
    pub audio_kbps: u32,
    /// Wait after each change before raising again (OBS: 4 s, `DBR_INC_TIMER`).
    pub raise_interval: Duration,
}

impl DynamicBitrate {
    /// OBS's behaviour for an encoder configured at `video_kbps` next to `audio_kbps` of
    /// audio.
    pub fn new(video_kbps: u32, audio_kbps: u32) -> Self {
        Self {
            video_kbps,
            audio_kbps,
            raise_interval: Duration::from_secs(4),
        }
    }
}

/// Why the bitrate changed; each is one of OBS's log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitrateStep {
    /// Lowered to the measured throughput.
    Lowered,
    /// Congestion right after a raise, with no lower estimate yet: back to the bitrate
    /// before that raise.
    BackToPrevious,
    /// Raised; more raises follow.
    Raised,
    /// Raised back to the original bitrate: done.
    Recovered,
}

/// A new video bitrate for the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitrateChange {
    /// The bitrate to set, in kb/s.
    pub kbps: u32,
    /// Why.
    pub step: BitrateStep,
}

/// OBS's wording, so logs read the same with either output.
impl fmt::Display for BitrateChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kbps = self.kbps;
        match self.step {
            BitrateStep::Lowered => write!(f, "bitrate decreased to: {kbps}"),
            BitrateStep::BackToPrevious => {
                write!(
                    f,
                    "going back to prev bitrate; bitrate decreased to: {kbps}"
                )
            }
            BitrateStep::Raised => write!(f, "bitrate increased to: {kbps}, waiting"),
            BitrateStep::Recovered => write!(f, "bitrate increased to: {kbps}, done"),
        }
    }
}

/// The dynamic bitrate state of one session.
///
/// Inputs: [`on_sent`](Self::on_sent) for every tag handed to the connection,
/// [`reset_estimate`](Self::reset_estimate) when a new connection takes over. For every
/// incoming video frame, in this order (OBS's): [`poll_raise`](Self::poll_raise), then, when
/// the unsent media was measured, [`on_backlog`](Self::on_backlog). Each returns the change
/// to apply, if any.
#[derive(Debug)]
pub(crate) struct BitrateControl {
    config: DynamicBitrate,
    current: u32,
    /// The bitrate before the last raise, until the next lowering (OBS: `dbr_prev_bitrate`).
    before_raise: Option<u32>,
    /// When to raise next, while below the original.
    raise_at: Option<Instant>,
    /// Recent tags handed over, oldest first; the window spans from the oldest's readiness
    /// to the last hand-over. OBS times each blocking send from its start: a tag that
    /// waited for the socket started waiting when the one before it went, so a burst of
    /// sends after a stall is measured over the stall too.
    samples: VecDeque<Sample>,
    sample_bytes: u64,
    /// When the last tag was handed over.
    last_sent: Option<Instant>,
    /// Room for video measured over the samples, in kb/s (OBS: `dbr_est_bitrate`).
    estimate: Option<u32>,
}

impl BitrateControl {
    pub(crate) fn new(config: DynamicBitrate) -> Self {
        Self {
            config,
            current: config.video_kbps,
            before_raise: None,
            raise_at: None,
            samples: VecDeque::new(),
            sample_bytes: 0,
            last_sent: None,
            estimate: None,
        }
    }

    /// The bitrate asked of the encoder now, in kb/s.
    pub(crate) fn current(&self) -> u32 {
        self.current
    }

    /// `bytes` of media were handed to the connection at `now`.
    pub(crate) fn on_sent(&mut self, now: Instant, bytes: u64) {
        let ready = self.last_sent.replace(now).unwrap_or(now);
        self.samples.push_back(Sample { ready, bytes });
        self.sample_bytes += bytes;
        let Some(&oldest) = self.samples.front() else {
            return;
        };
        let span = now.saturating_duration_since(oldest.ready);
        if span >= MAX_ESTIMATE_SPAN {
            // One sample out per sample in, as OBS does: the window slides, never jumps.
            self.sample_bytes -= oldest.bytes;
            self.samples.pop_front();
        }
        self.estimate = (span >= MIN_ESTIMATE_SPAN)
            .then(|| {
                let ms = span.as_millis().max(1);
                let bytes_per_second = u128::from(self.sample_bytes) * 1000 / ms;
                u32::try_from(bytes_per_second * 8 / 1000).unwrap_or(u32::MAX)
            })
            .filter(|&kbps| kbps > 0)
            .map(|kbps| kbps.saturating_sub(self.config.audio_kbps).max(FLOOR_KBPS));
    }

    /// Forgets the throughput measured so far: a new connection's says nothing of the old
    /// one's, and the pause between them would read as a slow link.
    pub(crate) fn reset_estimate(&mut self) {
        self.forget_samples();
        self.last_sent = None;
    }

    fn forget_samples(&mut self) {
        self.samples.clear();
        self.sample_bytes = 0;
        self.estimate = None;
    }

    /// Raises the bitrate if its time has come (OBS: `dbr_inc_bitrate`).
    #[must_use]
    pub(crate) fn poll_raise(&mut self, now: Instant) -> Option<BitrateChange> {
        if self.raise_at.is_none_or(|at| now < at) {
            return None;
        }
        self.raise_at = None;
        self.before_raise = Some(self.current);
        // OBS raises by a tenth of the original; at least 1 kb/s so tiny bitrates get back.
        let step = (self.config.video_kbps / 10).max(1);
        self.current = self.current.saturating_add(step);
        let step = if self.current >= self.config.video_kbps {
            self.current = self.config.video_kbps;
            BitrateStep::Recovered
        } else {
            self.raise_at = Some(now + self.config.raise_interval);
            BitrateStep::Raised
        };
        Some(BitrateChange {
            kbps: self.current,
            step,
        })
    }

    /// The unsent media spans `waiting` (measured only with 5 or more tags unsent); lowers
    /// the bitrate if that is congestion (OBS: `dbr_bitrate_lowered`).
    #[must_use]
    pub(crate) fn on_backlog(&mut self, now: Instant, waiting: Duration) -> Option<BitrateChange> {
        if waiting < TRIGGER {
            return None;
        }
        let estimate = self.estimate.filter(|&kbps| kbps < self.current);
        let (kbps, step) = match (estimate, self.before_raise) {
            (Some(estimate), _) => {
                self.forget_samples();
                let rounded = (estimate / 100 * 100).max(FLOOR_KBPS);
                (rounded, BitrateStep::Lowered)
            }
            (None, Some(previous)) => (previous, BitrateStep::BackToPrevious),
            (None, None) => return None,
        };
        if kbps == self.current {
            return None;
        }
        self.before_raise = None;
        self.current = kbps;
        self.raise_at = Some(now + self.config.raise_interval);
        Some(BitrateChange { kbps, step })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn control() -> BitrateControl {
        BitrateControl::new(DynamicBitrate::new(2500, 160))
    }

    /// Hands over `kbps` of media (audio included) for `span`, one 20 ms packet at a time.
    fn send(control: &mut BitrateControl, from: Instant, span: Duration, kbps: u64) -> Instant {
        let packets = span.as_millis() as u32 / 20;
        for i in 0..=packets {
            control.on_sent(from + 20 * MS * i, kbps * 1000 / 8 / 50);
        }
        from + span
    }

    #[test]
    fn no_change_without_congestion_or_estimate() {
        let t0 = Instant::now();
        let mut control = control();
        assert_eq!(control.on_backlog(t0, 2000 * MS), None, "no estimate yet");
        let t = send(&mut control, t0, 1500 * MS, 1000);
        assert_eq!(control.on_backlog(t, 199 * MS), None, "under 200 ms");
        assert_eq!(
            control.poll_raise(t + 60_000 * MS),
            None,
            "nothing to raise"
        );
        assert_eq!(control.current(), 2500);
    }

    #[test]
    fn an_estimate_needs_a_second_of_samples() {
        let t0 = Instant::now();
        let mut control = control();
        let t = send(&mut control, t0, 980 * MS, 1000);
        assert_eq!(control.on_backlog(t, 500 * MS), None);
        let t = send(&mut control, t, 40 * MS, 1000);
        let change = control.on_backlog(t, 500 * MS).expect("lowered");
        assert_eq!(change.step, BitrateStep::Lowered);
    }

    #[test]
    fn congestion_lowers_to_the_throughput_less_audio_rounded_down() {
        let t0 = Instant::now();
        let mut control = control();
        // 1000 kb/s over 1.5 s: 1000 - 160 = 840, rounded down to 800.
        let t = send(&mut control, t0, 1500 * MS, 1000);
        let change = control.on_backlog(t, 200 * MS).unwrap();
        assert_eq!(
            change,
            BitrateChange {
                kbps: 800,
                step: BitrateStep::Lowered
            }
        );
        assert_eq!(change.to_string(), "bitrate decreased to: 800");
        assert_eq!(control.current(), 800);
    }

    #[test]
    fn after_lowering_the_next_waits_for_a_fresh_estimate() {
        let t0 = Instant::now();
        let mut control = control();
        let t = send(&mut control, t0, 1500 * MS, 1000);
        assert!(control.on_backlog(t, 300 * MS).is_some());
        let t = send(&mut control, t, 900 * MS, 400);
        assert_eq!(
            control.on_backlog(t, 900 * MS),
            None,
            "samples were forgotten"
        );
        let t = send(&mut control, t, 200 * MS, 400);
        let change = control.on_backlog(t, 900 * MS).unwrap();
        assert_eq!(change.kbps, 200, "400 - 160 = 240, rounded down");
    }

    #[test]
    fn a_throughput_at_or_above_the_bitrate_changes_nothing() {
        let t0 = Instant::now();
        let mut control = control();
        let t = send(&mut control, t0, 1500 * MS, 2700);
        assert_eq!(control.on_backlog(t, 800 * MS), None);
        assert_eq!(control.current(), 2500);
    }

    #[test]
    fn never_below_50_kbps() {
        let t0 = Instant::now();
        let mut control = control();
        let t = send(&mut control, t0, 1500 * MS, 100);
        assert_eq!(control.on_backlog(t, 800 * MS).unwrap().kbps, 50);
    }

    #[test]
    fn raises_a_tenth_every_interval_until_the_original() {
        let t0 = Instant::now();
        let mut control = control();
        let t = send(&mut control, t0, 1500 * MS, 2000);
        assert_eq!(control.on_backlog(t, 300 * MS).unwrap().kbps, 1800);
        assert_eq!(control.poll_raise(t + 3999 * MS), None, "not before 4 s");
        let mut at = t;
        let mut raises = Vec::new();
        for _ in 0..3 {
            at += 4000 * MS;
            raises.push(control.poll_raise(at).expect("a raise every 4 s"));
            assert_eq!(control.poll_raise(at + 3999 * MS), None);
        }
        let kbps: Vec<u32> = raises.iter().map(|c| c.kbps).collect();
        assert_eq!(kbps, [2050, 2300, 2500], "a tenth of 2500 each time");
        assert_eq!(raises[1].to_string(), "bitrate increased to: 2300, waiting");
        assert_eq!(raises[2].step, BitrateStep::Recovered);
        assert_eq!(raises[2].to_string(), "bitrate increased to: 2500, done");
        assert_eq!(control.poll_raise(at + 60_000 * MS), None, "done raising");
        assert_eq!(control.current(), 2500);
    }

    #[test]
    fn congestion_right_after_a_raise_goes_back_to_the_bitrate_before_it() {
        let t0 = Instant::now();
        let mut control = control();
        let t = send(&mut control, t0, 1500 * MS, 1000);
        assert_eq!(control.on_backlog(t, 300 * MS).unwrap().kbps, 800);
        let t = t + 4000 * MS;
        assert_eq!(control.poll_raise(t).unwrap().kbps, 1050);
        // Still congested, and no estimate since the lowering: undo the raise.
        let change = control.on_backlog(t + 100 * MS, 400 * MS).unwrap();
        assert_eq!(
            change,
            BitrateChange {
                kbps: 800,
                step: BitrateStep::BackToPrevious
            }
        );
        assert_eq!(
            control.on_backlog(t + 200 * MS, 400 * MS),
            None,
            "only once"
        );
        assert_eq!(
            control.poll_raise(t + 4099 * MS),
            None,
            "the raise timer restarted"
        );
        assert_eq!(control.poll_raise(t + 4100 * MS).unwrap().kbps, 1050);
    }

    #[test]
    fn a_new_connection_starts_a_new_estimate() {
        let t0 = Instant::now();
        let mut control = control();
        let t = send(&mut control, t0, 1500 * MS, 3000);
        control.reset_estimate();
        assert_eq!(
            control.on_backlog(t, 800 * MS),
            None,
            "nothing measured yet"
        );
        // Without the reset, the 5 s between the connections would read as a slow link.
        let t = send(&mut control, t + 5000 * MS, 1200 * MS, 3000);
        assert_eq!(control.on_backlog(t, 800 * MS), None);
    }

    #[test]
    fn the_window_slides_one_sample_at_a_time() {
        let t0 = Instant::now();
        let mut control = control();
        // 2 s at 3000 kb/s, then 400 kb/s: the estimate follows within the window.
        let t = send(&mut control, t0, 2000 * MS, 3000);
        assert_eq!(control.on_backlog(t, 800 * MS), None);
        let t = send(&mut control, t, 2000 * MS, 400);
        assert_eq!(control.on_backlog(t, 800 * MS).unwrap().kbps, 200);
    }
}
