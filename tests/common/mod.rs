//! Real peers for the integration tests: nginx-rtmp, ffmpeg, ffprobe, the goaway binary, and
//! real OBS Studio ([`obs`]).
//! Every server listens on a free loopback port and dies with its guard.
#![allow(dead_code, unreachable_pub)]

pub mod netns;
pub mod obs;
pub mod obs_silent;
pub mod silent;
pub mod x11;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use obs_goaway::media::flv::FlvReader;
use obs_goaway::media::Tag;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sample.flv");
pub const GOAWAY: &str = env!("CARGO_BIN_EXE_goaway");

/// AAC frames per second at 48 kHz (1024 samples each), rounded down: with the frame
/// rate, how many frames a second of stream has.
pub const AUDIO_FRAMES_PER_SECOND: u64 = 46;

pub fn sample_tags() -> Vec<Tag> {
    read_flv(Path::new(SAMPLE))
}

pub fn read_flv(path: &Path) -> Vec<Tag> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    FlvReader::new(std::io::BufReader::new(file))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How often [`wait_until`] looks again.
const POLL: Duration = Duration::from_millis(20);

/// Waits until `done` holds, looking every 20 ms; panics naming `what` did not happen
/// within `timeout`. Tests wait for conditions this way, never for a time.
pub fn wait_until(what: impl std::fmt::Display, timeout: Duration, done: impl FnMut() -> bool) {
    assert!(
        within(timeout, done),
        "waited {timeout:?} for {what}: it did not happen"
    );
}

/// Waits until `done` holds or `timeout` passes, looking every 20 ms; whether it held.
/// For waits whose end is not a failure (the test goes on and judges later).
pub fn within(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_until`] for async tests: the runtime keeps running while it waits.
pub async fn wait_until_async(
    what: impl std::fmt::Display,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "waited {timeout:?} for {what}: it did not happen"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until a socket listens on `port`, without connecting to it (ffmpeg -listen
/// accepts exactly one connection, which a probe would use up).
pub fn wait_for_port(port: u16) {
    let needle = format!(":{port:04X} ");
    wait_until(
        format!("a socket listening on port {port}"),
        Duration::from_secs(10),
        || {
            ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
                std::fs::read_to_string(table).is_ok_and(|text| {
                    text.lines().any(|l| {
                        l.split_whitespace()
                            .nth(1)
                            .is_some_and(|local| format!("{local} ").ends_with(&needle))
                            && l.split_whitespace().nth(3) == Some("0A")
                    })
                })
            })
        },
    );
}

/// A child process killed on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fails the test unless `tool` is on PATH, naming the Debian package that has it.
pub fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is required for this test: apt-get install {package} (tests/run.sh installs it)"
    );
}

/// nginx with the RTMP module, recording every publish into `dir`; optionally a TLS
/// terminator (nginx stream module) in front of it.
pub struct Nginx {
    pub port: u16,
    pub tls_port: Option<u16>,
    pub dir: PathBuf,
    guard: Guard,
}

impl Nginx {
    pub fn start(dir: &Path, tls: Option<(&Path, &Path)>) -> Self {
        require("nginx", "nginx libnginx-mod-rtmp");
        let port = free_port();
        let tls_port = tls.map(|_| free_port());
        let (load_stream, stream_block) = match (tls, tls_port) {
            (Some((cert, key)), Some(tls_port)) => (
                STREAM_MODULE,
                tls_proxy(
                    tls_port,
                    cert,
                    key,
                    SocketAddr::from(([127, 0, 0, 1], port)),
                ),
            ),
            _ => ("", String::new()),
        };
        let guard = spawn_nginx(
            dir,
            "nginx.conf",
            &format!("load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n{load_stream}"),
            &format!(
                "rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096; application live {{ live on; record all; record_path {dir}; record_unique on; }} }} }}\n\
                 {stream_block}",
                dir = dir.display()
            ),
        );
        wait_for_port(port);
        if let Some(p) = tls_port {
            wait_for_port(p);
        }
        Self {
            port,
            tls_port,
            // As the kernel names the files nginx has open.
            dir: dir.canonicalize().unwrap(),
            guard,
        }
    }

    /// The recordings of `key` (one per publish), oldest first, once nginx has closed
    /// them all (it closes one when its publisher leaves).
    pub fn recordings(&self, key: &str) -> Vec<PathBuf> {
        wait_until(
            format!("nginx to close its recordings of {key:?}"),
            Duration::from_secs(10),
            || self.open_recordings(key).is_empty(),
        );
        self.recording_files(key)
    }

    /// Waits until `key` has a live publisher: nginx opens the key's recording in the same
    /// step in which it accepts the publish (and refuses any other publisher of the key).
    pub fn wait_for_publisher(&self, key: &str) {
        wait_until(
            format!("nginx to accept a publisher of {key:?} (open its recording)"),
            Duration::from_secs(20),
            || !self.open_recordings(key).is_empty(),
        );
    }

    /// The recordings of `key` nginx has open now (from its file descriptors).
    fn open_recordings(&self, key: &str) -> Vec<PathBuf> {
        let files = self.recording_files(key);
        let fds = format!("/proc/{}/fd", self.guard.0.id());
        std::fs::read_dir(&fds)
            .unwrap_or_else(|e| panic!("{fds}: {e} (nginx is gone)"))
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| files.contains(target))
            .collect()
    }

    fn recording_files(&self, key: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{key}-")) && n.ends_with(".flv"))
            })
            .collect();
        files.sort();
        files
    }
}

/// nginx in the foreground, loading `modules` and running `servers` (its `rtmp` and
/// `stream` blocks), its configuration written to `dir/name`, its logs and pid file in `dir`.
fn spawn_nginx(dir: &Path, name: &str, modules: &str, servers: &str) -> Guard {
    let conf = format!(
        "{modules}\ndaemon off; master_process off; worker_processes 1; error_log {dir}/error.log info; pid {dir}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n{servers}",
        dir = dir.display()
    );
    let conf_path = dir.join(name);
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(dir)
        .stderr(Stdio::null())
        .spawn()
        .expect("starting nginx");
    Guard(child)
}

/// nginx's stream module, which [`tls_proxy`] needs.
const STREAM_MODULE: &str = "load_module /usr/lib/nginx/modules/ngx_stream_module.so;";

/// An nginx `stream` block terminating TLS on 127.0.0.1:`port` with `cert` and `key` and
/// passing the plaintext to `upstream`, as RTMPS ingests (YouTube's) sit behind a TLS front
/// end. It half-closes, so a FIN from the publisher reaches the server.
fn tls_proxy(port: u16, cert: &Path, key: &Path, upstream: SocketAddr) -> String {
    format!(
        "stream {{ server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {}; \
         ssl_certificate_key {}; proxy_half_close on; proxy_pass {upstream}; }} }}",
        cert.display(),
        key.display()
    )
}

/// nginx as a TLS terminator alone, in front of any plain RTMP server (the reference
/// ingest, which can send Go Away): `rtmps://localhost:port/...` reaches `upstream`.
pub struct TlsTerminator {
    pub port: u16,
    _guard: Guard,
}

impl TlsTerminator {
    /// Starts it with its configuration and logs in `dir`.
    pub fn start(dir: &Path, cert: &Path, key: &Path, upstream: SocketAddr) -> Self {
        require("nginx", "nginx libnginx-mod-stream");
        let port = free_port();
        let guard = spawn_nginx(
            dir,
            "tls-terminator.conf",
            STREAM_MODULE,
            &tls_proxy(port, cert, key, upstream),
        );
        wait_for_port(port);
        Self {
            port,
            _guard: guard,
        }
    }
}

/// Runs `goaway` with `args`; returns (success, stderr).
pub fn goaway(args: &[&str]) -> (bool, String) {
    let output = Command::new(GOAWAY)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running goaway");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Frames ffprobe can decode in `path`: (video, audio).
pub fn ffprobe_decoded_frames(path: &Path) -> (u64, u64) {
    require("ffprobe", "ffmpeg");
    let count = |stream: &str| -> u64 {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                stream,
                "-count_frames",
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(path)
            .output()
            .expect("running ffprobe");
        assert!(
            out.status.success(),
            "ffprobe failed on {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    (count("v:0"), count("a:0"))
}

/// Frame counts of the input: (video, audio).
pub fn frame_counts(tags: &[Tag]) -> (u64, u64) {
    use obs_goaway::media::TagKind;
    let count = |kind| {
        tags.iter()
            .filter(|t| t.kind == kind && t.is_frame())
            .count() as u64
    };
    (count(TagKind::Video), count(TagKind::Audio))
}

/// A test CA and a server certificate for 127.0.0.1 / localhost, written into `dir`:
/// (ca.pem, cert.pem, key.pem).
pub fn test_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "obs-goaway test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// A relay to the ingest whose client-to-server direction can be slowed to `rate` bytes
/// per second (0: full speed), with buffers small enough for a slow reader to show.
///
/// `mss` caps the segment size the relay announces. Linux sizes a send buffer by segments,
/// so over loopback (64 KB segments) a sender that does not fix its own (OBS's RTMP
/// output, the plugin) can queue megabytes in the kernel, and a throttle shows only after
/// minutes; an Ethernet-sized 1460 keeps the buffer as small as on a network.
pub async fn throttled_relay(
    upstream: SocketAddr,
    rate: Arc<AtomicU64>,
    mss: Option<u32>,
) -> SocketAddr {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    if let Some(mss) = mss {
        socket.set_tcp_mss(mss).unwrap();
    }
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(8).unwrap();
    socket.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(socket.into()).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let rate = Arc::clone(&rate);
            tokio::spawn(async move {
                let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let limit = rate.load(Ordering::Relaxed) as usize;
                        let want = if limit == 0 {
                            buf.len()
                        } else {
                            (limit / 20).clamp(1, buf.len())
                        };
                        let n = match cr.read(&mut buf[..want]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        if limit != 0 {
                            // The throttle itself: `limit / 20` bytes per 50 ms.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                };
                tokio::select! {
                    () = up => {}
                    _ = tokio::io::copy(&mut sr, &mut cw) => {}
                }
            });
        }
    });
    addr
}

/// Feeds `tags` paced by timestamps at `speed` x real time, on a thread, like a live source.
pub fn feed_live(
    tags: Vec<Tag>,
    sender: obs_goaway::session::PacketSender,
    speed: f64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let first = tags.first().map_or(0, |t| t.timestamp);
        for tag in tags {
            let due =
                start + Duration::from_millis(u64::from(tag.timestamp - first)).div_f64(speed);
            // Pacing: a live source hands its frames over in (scaled) real time.
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if sender.send_blocking(tag).is_err() {
                return;
            }
        }
    })
}
