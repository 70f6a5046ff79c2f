//! Real OBS Studio, headless, for integration tests: OBS 29.0.2 from Debian 12 on the host,
//! OBS 30.2.3 in a Debian trixie root and OBS 32.2.2 in a Debian sid root (made by
//! `.ci/trixie-root.sh` and `.ci/sid-root.sh`), each on its own Xvfb.
//!
//! ```text
//! ProfileBuilder::new(version)      a throw-away HOME with a complete OBS configuration:
//!     .service(json)                service.json (rtmp_custom, a plugin's service, ...)
//!     .advanced(encoder, settings)  Advanced output mode (default: Simple, x264)
//!     .websocket(port)              obs-websocket on 127.0.0.1:port without auth
//!     .plugin(PluginInstall)        a .so (+ locale) under ~/.config/obs-studio/plugins
//!     .build()                   -> Profile
//! Profile::start(OnStart)        -> ObsRun     (takes the machine-wide OBS lock, Xvfb, OBS)
//! ObsRun::wait_for_log / log / wait_for_window / screenshot / xdotool
//! ObsRun::websocket().await      -> ObsWebSocket (request, wait_for_event)
//! ObsRun::stop()                 -> ObsExit    (quit as a user, bounded wait, status + log)
//! run_outage_scenario(...)       -> ScenarioOutcome (Go Away, Reconnect Request, outage)
//! ```
//!
//! Runs are serialized across threads and test processes with `flock` on [`LOCK_FILE`]:
//! OBS needs most of a core, and the sid root's `/proc` and `/dev` mounts are shared.
//! Everything a run starts (OBS, Xvfb, mounts, the lock) ends when its [`ObsRun`] drops, also
//! when a test panics. A missing prerequisite (OBS, Xvfb, the sid root, root privileges)
//! fails the test with a message saying what to install: these tests never skip silently.
//!
//! OBS exits 0 even when it could not open the display or stream: judge a run by its log.
//! Set `OBS_GOAWAY_ECHO=1` to copy OBS's output to the test's stderr as it comes.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use obs_goaway::ingest::{AuthConfig, Ingest, IngestConfig, SignalKind, StreamStats};
use obs_goaway::media::{Tag, TagKind};
use obs_goaway::protocol::auth::{AuthMethod, Credentials};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Environment variable naming the Debian sid root with OBS 32.
pub const SID_ROOT_ENV: &str = "OBS_GOAWAY_SID_ROOT";
/// Where `.ci/sid-root.sh` puts the sid root by default.
pub const DEFAULT_SID_ROOT: &str = "/var/cache/obs-goaway/sid";
/// Environment variable naming the Debian trixie root with OBS 30.2.
pub const TRIXIE_ROOT_ENV: &str = "OBS_GOAWAY_TRIXIE_ROOT";
/// Where `.ci/trixie-root.sh` puts the trixie root by default.
pub const DEFAULT_TRIXIE_ROOT: &str = "/var/cache/obs-goaway/trixie";
/// The lock every OBS run holds (`flock`), across threads and test processes.
pub const LOCK_FILE: &str = "/var/cache/obs-goaway/obs.lock";
/// Stream key the scenario publishes to.
pub const SCENARIO_KEY: &str = "scenario-secret-4711";

/// How long [`ObsRun::stop`] waits after asking OBS to quit before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// What OBS's main window title contains ("OBS 29.0.2 - Profile: P - Scenes: P").
const MAIN_WINDOW: &str = " - Profile: ";
/// The log line after which OBS has loaded its scene collection. Quit by SIGINT before it
/// (and before its main window exists), OBS crashed or hung about half the time:
/// [`ObsRun::stop`] waits for both.
const SCENES_LOADED: &str = "Loaded scenes:";
/// How long OBS 29's event loop may take to first answer a ping before it is quit anyway.
const EVENT_LOOP_LIMIT: Duration = Duration::from_secs(30);
/// How long OBS may take to load its modules and scenes. Usually a few seconds; OBS 32.2.2
/// in the sid root once stalled over 25 s while loading its modules on a loaded machine
/// (the same package then streamed when run again).
const STARTUP_LIMIT: Duration = Duration::from_secs(120);
/// How long Xvfb may take to listen (a loaded machine, a chroot's cold libraries).
const XVFB_STARTUP_LIMIT: Duration = Duration::from_secs(60);
/// How long to wait for the OBS lock before failing (another run holds it).
const LOCK_TIMEOUT_SECS: u32 = 900;

/// Which OBS Studio to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObsVersion {
    /// `/usr/bin/obs` on the host: Debian 12's OBS 29.0.2 (Qt 5).
    Host,
    /// `/usr/bin/obs` in the Debian trixie root: OBS 30.2.3 (Qt 6), run with `chroot`.
    Trixie,
    /// `/usr/bin/obs` in the Debian sid root: OBS 32.2.2 (Qt 6), run with `chroot`.
    Sid,
}

impl ObsVersion {
    /// Every version, oldest first.
    pub const ALL: [Self; 3] = [Self::Host, Self::Trixie, Self::Sid];

    /// The OBS version string, as OBS logs it (`OBS 29.0.2`...).
    pub fn version(self) -> &'static str {
        match self {
            Self::Host => "29.0.2",
            Self::Trixie => "30.2.3",
            Self::Sid => "32.2.2",
        }
    }

    /// The major version: what decides which OBS APIs and config files exist.
    pub fn major(self) -> u32 {
        match self {
            Self::Host => 29,
            Self::Trixie => 30,
            Self::Sid => 32,
        }
    }

    /// The root OBS runs in: `None` for the host, else the Debian root made by
    /// `.ci/<suite>-root.sh` (its environment variable, else its default path). Panics if it
    /// is missing.
    pub fn root(self) -> Option<PathBuf> {
        let (suite, env, default) = match self {
            Self::Host => return None,
            Self::Trixie => ("trixie", TRIXIE_ROOT_ENV, DEFAULT_TRIXIE_ROOT),
            Self::Sid => ("sid", SID_ROOT_ENV, DEFAULT_SID_ROOT),
        };
        let root = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
        let mut in_progress = root.clone().into_os_string();
        in_progress.push(".tmp");
        let note = if Path::new(&in_progress).exists() {
            format!("; .ci/{suite}-root.sh seems to be making it right now (a .tmp exists): wait for it")
        } else {
            String::new()
        };
        for needed in ["usr/bin/obs", "usr/bin/Xvfb"] {
            assert!(
                root.join(needed).exists(),
                "OBS {} tests need the Debian {suite} root at {} (no {needed} there): \
                 run .ci/{suite}-root.sh (or set {env} to a root it made){note}",
                self.major(),
                root.display()
            );
        }
        Some(root)
    }

    /// Fails the test with a clear message if anything this version needs is missing.
    pub fn require(self) {
        match self.root() {
            None => {
                for (tool, package) in [("obs", "obs-studio"), ("Xvfb", "xvfb")] {
                    assert!(
                        has_command(tool),
                        "{tool} is required to run OBS tests (apt-get install {package})"
                    );
                }
            }
            Some(_) => {
                assert!(
                    is_root(),
                    "running OBS in a Debian root needs root (chroot, mount)"
                );
                for tool in ["chroot", "mount", "umount"] {
                    assert!(
                        has_command(tool),
                        "{tool} is required for OBS {} tests",
                        self.major()
                    );
                }
            }
        }
        for tool in ["flock", "setpriv"] {
            assert!(
                has_command(tool),
                "{tool} (util-linux) is required to run OBS tests"
            );
        }
    }
}

impl fmt::Display for ObsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host => write!(f, "OBS {} (Debian 12 host)", self.version()),
            Self::Trixie => write!(f, "OBS {} (Debian trixie root)", self.version()),
            Self::Sid => write!(f, "OBS {} (Debian sid root)", self.version()),
        }
    }
}

/// A command for `program` in `root` (or on the host), in network namespace `netns` (or
/// the test's), killed with SIGKILL if the thread that started it dies (`setpriv
/// --pdeathsig`): a test process killed in any way (a CI timeout) leaves no OBS or Xvfb
/// behind. Start and stop a run from the same thread. `ip netns exec`, `setpriv` and
/// `chroot` each exec the next, so the child's pid is the program's.
///
/// With `trusted_certs`, that directory stands in for the system's `/etc/ssl/certs` (the
/// root's) for this command only: bind-mounted in a mount namespace of its own.
fn command_in(
    root: Option<&Path>,
    netns: Option<&str>,
    program: &str,
    trusted_certs: Option<&Path>,
) -> Command {
    let mut command = match netns {
        Some(netns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns, "setpriv"]);
            command
        }
        None => Command::new("setpriv"),
    };
    command.args(["--pdeathsig", "KILL"]);
    if let Some(certs) = trusted_certs {
        let system = root.map_or_else(
            || PathBuf::from("/etc/ssl/certs"),
            |r| r.join("etc/ssl/certs"),
        );
        command
            .args(["unshare", "--mount", "--propagation", "private"])
            .args([
                "sh",
                "-c",
                r#"mount --bind "$1" "$2" && shift 2 && exec "$@""#,
                "sh",
            ])
            .arg(certs)
            .arg(system);
    }
    if let Some(root) = root {
        command.arg("chroot").arg(root);
    }
    command.arg(program);
    command
}

fn has_command(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// `kill -s SIGNAL pid`, for signals `std::process` has no call for (no unsafe here).
fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Every thread's stack of a hung process, from `gdb` (when installed), for the report.
fn thread_stacks(pid: u32) -> Option<String> {
    if !has_command("gdb") {
        return None;
    }
    let output = Command::new("gdb")
        .args(["-p", &pid.to_string(), "-batch", "-nx"])
        .args(["-ex", "set pagination off", "-ex", "thread apply all bt 40"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    Some(
        text.lines()
            .filter(|l| l.starts_with('#') || l.starts_with("Thread "))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Waits up to `timeout` for `child` to exit.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    super::within(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| {
                panic!("{} -> {}: {e}", entry.path().display(), target.display())
            });
        }
    }
}

fn write_file(path: &Path, contents: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    }
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

// ---------------------------------------------------------------------------------------
// The profile

/// Which output settings the profile uses.
#[derive(Debug, Clone)]
pub enum OutputMode {
    /// Simple mode: x264 `veryfast`, CBR at the profile's video bitrate, AAC.
    Simple,
    /// Advanced mode with the given encoder id (`obs_x264`, `ffmpeg_svt_av1`, ...) and its
    /// settings (`streamEncoder.json`; `bitrate`, `rate_control` and `keyint_sec` are filled
    /// in from the profile when absent), AAC audio on track 1.
    Advanced {
        /// The encoder id.
        encoder: String,
        /// Encoder settings.
        settings: Value,
    },
}

/// A plugin to install in the profile's HOME.
#[derive(Debug, Clone)]
pub struct PluginInstall {
    /// Module name: the file is installed as `<name>.so` (OBS names a module by its file).
    pub name: String,
    /// The shared object to copy, e.g. `target/release/libobs_goaway.so`.
    pub so: PathBuf,
    /// A `locale` directory to copy as the plugin's `data/locale` (en-US.ini, ...).
    pub locale: Option<PathBuf>,
}

impl PluginInstall {
    /// This repository's plugin: the release build's `libobs_goaway.so` (in
    /// `$CARGO_TARGET_DIR`, else `target/`) installed as module `obs-goaway`, with the
    /// repository's `locale/` directory. Panics if it was not built.
    pub fn obs_goaway() -> Self {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| manifest.join("target"), PathBuf::from);
        let so = target.join("release/libobs_goaway.so");
        assert!(
            so.exists(),
            "the OBS plugin {} is not built: build the release library first",
            so.display()
        );
        Self {
            name: "obs-goaway".into(),
            so,
            locale: Some(manifest.join("locale")),
        }
    }
}

/// An INI file as ordered sections of ordered keys; setting a key again replaces it.
#[derive(Debug, Clone, Default)]
struct Ini(Vec<(String, Vec<(String, String)>)>);

impl Ini {
    fn set(&mut self, section: &str, key: &str, value: impl ToString) {
        let index = match self.0.iter().position(|(s, _)| s == section) {
            Some(index) => index,
            None => {
                self.0.push((section.to_owned(), Vec::new()));
                self.0.len() - 1
            }
        };
        let keys = &mut self.0[index].1;
        let value = value.to_string();
        match keys.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => keys.push((key.to_owned(), value)),
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (section, keys) in &self.0 {
            out += &format!("[{section}]\n");
            for (key, value) in keys {
                out += &format!("{key}={value}\n");
            }
            out += "\n";
        }
        out
    }
}

/// Builds a throw-away OBS configuration (HOME) for one version.
///
/// Defaults: Simple mode, x264 `veryfast`, 1000 kb/s, keyframe every 2 s, 320x240 at
/// 30 fps, 48 kHz stereo AAC at 128 kb/s; a scene with a moving test pattern and a 440 Hz
/// tone (an `ffmpeg_source` reading lavfi); `rtmp_custom` to `rtmp://127.0.0.1:1935/live`
/// (set a real one with [`ProfileBuilder::service`]); obs-websocket disabled; no plugin
/// beyond the system's.
#[derive(Debug, Clone)]
pub struct ProfileBuilder {
    version: ObsVersion,
    service: Value,
    output: OutputMode,
    video_bitrate: u32,
    keyint_secs: u32,
    size: (u32, u32),
    fps: u32,
    trusted_ca: Option<PathBuf>,
    lavfi: String,
    websocket_port: Option<u16>,
    plugins: Vec<PluginInstall>,
    basic: Ini,
    global: Ini,
    netns: Option<String>,
}

impl ProfileBuilder {
    /// The defaults for `version`.
    pub fn new(version: ObsVersion) -> Self {
        Self {
            version,
            service: rtmp_custom("rtmp://127.0.0.1:1935/live", SCENARIO_KEY),
            output: OutputMode::Simple,
            video_bitrate: 1000,
            keyint_secs: 2,
            size: (320, 240),
            fps: 30,
            trusted_ca: None,
            lavfi: String::new(),
            websocket_port: None,
            plugins: Vec::new(),
            basic: Ini::default(),
            global: Ini::default(),
            netns: None,
        }
    }

    /// `service.json`, e.g. `{"type":"rtmp_custom","settings":{"server":..,"key":..}}`
    /// (see [`rtmp_custom`]) or a plugin's service type.
    pub fn service(mut self, service: Value) -> Self {
        self.service = service;
        self
    }

    /// Advanced output mode with `encoder` and its `settings` (JSON object).
    pub fn advanced(mut self, encoder: &str, settings: Value) -> Self {
        self.output = OutputMode::Advanced {
            encoder: encoder.to_owned(),
            settings,
        };
        self
    }

    /// Video bitrate in kb/s.
    pub fn video_bitrate(mut self, kbps: u32) -> Self {
        self.video_bitrate = kbps;
        self
    }

    /// Keyframe interval in seconds (the Go Away switch waits for a keyframe).
    pub fn keyframe_interval(mut self, secs: u32) -> Self {
        self.keyint_secs = secs;
        self
    }

    /// Canvas and output size, and frame rate.
    pub fn video(mut self, width: u32, height: u32, fps: u32) -> Self {
        self.size = (width, height);
        self.fps = fps;
        self
    }

    /// The scene's source: an ffmpeg lavfi graph with a video `[out0]` and an audio
    /// `[out1]` (default: `testsrc` at the profile's size and rate, and a 440 Hz `sine`).
    pub fn lavfi(mut self, graph: &str) -> Self {
        self.lavfi = graph.to_owned();
        self
    }

    /// OBS trusts `ca` (a PEM file) and nothing else for TLS: OBS's own RTMPS output reads
    /// its CAs only from `/etc/ssl/certs` on Linux (every file there), and the plugin reads
    /// them there too, so OBS runs with a directory holding only `ca` mounted there for it
    /// alone (the machine's and the roots' trust stores stay untouched).
    pub fn trusted_ca(mut self, ca: &Path) -> Self {
        self.trusted_ca = Some(ca.to_owned());
        self
    }

    /// Enables obs-websocket on `127.0.0.1:port` (all interfaces, in fact), without auth.
    pub fn websocket(mut self, port: u16) -> Self {
        self.websocket_port = Some(port);
        self
    }

    /// Runs OBS in network namespace `netns` (`ip netns exec`), so that a test can fail its
    /// network (`common::netns`). Xvfb stays in the test's namespace: OBS reaches it through
    /// its socket file (the abstract X11 socket is per namespace, the file is not), and so
    /// does the test (screenshots, closing windows). obs-websocket then listens in that
    /// namespace, out of the test's reach.
    pub fn netns(mut self, netns: &str) -> Self {
        self.netns = Some(netns.to_owned());
        self
    }

    /// Installs a plugin in the HOME (`~/.config/obs-studio/plugins/<name>/...`).
    pub fn plugin(mut self, plugin: PluginInstall) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Sets any key of the profile's `basic.ini` (after the defaults, so it wins), e.g.
    /// `("Output", "RetryDelay", "1")`.
    pub fn basic_ini(mut self, section: &str, key: &str, value: impl ToString) -> Self {
        self.basic.set(section, key, value);
        self
    }

    /// Sets any key of `global.ini`.
    pub fn global_ini(mut self, section: &str, key: &str, value: impl ToString) -> Self {
        self.global.set(section, key, value);
        self
    }

    /// Writes the configuration into a new temporary HOME (inside the root's /tmp for
    /// the sid root, so that OBS in the chroot sees it).
    pub fn build(self) -> Profile {
        let root = self.version.root();
        let home = match &root {
            None => tempfile::Builder::new().prefix("obs-home-").tempdir(),
            Some(root) => tempfile::Builder::new()
                .prefix("obs-home-")
                .tempdir_in(root.join("tmp")),
        }
        .expect("creating a temporary HOME for OBS");
        let guest_home = match &root {
            None => home.path().to_path_buf(),
            Some(root) => Path::new("/").join(home.path().strip_prefix(root).unwrap()),
        };
        let config = home.path().join(".config/obs-studio");
        write_file(&config.join("global.ini"), self.global_ini_text());
        let profile = config.join("basic/profiles/P");
        write_file(&profile.join("basic.ini"), self.basic_ini_text());
        write_file(
            &profile.join("service.json"),
            serde_json::to_string_pretty(&self.service).unwrap(),
        );
        if let OutputMode::Advanced { settings, .. } = &self.output {
            let mut settings = settings.clone();
            if let Some(object) = settings.as_object_mut() {
                object.entry("bitrate").or_insert(json!(self.video_bitrate));
                object.entry("rate_control").or_insert(json!("CBR"));
                object
                    .entry("keyint_sec")
                    .or_insert(json!(self.keyint_secs));
            }
            write_file(
                &profile.join("streamEncoder.json"),
                serde_json::to_string_pretty(&settings).unwrap(),
            );
        }
        write_file(
            &config.join("basic/scenes/P.json"),
            serde_json::to_string_pretty(&self.scene_collection()).unwrap(),
        );
        // obs-websocket 5.7 (OBS 30+) reads its own file; 5.1 (OBS 29) reads global.ini.
        let websocket = json!({
            "alerts_enabled": false,
            "auth_required": false,
            "first_load": false,
            "server_enabled": self.websocket_port.is_some(),
            "server_password": "",
            "server_port": self.websocket_port.unwrap_or(4455),
        });
        write_file(
            &config.join("plugin_config/obs-websocket/config.json"),
            serde_json::to_string_pretty(&websocket).unwrap(),
        );
        for plugin in &self.plugins {
            let base = config.join("plugins").join(&plugin.name);
            let so = base.join(format!("bin/64bit/{}.so", plugin.name));
            write_file(&so, []);
            std::fs::copy(&plugin.so, &so)
                .unwrap_or_else(|e| panic!("installing plugin {}: {e}", plugin.so.display()));
            std::fs::create_dir_all(base.join("data")).unwrap();
            if let Some(locale) = &plugin.locale {
                copy_dir(locale, &base.join("data/locale"));
            }
        }
        let trusted_certs = self.trusted_ca.as_ref().map(|ca| {
            let dir = home.path().join(".trusted-certs");
            let pem = std::fs::read(ca).unwrap_or_else(|e| panic!("{}: {e}", ca.display()));
            write_file(&dir.join("obs-goaway-test-ca.pem"), pem);
            dir
        });
        Profile {
            version: self.version,
            root,
            guest_home,
            websocket_port: self.websocket_port,
            fps: self.fps,
            netns: self.netns,
            trusted_certs,
            home,
        }
    }

    fn global_ini_text(&self) -> String {
        let mut ini = Ini::default();
        for (key, value) in [
            ("Pre19Defaults", "false"),
            ("Pre21Defaults", "false"),
            ("Pre23Defaults", "false"),
            ("Pre24.1Defaults", "false"),
            ("FirstRun", "true"),
            ("LastVersion", "486539266"),
            ("ConfirmOnExit", "false"),
        ] {
            ini.set("General", key, value);
        }
        for key in [
            "Profile",
            "ProfileDir",
            "SceneCollection",
            "SceneCollectionFile",
        ] {
            ini.set("Basic", key, "P");
        }
        for key in [
            "WarnBeforeStartingStream",
            "WarnBeforeStoppingStream",
            "PreviewEnabled",
        ] {
            ini.set("BasicWindow", key, "false");
        }
        ini.set("BasicWindow", "SysTrayMinimizeToTray", "true");
        ini.set("OBSWebSocket", "FirstLoad", "false");
        ini.set(
            "OBSWebSocket",
            "ServerEnabled",
            self.websocket_port.is_some(),
        );
        ini.set(
            "OBSWebSocket",
            "ServerPort",
            self.websocket_port.unwrap_or(4455),
        );
        ini.set("OBSWebSocket", "AlertsEnabled", "false");
        ini.set("OBSWebSocket", "AuthRequired", "false");
        for (section, keys) in &self.global.0 {
            for (key, value) in keys {
                ini.set(section, key, value);
            }
        }
        ini.render()
    }

    fn basic_ini_text(&self) -> String {
        let mut ini = Ini::default();
        ini.set("General", "Name", "P");
        let (width, height) = self.size;
        for (key, value) in [
            ("BaseCX", width),
            ("BaseCY", height),
            ("OutputCX", width),
            ("OutputCY", height),
            ("FPSType", 0),
            ("FPSCommon", self.fps),
        ] {
            ini.set("Video", key, value);
        }
        ini.set("Audio", "SampleRate", 48000);
        ini.set("Audio", "ChannelSetup", "Stereo");
        match &self.output {
            OutputMode::Simple => {
                ini.set("Output", "Mode", "Simple");
                ini.set("SimpleOutput", "StreamEncoder", "x264");
                ini.set("SimpleOutput", "VBitrate", self.video_bitrate);
                ini.set("SimpleOutput", "ABitrate", 128);
                ini.set("SimpleOutput", "Preset", "veryfast");
                // Simple mode's only keyframe setting is the custom x264 options, which it
                // reads when "advanced encoder settings" are on (x264's default is 250).
                ini.set("SimpleOutput", "UseAdvanced", "true");
                ini.set(
                    "SimpleOutput",
                    "x264Settings",
                    format!("keyint={}", self.keyint_secs * self.fps),
                );
            }
            OutputMode::Advanced { encoder, .. } => {
                ini.set("Output", "Mode", "Advanced");
                ini.set("AdvOut", "Encoder", encoder);
                ini.set("AdvOut", "AudioEncoder", "ffmpeg_aac");
                ini.set("AdvOut", "TrackIndex", 1);
                ini.set("AdvOut", "Track1Bitrate", 128);
                ini.set("AdvOut", "ApplyServiceSettings", "false");
            }
        }
        for (section, keys) in &self.basic.0 {
            for (key, value) in keys {
                ini.set(section, key, value);
            }
        }
        ini.render()
    }

    fn scene_collection(&self) -> Value {
        let (width, height) = self.size;
        let input = if self.lavfi.is_empty() {
            format!(
                "testsrc=size={width}x{height}:rate={}[out0];sine=frequency=440:sample_rate=48000[out1]",
                self.fps
            )
        } else {
            self.lavfi.clone()
        };
        json!({
            "name": "P",
            "current_scene": "Scene",
            "current_program_scene": "Scene",
            "scene_order": [{"name": "Scene"}],
            "sources": [
                {
                    "id": "scene", "versioned_id": "scene", "name": "Scene", "enabled": true,
                    "settings": {"id_counter": 1, "items": [{
                        "name": "Test pattern", "id": 1, "visible": true, "locked": false,
                        "pos": {"x": 0.0, "y": 0.0}, "scale": {"x": 1.0, "y": 1.0},
                        "rot": 0.0, "align": 5, "bounds_type": 0
                    }]}
                },
                {
                    "id": "ffmpeg_source", "versioned_id": "ffmpeg_source",
                    "name": "Test pattern", "enabled": true,
                    "settings": {
                        "is_local_file": false, "input_format": "lavfi", "input": input,
                        "looping": true, "restart_on_activate": true
                    }
                }
            ],
            "transitions": [],
            "groups": [],
            "quick_transitions": []
        })
    }
}

/// `service.json` for OBS's "Custom..." service.
pub fn rtmp_custom(server: &str, key: &str) -> Value {
    json!({"type": "rtmp_custom", "settings": {"server": server, "key": key}})
}

/// The user of the authentication tests.
pub const AUTH_USER: &str = "obs";
/// Its password, looked for in OBS's log.
pub const AUTH_PASSWORD: &str = "s3cret-4712";

/// `service` (a `service.json` value) with "Use authentication" on, as [`AUTH_USER`] with
/// `password`.
pub fn with_auth(mut service: Value, password: &str) -> Value {
    let settings = &mut service["settings"];
    settings["use_auth"] = json!(true);
    settings["username"] = json!(AUTH_USER);
    settings["password"] = json!(password);
    service
}

/// The reference ingest on a free loopback port, recording into `dir`, and the server URL
/// (`rtmp://ADDR/live`) a profile streams to.
pub fn loopback_ingest(runtime: &tokio::runtime::Runtime, dir: &Path) -> (Ingest, String) {
    let config = IngestConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.into());
    let ingest = runtime.block_on(Ingest::start(config)).unwrap();
    let server = format!("rtmp://{}/live", ingest.local_addrs()[0]);
    (ingest, server)
}

/// A reference ingest on a free loopback port, recording into `dir`, that accepts only
/// publishers authenticating (adobe) as [`AUTH_USER`] with [`AUTH_PASSWORD`].
pub fn authenticating_ingest(runtime: &tokio::runtime::Runtime, dir: &Path) -> Ingest {
    let mut config = IngestConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.into());
    config.auth = Some(AuthConfig {
        method: AuthMethod::Adobe,
        users: vec![Credentials::new(AUTH_USER, AUTH_PASSWORD)],
    });
    runtime
        .block_on(Ingest::start(config))
        .expect("starting an authenticating ingest")
}

/// A written OBS configuration: a temporary HOME, removed on drop.
#[derive(Debug)]
pub struct Profile {
    version: ObsVersion,
    root: Option<PathBuf>,
    /// HOME as OBS sees it (inside the root for the sid root).
    guest_home: PathBuf,
    websocket_port: Option<u16>,
    fps: u32,
    /// The network namespace OBS runs in (`None`: the test's).
    netns: Option<String>,
    /// The directory OBS sees as `/etc/ssl/certs` (a host path), if not the system's.
    trusted_certs: Option<PathBuf>,
    home: tempfile::TempDir,
}

/// Whether OBS starts streaming as soon as it is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStart {
    /// `--startstreaming`.
    Stream,
    /// Stay idle (drive it with obs-websocket).
    Idle,
}

impl Profile {
    /// The version this profile is for.
    pub fn version(&self) -> ObsVersion {
        self.version
    }

    /// HOME, as a host path.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `~/.config/obs-studio`, as a host path.
    pub fn config_dir(&self) -> PathBuf {
        self.home.path().join(".config/obs-studio")
    }

    /// The profile directory (basic.ini, service.json), as a host path.
    pub fn profile_dir(&self) -> PathBuf {
        self.config_dir().join("basic/profiles/P")
    }

    /// The current `service.json` (OBS rewrites it when the service changes).
    pub fn service_json(&self) -> Value {
        let path = self.profile_dir().join("service.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The obs-websocket port, if enabled.
    pub fn websocket_port(&self) -> Option<u16> {
        self.websocket_port
    }

    /// The frame rate configured.
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Everything OBS logged to files so far (`~/.config/obs-studio/logs/*.txt`, oldest
    /// first).
    pub fn log_files(&self) -> String {
        self.log_files_except(&BTreeSet::new())
    }

    /// The paths of OBS's log files so far.
    fn log_paths(&self) -> BTreeSet<PathBuf> {
        std::fs::read_dir(self.config_dir().join("logs"))
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }

    /// [`Profile::log_files`] but those in `earlier` (another run's).
    fn log_files_except(&self, earlier: &BTreeSet<PathBuf>) -> String {
        let mut out = String::new();
        for file in self.log_paths().difference(earlier) {
            if let Ok(bytes) = std::fs::read(file) {
                out += &format!("==== {} ====\n", file.display());
                out += &String::from_utf8_lossy(&bytes);
            }
        }
        out
    }

    /// Takes the OBS lock, starts Xvfb and OBS with this profile.
    pub fn start(self, on_start: OnStart) -> ObsRun {
        self.version.require();
        let started = Instant::now();
        let lock = ObsLock::acquire();
        let waited_for_lock = started.elapsed();
        let mounts = self.root.as_deref().map(Mounts::new);
        let xvfb = Xvfb::start(self.root.as_deref());
        let earlier_logs = self.log_paths();
        let runtime_dir = self.home.path().join(".run");
        std::fs::create_dir_all(&runtime_dir).unwrap();
        std::fs::set_permissions(
            &runtime_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let mut command = command_in(
            self.root.as_deref(),
            self.netns.as_deref(),
            "obs",
            self.trusted_certs.as_deref(),
        );
        command
            .args(["--multi", "--minimize-to-tray"])
            .args((on_start == OnStart::Stream).then_some("--startstreaming"))
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &self.guest_home)
            .env("XDG_RUNTIME_DIR", self.guest_home.join(".run"))
            .env("DISPLAY", format!(":{}", xvfb.display))
            .env("LANG", "C.UTF-8")
            .env("QT_QPA_PLATFORM", "xcb")
            .current_dir(self.home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.version));
        let output = Arc::new(Mutex::new(String::new()));
        let echo = std::env::var_os("OBS_GOAWAY_ECHO").is_some_and(|v| v != "0");
        let tag = format!("obs {}", self.version.version());
        let readers = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .map(|stream| {
            let output = Arc::clone(&output);
            let tag = tag.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if echo {
                        eprintln!("[{tag}] {line}");
                    }
                    let mut output = output.lock().unwrap_or_else(|p| p.into_inner());
                    output.push_str(&line);
                    output.push('\n');
                }
            })
        })
        .collect();
        ObsRun {
            child,
            output,
            readers,
            started: Instant::now(),
            waited_for_lock,
            earlier_logs,
            xvfb,
            mounts,
            profile: Some(self),
            lock,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Process plumbing: the lock, the root's mounts, Xvfb

/// The machine-wide OBS lock: a `flock` process holding [`LOCK_FILE`] until its stdin
/// closes (on drop, or when this test process dies in any way).
struct ObsLock {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl ObsLock {
    fn acquire() -> Self {
        let dir = Path::new(LOCK_FILE).parent().unwrap();
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut child = Command::new("flock")
            .args(["-w", &LOCK_TIMEOUT_SECS.to_string(), LOCK_FILE])
            .args(["sh", "-c", "echo locked; exec cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("running flock");
        let stdin = child.stdin.take();
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        assert_eq!(
            line.trim(),
            "locked",
            "could not take the OBS lock {LOCK_FILE} within {LOCK_TIMEOUT_SECS} s"
        );
        Self { child, stdin }
    }
}

impl Drop for ObsLock {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if wait_timeout(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `/proc` and `/dev` mounted into a root for the time of a run; unmounted on drop, but only
/// what this guard mounted, and only when no process runs in the root any more (somebody
/// else's chroot there, not holding the OBS lock, keeps them: a left mount is harmless and
/// reused by the next run, a mount pulled from under a running program is not).
struct Mounts {
    root: PathBuf,
    mounted: Vec<PathBuf>,
}

impl Mounts {
    fn new(root: &Path) -> Self {
        let root = root.canonicalize().unwrap();
        let mut mounts = Self {
            root: root.clone(),
            mounted: Vec::new(),
        };
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let is_mounted = |point: &Path| {
            let point = point.to_string_lossy().replace(' ', "\\040");
            mountinfo
                .lines()
                .any(|l| l.split_whitespace().nth(4) == Some(point.as_str()))
        };
        let proc_args: &[&str] = &["-t", "proc", "proc"];
        let dev_args: &[&str] = &["--bind", "/dev"];
        for (point, args) in [(root.join("proc"), proc_args), (root.join("dev"), dev_args)] {
            if is_mounted(&point) {
                continue;
            }
            let status = Command::new("mount")
                .args(args)
                .arg(&point)
                .status()
                .expect("running mount");
            assert!(
                status.success(),
                "mount {args:?} {} failed",
                point.display()
            );
            mounts.mounted.push(point);
        }
        mounts
    }

    /// Processes whose root directory is this root.
    fn processes_inside(&self) -> usize {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .filter(|e| std::fs::read_link(e.path().join("root")).is_ok_and(|r| r == self.root))
            .count()
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        if self.mounted.is_empty() {
            return;
        }
        let inside = self.processes_inside();
        if inside > 0 {
            eprintln!(
                "obs harness: leaving /proc and /dev mounted in {}: {inside} other process(es) run there",
                self.root.display()
            );
            return;
        }
        for point in self.mounted.iter().rev() {
            let status = Command::new("umount").arg(point).status();
            if !status.is_ok_and(|s| s.success()) {
                eprintln!("obs harness: could not unmount {}", point.display());
            }
        }
    }
}

/// One Xvfb on a free display (chosen by Xvfb itself: `-displayfd`).
struct Xvfb {
    child: Child,
    display: u32,
}

impl Xvfb {
    fn start(root: Option<&Path>) -> Self {
        let mut child = command_in(root, None, "Xvfb", None)
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1920x1080x24",
                "-nolisten",
                "tcp",
            ])
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting Xvfb: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        // Its display number, once it listens: seconds on a loaded machine (it compiles its
        // keymap with xkbcomp first), at once if it fails.
        let line = rx.recv_timeout(XVFB_STARTUP_LIMIT);
        let display = line.as_ref().ok().and_then(|line| line.trim().parse().ok());
        let Some(display) = display else {
            let exited = child.try_wait().ok().flatten();
            let _ = child.kill();
            let _ = child.wait();
            let mut errors = String::new();
            let _ = stderr.read_to_string(&mut errors);
            match (exited, line) {
                (Some(status), _) => panic!("Xvfb exited ({status}) before it listened: {errors}"),
                (None, Ok(line)) => panic!("Xvfb printed {line:?}, not its display: {errors}"),
                (None, Err(_)) => {
                    panic!("Xvfb did not listen within {XVFB_STARTUP_LIMIT:?} (killed): {errors}")
                }
            }
        };
        // Xvfb logs to stderr; drain it so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Self { child, display }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        send_signal(self.child.id(), "TERM");
        if wait_timeout(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// A running OBS

/// OBS running on its own Xvfb. Dropping it kills OBS and Xvfb, unmounts, releases the lock
/// and removes the HOME (unless [`ObsRun::stop`] handed the profile out).
pub struct ObsRun {
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
    waited_for_lock: Duration,
    /// Log files of earlier runs with the same profile: this run's log is the rest (an
    /// earlier run's "Shutting down" must not count as this one's).
    earlier_logs: BTreeSet<PathBuf>,
    // Dropped in this order, after OBS is dead (see Drop).
    xvfb: Xvfb,
    mounts: Option<Mounts>,
    profile: Option<Profile>,
    lock: ObsLock,
}

/// How an OBS run ended.
#[derive(Debug)]
pub struct ObsExit {
    /// OBS's exit status (0 even when it failed to stream: read the log).
    pub status: ExitStatus,
    /// Whether OBS did not quit when asked and had to be killed.
    pub killed: bool,
    /// Time from the quit request to exit.
    pub shutdown: Duration,
    /// Everything OBS printed and logged (see [`ObsRun::log`]).
    pub log: String,
    /// What OBS printed on stdout and stderr only (the log file repeats it with times).
    pub console: String,
    /// How OBS was asked to quit.
    pub quit: QuitRequest,
    /// The HOME it ran with, kept for inspection (service.json, logs) until dropped.
    pub profile: Profile,
}

impl ObsRun {
    /// The version running.
    pub fn version(&self) -> ObsVersion {
        self.profile().version
    }

    /// The profile it runs with.
    pub fn profile(&self) -> &Profile {
        self.profile
            .as_ref()
            .expect("the profile lives as long as the run")
    }

    /// The X display number (`DISPLAY=:n`), reachable from the host too.
    pub fn display(&self) -> u32 {
        self.xvfb.display
    }

    /// The OBS process id (`setpriv` and `chroot` exec OBS in the same process).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Time since OBS was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// How long the run waited for other OBS runs (the lock) before starting.
    pub fn waited_for_lock(&self) -> Duration {
        self.waited_for_lock
    }

    /// Everything OBS said so far: its stdout and stderr, then its log file(s).
    pub fn log(&self) -> String {
        let output = self
            .output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        format!(
            "==== {} stdout/stderr ====\n{output}{}",
            self.version(),
            self.log_files()
        )
    }

    /// This run's log file(s) (OBS flushes each line there), not earlier runs' with the
    /// same profile.
    pub fn log_files(&self) -> String {
        self.profile().log_files_except(&self.earlier_logs)
    }

    /// Whether the log contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(needle)
            || self.log_files().contains(needle)
    }

    /// Waits until the log contains `needle`; false on timeout or if OBS exited first.
    /// `timeout` counts from the end of OBS's startup (its scenes loaded, up to
    /// [`STARTUP_LIMIT`]): on a cold machine startup alone can outlast what a test allows
    /// for what happens after it.
    pub fn try_wait_for_log(&mut self, needle: &str, timeout: Duration) -> bool {
        super::within(STARTUP_LIMIT, || {
            self.log_contains(SCENES_LOADED)
                || self.log_contains(needle)
                || !matches!(self.child.try_wait(), Ok(None))
        });
        super::within(timeout, || {
            self.log_contains(needle) || !matches!(self.child.try_wait(), Ok(None))
        });
        self.log_contains(needle)
    }

    /// Waits until the log contains `needle`; panics with the log on timeout or if OBS
    /// exited first.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        if !self.try_wait_for_log(needle, timeout) {
            let exited = self.child.try_wait().ok().flatten();
            panic!(
                "{}: no {needle:?} in the log after {:.1}s{}\n{}",
                self.version(),
                self.elapsed().as_secs_f32(),
                exited.map_or(String::new(), |s| format!(" (OBS exited: {s})")),
                self.log()
            );
        }
    }

    /// Whether OBS is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// ImageMagick's `import` grabbing this run's whole display; the caller adds options
    /// and the output.
    pub fn import(&self) -> Command {
        assert!(
            has_command("import"),
            "import is required for screenshots (apt-get install imagemagick)"
        );
        let mut import = Command::new("import");
        import.args([
            "-display",
            &format!(":{}", self.display()),
            "-window",
            "root",
        ]);
        import
    }

    /// Saves a screenshot of the whole display.
    pub fn screenshot(&self, path: &Path) {
        let status = self.import().arg(path).status().expect("running import");
        assert!(status.success(), "import failed for {}", path.display());
    }

    /// Runs `xdotool` with `args` on this run's display (keys, clicks, window search).
    pub fn xdotool(&self, args: &[&str]) -> String {
        assert!(
            has_command("xdotool"),
            "xdotool is required (apt-get install xdotool)"
        );
        let output = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", format!(":{}", self.display()))
            .output()
            .expect("running xdotool");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until a visible window whose title contains `title` exists (OBS's main
    /// window: "OBS 29.0.2 - Profile: P - Scenes: P"); returns its X window id. OBS paints
    /// it shortly after: give it a moment before a screenshot.
    pub fn wait_for_window(&self, title: &str, timeout: Duration) -> Option<String> {
        let mut window = None;
        super::within(timeout, || {
            let found = self.xdotool(&["search", "--onlyvisible", "--name", title]);
            window = found.lines().next().map(str::to_owned);
            window.is_some()
        });
        window
    }

    /// Opens Settings from the keyboard as a user does (OBS's `&File` menu, `&Settings`) and
    /// returns its window once shown, the page list focused on General. Qt hands keys to
    /// an open menu whichever window X gave them to, so the keys need no pause between them.
    pub fn open_settings(&self) -> String {
        let main = self
            .wait_for_window(MAIN_WINDOW, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{}: no main window\n{}", self.version(), self.log()));
        self.xdotool(&["windowfocus", "--sync", &main]);
        self.xdotool(&["key", "alt+f", "s"]);
        let settings = self
            .wait_for_window("^Settings$", Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{}: no Settings window\n{}", self.version(), self.log()));
        self.xdotool(&["windowfocus", "--sync", &settings]);
        settings
    }

    /// Connects to obs-websocket (enabled with [`ProfileBuilder::websocket`]) once OBS is
    /// ready for requests, retrying until then or until `timeout` passes (here it is up
    /// about 1 s after start).
    pub async fn websocket(&self, timeout: Duration) -> Result<ObsWebSocket, String> {
        let port = self
            .profile()
            .websocket_port
            .ok_or("obs-websocket is not enabled in this profile")?;
        let deadline = Instant::now() + timeout;
        let mut socket = ObsWebSocket::connect(port, timeout).await?;
        socket
            .wait_until_ready(deadline.saturating_duration_since(Instant::now()))
            .await?;
        Ok(socket)
    }

    /// Closes OBS's windows until it starts shutting down, asking again every 2 s as a user
    /// clicks again when nothing happens.
    fn close_windows(&mut self) -> QuitRequest {
        let mut requests = 0;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Err(error) = super::x11::close_application(self.display(), MAIN_WINDOW) {
                return QuitRequest::Failed(error);
            }
            requests += 1;
            if self.try_wait_for_log("==== Shutting down", Duration::from_secs(2))
                || !self.is_running()
            {
                break;
            }
        }
        QuitRequest::WindowsClosed { requests }
    }

    /// Waits up to `timeout` for OBS to exit, closing every second any dialog it opened while
    /// quitting, as its user would: a stream that failed just before the quit shows its
    /// error box during the shutdown, and OBS waits for its OK.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(status) = wait_timeout(&mut self.child, left.min(Duration::from_secs(1))) {
                return Some(status);
            }
            if left.is_zero() {
                return None;
            }
            let _ = super::x11::close_dialogs(self.display(), MAIN_WINDOW);
        }
    }

    /// Quits OBS as its user does and waits for it: OBS 29 gets its windows closed (see
    /// [`super::x11`]: its Ctrl+C handler is unsafe), later versions SIGINT (their handler
    /// only wakes the main loop). SIGKILL if it has not exited within 20 s. Returns the
    /// status and the full log.
    ///
    /// Waits first until OBS has loaded its scenes ([`SCENES_LOADED`]) and made its main
    /// window (at most 30 s): that window must exist to be closed.
    pub fn stop(mut self) -> ObsExit {
        self.try_wait_for_log(SCENES_LOADED, Duration::from_secs(30));
        super::within(Duration::from_secs(30), || {
            !self.is_running()
                || !self
                    .xdotool(&["search", "--name", MAIN_WINDOW])
                    .trim()
                    .is_empty()
        });
        let asked = Instant::now();
        let mut killed = false;
        let mut quit = QuitRequest::Signal;
        let mut hung_stacks = None;
        let mut hung_windows = None;
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status,
            _ => {
                if self.version() == ObsVersion::Host {
                    if let Err(why) = super::x11::wait_for_event_loop(
                        self.display(),
                        MAIN_WINDOW,
                        EVENT_LOOP_LIMIT,
                    ) {
                        eprintln!("{}: quitting anyway: {why}", self.version());
                    }
                    quit = self.close_windows();
                } else {
                    send_signal(self.child.id(), "INT");
                }
                self.wait_exit(STOP_TIMEOUT).unwrap_or_else(|| {
                    killed = true;
                    hung_stacks = thread_stacks(self.child.id());
                    if quit != QuitRequest::Signal {
                        hung_windows = Some(
                            super::x11::describe_windows(self.display())
                                .unwrap_or_else(|why| format!("could not list them: {why}\n")),
                        );
                    }
                    let _ = self.child.kill();
                    self.child.wait().expect("waiting for OBS")
                })
            }
        };
        let shutdown = asked.elapsed();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let mut log = self.log();
        if let Some(windows) = hung_windows {
            log.push_str(
                "\n==== OBS's X windows when it was killed (top of the stack last) ====\n",
            );
            log.push_str(&windows);
        }
        if let Some(stacks) = hung_stacks {
            log.push_str("\n==== OBS's threads when it was killed (gdb) ====\n");
            log.push_str(&stacks);
        }
        let console = self
            .output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        ObsExit {
            status,
            killed,
            shutdown,
            log,
            console,
            quit,
            profile: self.profile.take().expect("stop runs once"),
        }
    }
}

/// How [`ObsRun::stop`] asked OBS to quit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuitRequest {
    /// SIGINT, as Ctrl+C in a terminal (OBS 29.1 and later).
    Signal,
    /// Its dialogs and main window got the window manager's close request (OBS 29.0), this
    /// many times.
    WindowsClosed { requests: u32 },
    /// Closing its windows failed (why): OBS was left running until killed.
    Failed(String),
}

impl fmt::Display for QuitRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signal => f.write_str("SIGINT"),
            Self::WindowsClosed { requests } => write!(f, "closing its windows ({requests}x)"),
            Self::Failed(why) => write!(f, "closing its windows failed: {why}"),
        }
    }
}

impl ObsExit {
    /// Panics (with the log) unless OBS quit by itself, with status 0, when asked.
    pub fn assert_clean(&self, context: &str) {
        assert!(
            self.status.success() && !self.killed,
            "{}: {context}: OBS exited with {} (killed: {}, asked by: {})\n{}",
            self.profile.version(),
            self.status,
            self.killed,
            self.quit,
            self.log
        );
    }

    /// The console lines about streaming: the RTMP output's messages, output start, stop
    /// and frame counts, reconnects.
    pub fn stream_lines(&self) -> Vec<&str> {
        self.console
            .lines()
            .filter(|l| {
                [
                    "rtmp stream",
                    "Output '",
                    "Streaming",
                    "econnect",
                    "goaway",
                    "Go Away",
                ]
                .iter()
                .any(|needle| l.contains(needle))
            })
            .collect()
    }

    /// Every "Total frames output: N" OBS logged (one per output stop), in order.
    pub fn total_frames_output(&self) -> Vec<u64> {
        self.console
            .lines()
            .filter_map(|l| l.split("Total frames output: ").nth(1))
            // "692" or "692 (751 attempted)"
            .filter_map(|n| n.split_whitespace().next()?.parse().ok())
            .collect()
    }
}

impl Drop for ObsRun {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// obs-websocket

/// A minimal obs-websocket v5 client (JSON over WebSocket, no authentication).
pub struct ObsWebSocket {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    events: Vec<Value>,
    /// The server's Hello (`obsWebSocketVersion`, `rpcVersion`).
    pub hello: Value,
}

/// How long one obs-websocket exchange may take.
const WEBSOCKET_TIMEOUT: Duration = Duration::from_secs(10);

impl ObsWebSocket {
    /// Connects to `127.0.0.1:port` and identifies (rpcVersion 1, default event
    /// subscriptions), retrying connection failures until `timeout`.
    pub async fn connect(port: u16, timeout: Duration) -> Result<Self, String> {
        let url = format!("ws://127.0.0.1:{port}");
        let deadline = Instant::now() + timeout;
        let socket = loop {
            match tokio_tungstenite::connect_async(url.as_str()).await {
                Ok((socket, _)) => break socket,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("cannot connect to obs-websocket at {url}: {e}"))
                }
                // Not listening yet: try again shortly.
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let mut this = Self {
            socket,
            next_id: 1,
            events: Vec::new(),
            hello: Value::Null,
        };
        let hello = this.receive_op(0).await?;
        if hello.get("authentication").is_some() {
            return Err("obs-websocket asks for authentication".into());
        }
        this.hello = hello;
        this.send(json!({"op": 1, "d": {"rpcVersion": 1}})).await?;
        this.receive_op(2).await?;
        Ok(this)
    }

    /// Sends request `request_type` with `data` (a JSON object, or null); returns its
    /// `responseData` (null if none), or the failure's code and comment.
    pub async fn request(&mut self, request_type: &str, data: Value) -> Result<Value, String> {
        self.call(request_type, data)
            .await
            .map_err(|(code, comment)| format!("{request_type} failed (code {code}): {comment}"))
    }

    /// Waits until OBS has finished loading: until then obs-websocket 5.7 (OBS 32) answers
    /// every request with code 207 "not ready" (5.1 in OBS 29 answers at once).
    pub async fn wait_until_ready(&mut self, timeout: Duration) -> Result<(), String> {
        const NOT_READY: i64 = 207;
        let deadline = Instant::now() + timeout;
        loop {
            match self.call("GetVersion", Value::Null).await {
                Ok(_) => return Ok(()),
                Err((NOT_READY, _)) if Instant::now() < deadline => {
                    // Ask again shortly.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err((code, comment)) => {
                    return Err(format!("obs-websocket not ready (code {code}): {comment}"))
                }
            }
        }
    }

    /// One request: `responseData`, or the status code and comment.
    async fn call(&mut self, request_type: &str, data: Value) -> Result<Value, (i64, String)> {
        let id = self.next_id.to_string();
        self.next_id += 1;
        let mut request = json!({"requestType": request_type, "requestId": id});
        if !data.is_null() {
            request["requestData"] = data;
        }
        self.send(json!({"op": 6, "d": request}))
            .await
            .map_err(|e| (-1, e))?;
        loop {
            let response = self.receive_op(7).await.map_err(|e| (-1, e))?;
            if response["requestId"] != json!(id) {
                continue;
            }
            let status = &response["requestStatus"];
            if status["result"] == json!(true) {
                return Ok(response.get("responseData").cloned().unwrap_or(Value::Null));
            }
            return Err((
                status["code"].as_i64().unwrap_or(-1),
                status["comment"]
                    .as_str()
                    .unwrap_or("no comment")
                    .to_owned(),
            ));
        }
    }

    /// Events received so far (op 5 `d` objects: `eventType`, `eventData`), oldest first.
    pub fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }

    /// Waits up to `timeout` for an event of `event_type` (events read meanwhile are kept).
    pub async fn wait_for_event(&mut self, event_type: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(index) = self
                .events
                .iter()
                .position(|e| e["eventType"] == event_type)
            {
                return Some(self.events.remove(index));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.receive()).await {
                Ok(Ok(message)) => self.keep_event(message),
                _ => return None,
            }
        }
    }

    async fn send(&mut self, message: Value) -> Result<(), String> {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .map_err(|e| format!("obs-websocket send: {e}"))
    }

    /// The next JSON message (`{op, d}`).
    async fn receive(&mut self) -> Result<Value, String> {
        loop {
            let message = self
                .socket
                .next()
                .await
                .ok_or("obs-websocket closed the connection")?
                .map_err(|e| format!("obs-websocket: {e}"))?;
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| format!("obs-websocket sent bad JSON: {e}"))
                }
                Message::Close(frame) => return Err(format!("obs-websocket closed: {frame:?}")),
                _ => {}
            }
        }
    }

    fn keep_event(&mut self, message: Value) {
        if message["op"] == 5 {
            self.events.push(message["d"].clone());
        }
    }

    /// The `d` of the next message with opcode `op`, keeping events that come first.
    async fn receive_op(&mut self, op: u64) -> Result<Value, String> {
        loop {
            let message = tokio::time::timeout(WEBSOCKET_TIMEOUT, self.receive())
                .await
                .map_err(|_| format!("obs-websocket: no op {op} within {WEBSOCKET_TIMEOUT:?}"))??;
            if message["op"] == op {
                return Ok(message["d"].clone());
            }
            self.keep_event(message);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The outage scenario

/// When the scenario does what, measured from the first frame ingest A received.
#[derive(Debug, Clone)]
pub struct ScenarioTimes {
    /// Ingest A sends Go Away (message type 32) to every publisher that announced support.
    pub go_away: Duration,
    /// Ingest A sends Enhanced RTMP Reconnect Request, naming ingest B, to every publisher
    /// that announced support (capsEx bit 0x01).
    pub reconnect_request: Duration,
    /// Both ingests drop every connection and refuse new ones ([`Ingest::interrupt`])...
    pub outage: Duration,
    /// ... for this long.
    pub outage_length: Duration,
    /// OBS is stopped (asked to quit) this long after the first frame.
    pub end: Duration,
}

impl ScenarioTimes {
    /// Only a Go Away at `go_away`, then the end at `end`: one planned move.
    pub fn go_away_only(go_away: Duration, end: Duration) -> Self {
        let never = Duration::from_secs(3600);
        Self {
            go_away,
            reconnect_request: never,
            outage: never,
            outage_length: Duration::ZERO,
            end,
        }
    }
}

impl Default for ScenarioTimes {
    fn default() -> Self {
        Self {
            go_away: Duration::from_secs(6),
            reconnect_request: Duration::from_secs(12),
            outage: Duration::from_secs(18),
            outage_length: Duration::from_secs(3),
            end: Duration::from_secs(25),
        }
    }
}

/// What one ingest of the scenario saw.
#[derive(Debug)]
pub struct IngestRecord {
    /// "A" (the configured server) or "B" (the Reconnect Request's target).
    pub name: &'static str,
    /// Its statistics for [`SCENARIO_KEY`], if anybody published there.
    pub stats: Option<StreamStats>,
    /// The tags of its recording (empty if none).
    pub tags: Vec<Tag>,
}

/// What a run of [`run_outage_scenario`] measured.
///
/// Frame figures are about video at the profile's frame rate, from the recordings of both
/// ingests together (ingest A and B record into separate directories, so each file shows
/// which server got what; their video timestamps are merged for the figures).
#[derive(Debug)]
pub struct ScenarioOutcome {
    /// Which OBS.
    pub version: ObsVersion,
    /// The profile's frame rate, which the frame figures assume.
    pub fps: u32,
    /// OBS's exit status and full log.
    pub exit: ObsExit,
    /// What happened when, from the first frame: signals sent and how many publishers each
    /// ingest had (sampled every 50 ms).
    pub timeline: Vec<(Duration, String)>,
    /// Ingest A, then B.
    pub ingests: Vec<IngestRecord>,
    /// Wall-clock time from the first frame at ingest A to the quit request.
    pub streamed: Duration,
    /// Distinct video frames recorded (by timestamp).
    pub video_frames: u64,
    /// Distinct audio frames recorded (by timestamp).
    pub audio_frames: u64,
    /// Video frames a lossless stream would have had over `streamed` at the frame rate.
    pub expected_video_frames: u64,
    /// `expected_video_frames - video_frames`: loss by the clock (a few frames either way
    /// are start and stop effects).
    pub video_lost_by_clock: i64,
    /// Frames missing inside the timestamps: the sum, over gaps between consecutive
    /// recorded video timestamps longer than 1.5 frame intervals, of the frames that fit in
    /// the gap.
    pub video_lost_in_gaps: u64,
    /// Frames received twice: skipped by the ingests' recorders (a repeated or older
    /// timestamp on a later connection; this includes everything a publisher sends after
    /// restarting its timestamps, until they pass the old ones), plus video timestamps
    /// present in both ingests' recordings.
    pub duplicates: u64,
    /// Longest wait between two frames becoming available at one ingest (the larger of
    /// the two ingests' `largest_gap`): a stall a viewer would see.
    pub longest_arrival_gap: Duration,
    /// Longest wall-clock time in which no frame at all reached either ingest (sampled every
    /// 50 ms, frames the recorders skipped included): how long a live viewer saw nothing
    /// new. For a publisher that drops what it could not send (OBS's own output) this is
    /// lost content; for one that resends after reconnecting it is a delay.
    pub longest_stall: Duration,
    /// Audio and video frames that reached the ingests, skipped ones included.
    pub frames_received: u64,
    /// Video frames OBS says its stream output sent: the sum of its "Total frames output"
    /// lines (one per output start, so a reconnect by OBS's own logic adds one).
    pub obs_frames_output: u64,
    /// `expected_video_frames - obs_frames_output`: what OBS never even sent (dropped
    /// while disconnected). Unlike `video_lost_by_clock` it does not count what an ingest
    /// received but could not use (restarted timestamps).
    pub video_lost_by_obs_count: i64,
    /// Longest gap between consecutive recorded video timestamps.
    pub longest_video_gap: Duration,
    /// First and last recorded video timestamps (ms).
    pub video_span: Option<(u32, u32)>,
    /// Whether a connection after the first started its timestamps again near 0 (OBS's
    /// own reconnect does: a new stream for the server, and for the recorder frames that
    /// repeat timestamps it already has).
    pub timestamps_restarted: bool,
    /// The first timestamp (ms) of each connection, in order, A's then B's.
    pub first_timestamps: Vec<(&'static str, u32)>,
    /// Connections that published, both ingests.
    pub connections: u32,
    /// Signals the ingests sent (only to publishers that announced support).
    pub signals_sent: u32,
}

impl ScenarioOutcome {
    /// Video missing from the recordings, in seconds, by the clock.
    pub fn seconds_lost_by_clock(&self) -> f64 {
        self.video_lost_by_clock as f64 / f64::from(self.fps)
    }
}

impl fmt::Display for ScenarioOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: outage scenario", self.version)?;
        for (at, what) in &self.timeline {
            writeln!(f, "  {:>6.2}s  {what}", at.as_secs_f32())?;
        }
        for ingest in &self.ingests {
            match &ingest.stats {
                Some(s) => writeln!(
                    f,
                    "  ingest {}: {} connection(s), {} frames received, {} written, {} duplicate(s), \
                     largest gap {:.2}s, first timestamps {:?}, signals {}",
                    ingest.name,
                    s.connections,
                    s.frames_received,
                    s.frames_written,
                    s.duplicates,
                    s.largest_gap.as_secs_f32(),
                    s.first_timestamps,
                    s.signals_sent
                )?,
                None => writeln!(f, "  ingest {}: never published to", ingest.name)?,
            }
        }
        writeln!(
            f,
            "  streamed {:.2}s: video {} of {} expected (lost by clock {}, in timestamp gaps {}), \
             audio {}, duplicates {}",
            self.streamed.as_secs_f32(),
            self.video_frames,
            self.expected_video_frames,
            self.video_lost_by_clock,
            self.video_lost_in_gaps,
            self.audio_frames,
            self.duplicates
        )?;
        writeln!(
            f,
            "  video timestamps {:?}, {} frames received in all, longest stall {:.2}s; \
             OBS counts {} video frames output (lost by that count {})",
            self.video_span,
            self.frames_received,
            self.longest_stall.as_secs_f32(),
            self.obs_frames_output,
            self.video_lost_by_obs_count
        )?;
        for line in self.exit.stream_lines() {
            writeln!(f, "  | {line}")?;
        }
        write!(
            f,
            "  longest arrival gap {:.2}s, longest video timestamp gap {:.2}s, timestamps restarted: {}, \
             OBS exit {} after {:.2}s{}",
            self.longest_arrival_gap.as_secs_f32(),
            self.longest_video_gap.as_secs_f32(),
            self.timestamps_restarted,
            self.exit.status,
            self.exit.shutdown.as_secs_f32(),
            if self.exit.killed { " (killed)" } else { "" }
        )
    }
}

/// Streams with real OBS through an ingest's bad day and measures what reached the server.
///
/// Two reference ingests on loopback: A, the server `service` is given
/// (`rtmp://127.0.0.1:PORT/live`, key [`SCENARIO_KEY`]), and B, which A's Reconnect
/// Request names. They record into separate directories. OBS (`customize` can add a
/// plugin, change the encoder, ...) starts streaming; from A's first frame, with the
/// default [`ScenarioTimes`]:
/// - 6 s: A sends Go Away to its publishers (those that announced `supportsGoAway`);
/// - 12 s: A sends Reconnect Request naming B (to those that announced capsEx Reconnect);
/// - 18 s: A and B drop every connection and refuse new ones for 3 s, then accept again;
/// - 25 s: OBS is asked to quit (see [`ObsRun::stop`]).
///
/// Panics (with OBS's log) if OBS never delivers a frame to A.
pub fn run_outage_scenario(
    version: ObsVersion,
    service: impl FnOnce(&str) -> Value,
    customize: impl FnOnce(ProfileBuilder) -> ProfileBuilder,
) -> ScenarioOutcome {
    run_scenario(version, service, customize, &ScenarioTimes::default())
}

/// [`run_outage_scenario`] with other times.
pub fn run_scenario(
    version: ObsVersion,
    service: impl FnOnce(&str) -> Value,
    customize: impl FnOnce(ProfileBuilder) -> ProfileBuilder,
    times: &ScenarioTimes,
) -> ScenarioOutcome {
    version.require();
    let runtime = ingest_runtime();
    let dir = tempfile::tempdir().unwrap();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let ingest_b = runtime
        .block_on(Ingest::start(IngestConfig::new(
            loopback,
            dir.path().join("b"),
        )))
        .expect("starting ingest B");
    let server_b = format!("rtmp://{}/live", ingest_b.local_addrs()[0]);
    let mut config_a = IngestConfig::new(loopback, dir.path().join("a"));
    config_a.redirect = Some(server_b.clone());
    let ingest_a = runtime
        .block_on(Ingest::start(config_a))
        .expect("starting ingest A");
    let server_a = format!("rtmp://{}/live", ingest_a.local_addrs()[0]);

    let profile = customize(ProfileBuilder::new(version).service(service(&server_a))).build();
    let (obs, first_frame, mut timeline) = start_streaming(profile, &ingest_a, "A", &server_a);
    let mut seen = (usize::MAX, usize::MAX);
    let mut steps = 0;
    let mut arrivals = Arrivals::default();
    loop {
        let now = first_frame.elapsed();
        arrivals.sample(
            now,
            received(&ingest_a) + received(&ingest_b),
            &mut timeline,
        );
        if steps == 0 && now >= times.go_away {
            let sent = ingest_a.signal_all(Some(SignalKind::GoAway));
            timeline.push((now, format!("A: Go Away sent to {sent} publisher(s)")));
            steps += 1;
        }
        if steps == 1 && now >= times.reconnect_request {
            let sent = ingest_a.signal_all(Some(SignalKind::ReconnectRequest));
            timeline.push((
                now,
                format!("A: Reconnect Request to {server_b} sent to {sent} publisher(s)"),
            ));
            steps += 1;
        }
        if steps == 2 && now >= times.outage {
            ingest_a.interrupt(times.outage_length);
            ingest_b.interrupt(times.outage_length);
            timeline.push((
                now,
                format!(
                    "A and B: outage, every connection dropped, refused for {:.1}s",
                    times.outage_length.as_secs_f32()
                ),
            ));
            steps += 1;
        }
        let publishers = (
            ingest_a.publishers(SCENARIO_KEY),
            ingest_b.publishers(SCENARIO_KEY),
        );
        if publishers != seen {
            seen = publishers;
            timeline.push((
                now,
                format!("publishers: A {}, B {}", publishers.0, publishers.1),
            ));
        }
        if now >= times.end {
            break;
        }
        // The scenario's clock: the ingests are sampled (and signalled) every 50 ms.
        std::thread::sleep(Duration::from_millis(50));
    }
    let streamed = first_frame.elapsed();
    stop_and_measure(
        obs,
        timeline,
        &[("A", &ingest_a), ("B", &ingest_b)],
        streamed,
        &arrivals,
    )
}

/// A multi-threaded runtime for the reference ingests a run streams to.
pub fn ingest_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Audio and video frames `ingest` received for [`SCENARIO_KEY`], skipped ones included.
pub fn received(ingest: &Ingest) -> u64 {
    ingest
        .stats()
        .get(SCENARIO_KEY)
        .map_or(0, |s| s.frames_received)
}

/// Starts OBS streaming with `profile`, waits for it to load its modules and scenes (up to
/// [`STARTUP_LIMIT`]), then up to 30 s for its first frame at `ingest` (named `name` in the
/// timeline, listening at `server`): the run, when that frame came, and a timeline that
/// begins with it. Panics with OBS's log if either did not happen.
pub fn start_streaming(
    profile: Profile,
    ingest: &Ingest,
    name: &str,
    server: &str,
) -> (ObsRun, Instant, Vec<(Duration, String)>) {
    let mut obs = profile.start(OnStart::Stream);
    if !obs.try_wait_for_log(SCENES_LOADED, STARTUP_LIMIT) && received(ingest) == 0 {
        panic!(
            "{}: OBS did not load its scenes within {STARTUP_LIMIT:?}\n{}",
            obs.version(),
            obs.log()
        );
    }
    super::within(Duration::from_secs(30), || {
        received(ingest) > 0 || !obs.is_running()
    });
    if received(ingest) == 0 {
        panic!(
            "{}: no frame reached {name} ({server}) within 30 s of OBS loading its scenes\n{}",
            obs.version(),
            obs.log()
        );
    }
    let timeline = vec![(
        Duration::ZERO,
        format!(
            "first frame at {name} ({server}), {:.2}s after OBS started",
            obs.elapsed().as_secs_f32()
        ),
    )];
    (obs, Instant::now(), timeline)
}

/// When frames last arrived, sampled on a run's clock: the longest wall-clock time in which
/// no frame at all reached the ingests (frames the recorders skip count: a viewer of a
/// stream that restarted its clock sees them).
#[derive(Debug, Default)]
pub struct Arrivals {
    frames: u64,
    last: Duration,
    longest: Duration,
}

impl Arrivals {
    /// `frames` received in all by `now` (from the first frame); a stall of 500 ms or more
    /// that this sample ends goes into `timeline`.
    pub fn sample(&mut self, now: Duration, frames: u64, timeline: &mut Vec<(Duration, String)>) {
        if frames != self.frames {
            let stall = now.saturating_sub(self.last);
            if stall >= Duration::from_millis(500) {
                timeline.push((
                    now,
                    format!(
                        "frames arrive again after {:.2}s without any",
                        stall.as_secs_f32()
                    ),
                ));
            }
            self.frames = frames;
            self.last = now;
        }
        self.longest = self.longest.max(now.saturating_sub(self.last));
    }
}

/// Asks OBS to quit, waits (up to 5 s) for its publishers to leave the `ingests` (named),
/// and measures what they recorded of [`SCENARIO_KEY`] over the `streamed` time.
pub fn stop_and_measure(
    obs: ObsRun,
    mut timeline: Vec<(Duration, String)>,
    ingests: &[(&'static str, &Ingest)],
    streamed: Duration,
    arrivals: &Arrivals,
) -> ScenarioOutcome {
    let version = obs.version();
    let exit = obs.stop();
    timeline.push((
        streamed,
        format!("OBS asked to quit by {}, exit {}", exit.quit, exit.status),
    ));
    super::within(Duration::from_secs(5), || {
        ingests
            .iter()
            .map(|(_, ingest)| ingest.publishers(SCENARIO_KEY))
            .sum::<usize>()
            == 0
    });
    let records: Vec<IngestRecord> = ingests
        .iter()
        .map(|&(name, ingest)| {
            let stats = ingest.stats().remove(SCENARIO_KEY);
            let tags = stats
                .as_ref()
                .map(|s| super::read_flv(&s.path))
                .unwrap_or_default();
            IngestRecord { name, stats, tags }
        })
        .collect();
    let fps = exit.profile.fps();
    let mut outcome = measure(version, exit, timeline, records, streamed, fps);
    outcome.longest_stall = arrivals.longest;
    outcome.obs_frames_output = outcome.exit.total_frames_output().iter().sum();
    outcome.video_lost_by_obs_count =
        outcome.expected_video_frames as i64 - outcome.obs_frames_output as i64;
    outcome
}

/// Computes the outcome's figures from what the ingests recorded.
fn measure(
    version: ObsVersion,
    exit: ObsExit,
    timeline: Vec<(Duration, String)>,
    ingests: Vec<IngestRecord>,
    streamed: Duration,
    fps: u32,
) -> ScenarioOutcome {
    let frames = |kind: TagKind| -> Vec<u32> {
        let mut timestamps: Vec<u32> = ingests
            .iter()
            .flat_map(|i| &i.tags)
            .filter(|t| t.kind == kind && t.is_frame())
            .map(|t| t.timestamp)
            .collect();
        timestamps.sort_unstable();
        timestamps
    };
    let video = frames(TagKind::Video);
    let audio: BTreeSet<u32> = frames(TagKind::Audio).into_iter().collect();
    let unique_video: Vec<u32> = video
        .iter()
        .copied()
        .collect::<BTreeSet<u32>>()
        .into_iter()
        .collect();
    let interval = 1000.0 / f64::from(fps);
    let mut lost_in_gaps = 0;
    let mut longest_gap = 0;
    for pair in unique_video.windows(2) {
        let gap = pair[1] - pair[0];
        longest_gap = longest_gap.max(gap);
        if f64::from(gap) > 1.5 * interval {
            lost_in_gaps += (f64::from(gap) / interval).round() as u64 - 1;
        }
    }
    let expected = (streamed.as_secs_f64() * f64::from(fps)).round() as u64;
    let stats: Vec<(&'static str, &StreamStats)> = ingests
        .iter()
        .filter_map(|i| i.stats.as_ref().map(|s| (i.name, s)))
        .collect();
    let first_timestamps: Vec<(&'static str, u32)> = stats
        .iter()
        .flat_map(|(name, s)| s.first_timestamps.iter().map(|&t| (*name, t)))
        .collect();
    ScenarioOutcome {
        version,
        fps,
        exit,
        timeline,
        streamed,
        video_frames: unique_video.len() as u64,
        audio_frames: audio.len() as u64,
        expected_video_frames: expected,
        video_lost_by_clock: expected as i64 - unique_video.len() as i64,
        video_lost_in_gaps: lost_in_gaps,
        duplicates: stats.iter().map(|(_, s)| s.duplicates).sum::<u64>()
            + (video.len() - unique_video.len()) as u64,
        longest_arrival_gap: stats
            .iter()
            .map(|(_, s)| s.largest_gap)
            .max()
            .unwrap_or_default(),
        longest_stall: Duration::ZERO,
        obs_frames_output: 0,
        video_lost_by_obs_count: 0,
        frames_received: stats.iter().map(|(_, s)| s.frames_received).sum(),
        longest_video_gap: Duration::from_millis(u64::from(longest_gap)),
        video_span: unique_video
            .first()
            .zip(unique_video.last())
            .map(|(a, b)| (*a, *b)),
        timestamps_restarted: first_timestamps.iter().skip(1).any(|&(_, t)| t < 1000),
        first_timestamps,
        connections: stats.iter().map(|(_, s)| s.connections).sum(),
        signals_sent: stats.iter().map(|(_, s)| s.signals_sent).sum(),
        ingests,
    }
}
