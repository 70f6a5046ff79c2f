//! The viewer's side of a cutover: the largest gap between frames arriving at the ingest
//! (in stream order) when the stream moves by make-before-break, by break-before-make, and
//! by a plain reconnect after the server drops the connection (what publishers without Go
//! Away do today). Real time, 8 s of the sample clip per mode, one move at 2.2 s.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use obs_goaway::ingest::{Ingest, IngestConfig, SignalKind};
use obs_goaway::media::compare::compare;
use obs_goaway::media::flv::FlvReader;
use obs_goaway::media::{Tag, TagKind};
use obs_goaway::session::{self, SessionConfig};
use obs_goaway::transport::RtmpUrl;

const SAMPLE: &[u8] = include_bytes!("../data/sample.flv");
const MOVE_AT: Duration = Duration::from_millis(2200);

#[derive(Clone, Copy)]
enum Mode {
    MakeBeforeBreak,
    BreakBeforeMake,
    PlainReconnect,
}

async fn measure(mode: Mode, tags: &[Tag]) -> (Duration, u64, u64) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = IngestConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        dir.path().to_path_buf(),
    );
    match mode {
        Mode::MakeBeforeBreak => {}
        Mode::BreakBeforeMake => config.refuse_takeover = true,
        Mode::PlainReconnect => config.drop_after = Some(MOVE_AT),
    }
    let ingest = Ingest::start(config).await.expect("ingest");
    let url = RtmpUrl::parse(&format!("rtmp://{}/live/gap", ingest.local_addrs()[0])).expect("url");
    let (sender, receiver) = session::packet_channel(256);
    let feed: Vec<Tag> = tags.to_vec();
    let feeder = std::thread::spawn(move || {
        let start = Instant::now();
        for tag in feed {
            let due = start + Duration::from_millis(u64::from(tag.timestamp));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if sender.send_blocking(tag).is_err() {
                return;
            }
        }
    });
    let session = tokio::spawn(session::run(SessionConfig::new(url), receiver, None));
    if !matches!(mode, Mode::PlainReconnect) {
        tokio::time::sleep(MOVE_AT).await;
        ingest.signal_all(Some(SignalKind::GoAway));
    }
    session.await.expect("session task").expect("session");
    feeder.join().expect("feeder");
    while ingest.publishers("gap") > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = ingest.stats().remove("gap").expect("recording");
    let file = std::fs::File::open(&stats.path).expect("recording file");
    let recorded: Vec<Tag> = FlvReader::new(file)
        .expect("flv")
        .map(|t| t.expect("tag"))
        .collect();
    let result = compare(tags, &recorded);
    (
        stats.largest_gap,
        result.lost,
        result.duplicated + stats.duplicates,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tags: Vec<Tag> = FlvReader::new(SAMPLE)
        .expect("sample")
        .map(|t| t.expect("sample tag"))
        .take_while(|t| t.timestamp < 8000)
        .collect();
    let video: Vec<u32> = tags
        .iter()
        .filter(|t| t.kind == TagKind::Video && t.is_frame())
        .map(|t| t.timestamp)
        .collect();
    let interval = (video[video.len() - 1] - video[0]) / (video.len() as u32 - 1);
    println!("largest arrival gap at the ingest across one move (frame interval {interval} ms)");
    println!(
        "{:<20} {:>8} {:>6} {:>11}",
        "mode", "gap ms", "lost", "duplicates"
    );
    for (name, mode) in [
        ("make-before-break", Mode::MakeBeforeBreak),
        ("break-before-make", Mode::BreakBeforeMake),
        ("plain reconnect", Mode::PlainReconnect),
    ] {
        let (gap, lost, duplicates) = measure(mode, &tags).await;
        println!(
            "{name:<20} {:>8} {lost:>6} {duplicates:>11}",
            gap.as_millis()
        );
    }
}
