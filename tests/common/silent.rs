//! Silent-network scenarios, shared by tests/silent_network.rs (which asserts) and
//! benches/silent_network.rs (which prints the table): the CLI publisher in one network
//! namespace, the reference ingest (`goaway serve`) in another, one fault ([`Fault`]) some
//! seconds into a real-time publish, and what it cost ([`Measured`]).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use obs_goaway::media::compare::compare;
use obs_goaway::media::{Tag, TagKind};

use super::netns::{wait_until, Net};
use super::{read_flv, require, GOAWAY};

/// Frames per second of [`input`].
pub const FPS: u32 = 30;
/// Video bitrate of [`input`], kbit/s.
pub const VIDEO_KBIT: u32 = 1000;
/// Keyframe interval of [`input`], frames (2 s).
pub const GOP: u32 = 60;

/// A 40 s test pattern with a tone: x264 at about 1 Mb/s, a keyframe every 2 s, AAC. Made
/// once with ffmpeg and kept in the target directory.
pub fn input() -> PathBuf {
    static INPUT: OnceLock<PathBuf> = OnceLock::new();
    INPUT
        .get_or_init(|| {
            require("ffmpeg", "ffmpeg");
            let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("silent-network-40s.flv");
            if path.exists() {
                return path;
            }
            let partial = path.with_extension(format!("{}.part", std::process::id()));
            let rate = format!("{VIDEO_KBIT}k");
            let out = Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
                .arg(format!("testsrc=size=320x240:rate={FPS}:duration=40"))
                .args([
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=48000:duration=40",
                ])
                .args(["-c:v", "libx264", "-preset", "veryfast", "-b:v", &rate])
                .args(["-minrate", &rate, "-maxrate", &rate, "-bufsize", &rate])
                .args(["-x264-params", "nal-hrd=cbr"])
                .args(["-g", &GOP.to_string(), "-keyint_min", &GOP.to_string()])
                .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv"])
                .arg(&partial)
                .output()
                .expect("running ffmpeg");
            assert!(
                out.status.success(),
                "ffmpeg: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::rename(&partial, &path).unwrap();
            path
        })
        .clone()
}

/// What goes wrong, and when (after the publisher said it is publishing).
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Every packet dropped in the ingest's namespace for this long.
    Silence(Duration),
    /// A second link and route, then the first link deleted.
    PathChange,
    /// The publisher's link limited to this many kbit/s for this long.
    Slow(u32, Duration),
}

impl Fault {
    /// How long the fault lasts (a path change is over at once).
    pub fn length(self) -> Duration {
        match self {
            Self::Silence(length) | Self::Slow(_, length) => length,
            Self::PathChange => Duration::ZERO,
        }
    }
}

/// One scenario.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its name in the table.
    pub name: &'static str,
    /// The fault.
    pub fault: Fault,
    /// When the fault begins, after publishing started.
    pub at: Duration,
    /// `--buffer-secs` of the publisher (`None`: the default 30 s).
    pub buffer_secs: Option<f64>,
}

impl Case {
    /// The cases of issue 15, in table order.
    pub fn all() -> Vec<Self> {
        let at = Duration::from_secs(9);
        let silence = |name, secs| Self {
            name,
            fault: Fault::Silence(Duration::from_secs(secs)),
            at,
            buffer_secs: None,
        };
        vec![
            silence("silent 3 s", 3),
            silence("silent 12 s", 12),
            silence("silent 25 s", 25),
            Self {
                name: "path change",
                fault: Fault::PathChange,
                at,
                buffer_secs: None,
            },
            Self {
                name: "silent 12 s, 4 s buffer",
                fault: Fault::Silence(Duration::from_secs(12)),
                at,
                buffer_secs: Some(4.0),
            },
            Self {
                name: "tbf half rate 10 s",
                fault: Fault::Slow(VIDEO_KBIT / 2, Duration::from_secs(10)),
                at,
                buffer_secs: None,
            },
        ]
    }

    /// The case of [`Case::all`] called `name`; panics if there is none.
    pub fn named(name: &str) -> Self {
        Self::all()
            .into_iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name}"))
    }
}

/// What a scenario cost.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Video frames in the input.
    pub video_frames: u64,
    /// Input video frames missing from the recording.
    pub video_missing: u64,
    /// Recorded frames that are not the input's, or out of order.
    pub corrupt: bool,
    /// The ingest's largest wait between consecutive frames (a stall a viewer sees).
    pub longest_stall: Duration,
    /// Connections that published (the publisher's count).
    pub connections: u32,
    /// Frames the publisher sent more than once.
    pub frames_resent: u64,
    /// Frames the publisher reported lost (buffer limit, drained connections).
    pub lost: u64,
    /// From the fault to the publisher's "path silent" or "connection lost" (`None`: it
    /// never said so).
    pub time_to_detect: Option<Duration>,
    /// Whether the publisher exited successfully.
    pub publisher_ok: bool,
    /// The publisher's stderr, for assertion messages.
    pub log: String,
}

impl Measured {
    /// A row of the table, after the `leading` columns (publisher, case, ...).
    pub fn row(&self, leading: &[&str]) -> String {
        format!(
            "| {} | {} of {} ({:.1} s) | {:.2} s | {} | {} | {} |",
            leading.join(" | "),
            self.video_missing,
            self.video_frames,
            self.video_missing as f64 / f64::from(FPS),
            self.longest_stall.as_secs_f64(),
            self.connections,
            self.frames_resent,
            self.time_to_detect
                .map_or_else(|| "-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        )
    }

    /// The table's header, after the `leading` column names.
    pub fn header(leading: &[&str]) -> String {
        let columns = [
            "video missing",
            "longest stall",
            "connections",
            "frames resent",
            "time to detect",
        ];
        let names: Vec<&str> = leading.iter().chain(&columns).copied().collect();
        format!("| {} |\n|{}", names.join(" | "), "---|".repeat(names.len()))
    }
}

/// A child killed (and reaped) when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of a child's output as they come, with the time each arrived.
type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

fn collect(stream: impl std::io::Read + Send + 'static) -> (Lines, mpsc::Receiver<()>) {
    let lines: Lines = Arc::default();
    let (done_tx, done) = mpsc::channel();
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push((Instant::now(), line));
        }
        let _ = done_tx.send(());
    });
    (lines, done)
}

fn find(lines: &Lines, needle: &str, after: Instant) -> Option<(Instant, String)> {
    lines
        .lock()
        .unwrap()
        .iter()
        .find(|(at, line)| *at >= after && line.contains(needle))
        .cloned()
}

/// The number just before `word` in `line` (`"3 lost, 0 duplicated"`, `"duplicated"`: 0).
pub fn number_before(line: &str, word: &str) -> Option<u64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let index = words.iter().position(|w| w.trim_end_matches(',') == word)?;
    words.get(index.checked_sub(1)?)?.parse().ok()
}

fn video(tags: &[Tag]) -> Vec<Tag> {
    tags.iter()
        .filter(|t| t.kind == TagKind::Video)
        .cloned()
        .collect()
}

/// Runs `case` and measures it.
pub fn run(case: &Case) -> Measured {
    let input = input();
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let mut serve = net.command(&net.ingest_ns, GOAWAY);
    serve
        .args(["serve", "-q", "--listen", "0.0.0.0:1935", "--record"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut server = Reaped(serve.spawn().expect("starting goaway serve"));
    let (served, server_done) = collect(server.0.stdout.take().unwrap());
    let start = Instant::now();
    wait_until("goaway serve listening", Duration::from_secs(10), || {
        find(&served, "listening on", start).is_some()
    });

    let url = format!("rtmp://{}:1935/live/silent", net.ingest_addr());
    let mut publish = net.command(&net.pub_ns, GOAWAY);
    publish
        .args(["publish", "--realtime"])
        .arg(&input)
        .arg(&url);
    if let Some(secs) = case.buffer_secs {
        publish.args(["--buffer-secs", &secs.to_string()]);
    }
    publish
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut publisher = Reaped(publish.spawn().expect("starting goaway publish"));
    let (logged, publisher_done) = collect(publisher.0.stderr.take().unwrap());
    wait_until("the publisher publishing", Duration::from_secs(10), || {
        find(&logged, "publishing to", start).is_some()
    });
    let published = find(&logged, "publishing to", start).unwrap().0;
    // The fault's schedule, not synchronization: the stream runs in real time.
    std::thread::sleep((published + case.at).saturating_duration_since(Instant::now()));
    let fault_at = Instant::now();
    match case.fault {
        Fault::Silence(duration) => net.silence(duration),
        Fault::PathChange => net.change_path(),
        Fault::Slow(kbit, duration) => {
            let _slow = net.slow(kbit);
            std::thread::sleep(duration);
        }
    }
    publisher_done
        .recv_timeout(Duration::from_secs(120))
        .expect("the publisher did not finish within 120 s");
    let publisher_ok = publisher.0.wait().unwrap().success();
    let _ = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status();
    server_done
        .recv_timeout(Duration::from_secs(20))
        .expect("goaway serve did not stop within 20 s of SIGTERM");

    let log: String = logged
        .lock()
        .unwrap()
        .iter()
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let summary = find(&logged, "goaway: published", start)
        .map(|(_, line)| line)
        .unwrap_or_default();
    let stats = find(&served, "largest gap", start)
        .map(|(_, line)| line)
        .unwrap_or_else(|| panic!("goaway serve printed no statistics; publisher log:\n{log}"));
    let gap_ms = number_before(&stats, "ms").unwrap_or(0);
    let sent = video(&read_flv(&input));
    let recorded = video(&read_flv(&dir.path().join("silent.flv")));
    let comparison = compare(&sent, &recorded);
    Measured {
        video_frames: comparison.sent,
        video_missing: comparison.lost,
        corrupt: comparison.foreign > 0 || !comparison.in_order,
        longest_stall: Duration::from_millis(gap_ms),
        connections: number_before(&summary, "connection(s)").unwrap_or(0) as u32,
        frames_resent: number_before(&summary, "duplicated").unwrap_or(0),
        lost: number_before(&summary, "lost").unwrap_or(0),
        time_to_detect: ["connection lost", "path silent"]
            .iter()
            .filter_map(|needle| find(&logged, needle, fault_at))
            .map(|(at, _)| at.duration_since(fault_at))
            .min(),
        publisher_ok,
        log,
    }
}
