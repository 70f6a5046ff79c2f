//! Networks that fail the way real ones do (issue 15) in real OBS 29.0.2, side by side with
//! OBS's own output: OBS in one network namespace, the reference ingest in another, and one
//! of `common::silent`'s cases 9 s after the first frame arrived (`common::obs_silent`):
//! every packet dropped in the ingest's namespace for 3 s or 12 s (the 12 s once more with
//! the plugin's resume buffer cut to 4 s), a path change, or a `tbf` link at half the
//! stream's bitrate for 10 s. Each test runs OBS twice on the same fault, with OBS's own RTMP
//! output and with obs-goaway, and prints both rows.
//!
//! Where its buffer covers the fault, obs-goaway must lose no video frame (every frame OBS
//! handed it is in the recording, which decodes completely) and stall no longer than the
//! silence plus 1.5 s (the goal is 0.5 s: benches/obs_silent_network.rs prints the exact
//! figures for every OBS version; the slack is for a loaded machine). Past its buffer it
//! must drop the oldest, say so, and resume at a keyframe with its clock running on; on a
//! slow link that still acknowledges it must never reconnect. OBS's own output is measured
//! and printed; on the 12 s silence it must have lost video, which is the point of the
//! comparison.
//!
//! Needs root (network namespaces, nftables, tc), obs-studio, xvfb, ffmpeg and the release
//! build of the plugin; each OBS run takes the machine-wide OBS lock. About 8 minutes.

mod common;

use std::time::Duration;

use common::obs::ObsVersion;
use common::obs_silent::{run, ObsSilent, Output};
use common::silent::{Case, Measured, FPS};
use obs_goaway::media::TagKind;

/// The stall may outlast the silence by this much here (see the module's comment).
const STALL_SLACK: Duration = Duration::from_millis(1500);

/// Runs OBS 29.0.2 with each output through `common::silent`'s case `name`; prints the
/// rows and each run's timeline; returns (OBS's own, obs-goaway).
fn side_by_side(name: &str) -> (ObsSilent, ObsSilent) {
    let case = Case::named(name);
    let [builtin, goaway] = Output::ALL.map(|output| {
        let run = run(ObsVersion::Host, output, &case);
        eprintln!("{}\n", run.outcome);
        run
    });
    eprintln!("{}", Measured::header(&["output", "case"]));
    for (output, run) in Output::ALL.iter().zip([&builtin, &goaway]) {
        eprintln!("{}", run.measured.row(&[output.name(), name]));
    }
    (builtin, goaway)
}

/// Neither OBS nor the plugin failed or hung (OBS quit when asked, the plugin never stopped
/// the stream), and the recording decodes completely.
fn assert_ran_and_decodes(run: &ObsSilent) {
    let (m, o) = (&run.measured, &run.outcome);
    assert!(m.publisher_ok, "OBS or the plugin failed:\n{o}\n{}", m.log);
    assert!(
        !m.corrupt,
        "{} of {} recorded video frames decode:\n{o}",
        run.decoded_video, o.video_frames
    );
}

/// Frames OBS may hand the output in the moment before its quit stops the output at once
/// (OBS quits with a forced stop: its own output frees what it has not sent, and obs-goaway
/// abandons what it has not written yet, the frame in hand at most at 30 fps).
const UNSENT_AT_FORCED_STOP: u64 = 2;

/// obs-goaway lost nothing: every video frame OBS handed it reached the recording, but for
/// the last ones OBS's quit took back (a forced stop, which obs-goaway then logs), with no
/// gap in the timestamps; the recording decodes completely and the stream ran its full
/// length by the clock.
fn assert_lossless(run: &ObsSilent) {
    let (m, o) = (&run.measured, &run.outcome);
    assert_ran_and_decodes(run);
    assert!(o.obs_frames_output > 0, "OBS output no frame:\n{o}");
    assert!(
        o.video_frames <= o.obs_frames_output,
        "more video frames recorded than OBS handed to obs-goaway:\n{o}"
    );
    let unsent = o.obs_frames_output - o.video_frames;
    let forced = m.log.contains("[obs-goaway] stream stopped at once");
    assert!(
        unsent == 0 || (forced && unsent <= UNSENT_AT_FORCED_STOP),
        "{unsent} of the video frames OBS handed to obs-goaway are not in the recording \
         (OBS's quit stopped the stream at once: {forced}):\n{o}"
    );
    assert_eq!(
        o.video_lost_in_gaps, 0,
        "video frames missing between recorded ones:\n{o}"
    );
    assert_eq!(m.lost, 0, "frames lost to the resume buffer:\n{o}");
    // OBS itself skips frames when the machine cannot encode in time; more than a second
    // of them would make the comparison above meaningless.
    assert!(
        m.video_missing <= u64::from(FPS),
        "{} video frames missing by the clock (OBS's encoder fell behind?):\n{o}",
        m.video_missing
    );
}

fn assert_stall_within(run: &ObsSilent, silence: Duration) {
    assert!(
        run.measured.longest_stall <= silence + STALL_SLACK,
        "stalled {:?} for a {silence:?} silence:\n{}",
        run.measured.longest_stall,
        run.outcome
    );
}

/// obs-goaway noticed `what` (the fault) within 3 s and published on a new connection.
fn assert_noticed_and_reconnected(run: &ObsSilent, what: &str) {
    let detected = run
        .measured
        .time_to_detect
        .unwrap_or_else(|| panic!("{what} was never noticed:\n{}", run.outcome));
    assert!(
        detected <= Duration::from_secs(3),
        "{what} noticed after {detected:?}:\n{}",
        run.outcome
    );
    assert!(
        run.measured.connections >= 2,
        "never reconnected:\n{}",
        run.outcome
    );
}

#[test]
fn obs_29_silent_3_s_plugin_loses_nothing_and_stalls_about_the_silence() {
    let silence = Duration::from_secs(3);
    let (_builtin, goaway) = side_by_side("silent 3 s");
    assert_lossless(&goaway);
    // The silence was real: the plugin's viewers waited most of it.
    assert!(
        goaway.measured.longest_stall >= Duration::from_secs(2),
        "{}",
        goaway.outcome
    );
    assert_stall_within(&goaway, silence);
}

#[test]
fn obs_29_silent_12_s_plugin_loses_nothing_where_obs_own_output_loses_video() {
    let silence = Duration::from_secs(12);
    let (builtin, goaway) = side_by_side("silent 12 s");
    assert_lossless(&goaway);
    assert_noticed_and_reconnected(&goaway, "the silence");
    assert_stall_within(&goaway, silence);
    assert!(
        builtin.measured.video_missing > 0,
        "OBS's own output lost nothing in a 12 s silence?\n{}",
        builtin.outcome
    );
}

/// The recorded video frames: (timestamp in ms, keyframe), in the recording's order.
fn recorded_video(run: &ObsSilent) -> Vec<(u32, bool)> {
    run.outcome
        .ingests
        .iter()
        .flat_map(|ingest| &ingest.tags)
        .filter(|t| t.kind == TagKind::Video && t.is_frame())
        .map(|t| (t.timestamp, t.is_keyframe()))
        .collect()
}

/// The stream went on after the fault: at least 5 s of video stamped 2 s or more past its
/// end (the stream's clock starts about when its first frame arrived; runs go on for 10 s
/// or more after a fault).
fn assert_media_after_the_fault(run: &ObsSilent, case: &Case) {
    let after = case.at + case.fault.length() + Duration::from_secs(2);
    let later = recorded_video(run)
        .iter()
        .filter(|(timestamp, _)| u128::from(*timestamp) >= after.as_millis())
        .count() as u64;
    assert!(
        later >= 5 * u64::from(FPS),
        "{later} video frames recorded after {after:?}:\n{}",
        run.outcome
    );
}

#[test]
fn obs_29_path_change_plugin_moves_over_the_new_path_at_once_and_loses_nothing() {
    let (builtin, goaway) = side_by_side("path change");
    assert_lossless(&goaway);
    assert_noticed_and_reconnected(&goaway, "the lost path");
    assert!(
        goaway.measured.longest_stall <= Duration::from_secs(3),
        "stalled {:?} on a path change:\n{}",
        goaway.measured.longest_stall,
        goaway.outcome
    );
    // OBS's own output keeps writing to the vanished address until it gives up on it.
    assert!(
        builtin.measured.video_missing > 0,
        "OBS's own output lost nothing on a path change?\n{}",
        builtin.outcome
    );
}

#[test]
fn obs_29_silence_longer_than_a_4_s_buffer_plugin_drops_the_oldest_and_resumes_at_a_keyframe() {
    let name = "silent 12 s, 4 s buffer";
    let case = Case::named(name);
    let (_builtin, goaway) = side_by_side(name);
    let (m, o) = (&goaway.measured, &goaway.outcome);
    assert_ran_and_decodes(&goaway);
    assert!(
        m.lost > 0,
        "a 12 s silence fit a 4 s buffer? (no 'resume buffer full' line)\n{o}"
    );
    assert!(m.connections >= 2, "never reconnected:\n{o}");
    assert!(
        m.video_missing <= u64::from(FPS) * 12,
        "{} video frames missing, more than the silence:\n{o}",
        m.video_missing
    );
    assert!(!o.timestamps_restarted, "the clock restarted:\n{o}");
    // What the buffer could not hold is one gap in the timestamps, and the stream resumes
    // after it at a keyframe (the oldest group of pictures still held).
    let video = recorded_video(&goaway);
    let resumed = video
        .windows(2)
        .max_by_key(|pair| pair[1].0.saturating_sub(pair[0].0))
        .map(|pair| pair[1])
        .expect("no video recorded");
    assert!(
        resumed.1,
        "resumed at frame {} ms, not a keyframe:\n{o}",
        resumed.0
    );
    assert!(
        video.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "recorded video timestamps go backwards:\n{o}"
    );
    assert_media_after_the_fault(&goaway, &case);
    // Past the buffer the race goes on, a fresh connection every second.
    assert_stall_within(&goaway, case.fault.length() + Duration::from_secs(1));
}

#[test]
fn obs_29_tbf_at_half_the_bitrate_plugin_never_reconnects() {
    let name = "tbf half rate 10 s";
    let case = Case::named(name);
    let (_builtin, goaway) = side_by_side(name);
    let (m, o) = (&goaway.measured, &goaway.outcome);
    assert_ran_and_decodes(&goaway);
    assert_eq!(m.connections, 1, "reconnected on a slow link:\n{o}");
    assert!(
        m.time_to_detect.is_none(),
        "took a slow link for a dead one:\n{o}"
    );
    assert_eq!(m.lost, 0, "frames lost to the resume buffer:\n{o}");
    // The link was slower than the stream: the plugin dropped video by OBS's congestion
    // rules (it lets little unsent data sit in the socket, TCP_NOTSENT_LOWAT, so the backlog
    // waits in its queue where the rules see it), no more than the slow time, and stayed
    // live instead of falling behind.
    assert!(m.video_missing > 0, "dropped nothing on a slow link:\n{o}");
    assert!(
        m.video_missing <= u64::from(FPS) * 10,
        "{} video frames missing, more than the slow time:\n{o}",
        m.video_missing
    );
    assert!(
        m.longest_stall <= Duration::from_secs(3),
        "stalled {:?} on a slow link:\n{o}",
        m.longest_stall
    );
    assert_media_after_the_fault(&goaway, &case);
}
