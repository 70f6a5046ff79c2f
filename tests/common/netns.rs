//! Networks that fail the way real ones do, made by the test itself: a publisher's, a
//! router's and an ingest's network namespace in a row, joined by veth pairs on /30s, with
//! - [`Net::silence`]: every packet dropped by nftables in the ingest's namespace (no RST,
//!   no ICMP: Wi-Fi or an ISP link dying),
//! - [`Net::slow`]: a `tbf` rate limit on the router's link to the ingest (an uplink slower
//!   than the stream: the queue and its drops are on the path, not in the publisher's own
//!   machine),
//! - [`Net::change_path`]: a second link from the publisher to the router and a route over
//!   it, then the first link deleted (a laptop moving from Wi-Fi to Ethernet).
//!
//! The ingest answers on [`Net::ingest_addr`], an address on its loopback, so a path change
//! keeps the server's address. Names are unique per test process and network, and [`Drop`]
//! deletes everything. Needs root (and `ip`, `nft`, `tc`).

use std::cell::Cell;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Fails the test with a clear message unless it runs as root with the tools it needs.
pub fn require_root() {
    let uid = Command::new("id").arg("-u").output().expect("running id");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "network namespace tests need root (ip netns, nftables, tc): run them as root, as \
         tests/run.sh and CI do"
    );
    super::require("ip", "iproute2");
    super::require("nft", "nftables");
    super::require("tc", "iproute2");
}

/// The publisher's, the router's and the ingest's namespaces, and the links between them.
pub struct Net {
    /// The publisher's namespace.
    pub pub_ns: String,
    /// The router's namespace, between the two.
    pub router_ns: String,
    /// The ingest's namespace.
    pub ingest_ns: String,
    prefix: String,
    /// Links from the publisher to the router made so far (a cell: a path changes while a
    /// silence or a rate limit, which borrow the network, may be in place).
    links: Cell<u32>,
}

/// Runs `ip`/`nft`/`tc` arguments; panics with the tool's message if it fails.
fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The ingest's address, the same whichever link carries it.
const INGEST: Ipv4Addr = Ipv4Addr::new(10, 231, 9, 1);

/// The /30 between the router (`.1`) and the ingest (`.2`).
const ROUTER_INGEST: (&str, &str) = ("10.231.100.1", "10.231.100.2");

/// The /30 of the publisher's link `n` to the router: (publisher's end, router's end).
fn link_addrs(n: u32) -> (String, String) {
    (format!("10.231.{n}.1"), format!("10.231.{n}.2"))
}

const NFT_SILENCE: &str = "table inet silence {
    chain i { type filter hook input priority 0; policy drop; iif lo accept; }
    chain o { type filter hook output priority 0; policy drop; oif lo accept; }
}";

/// A veth pair between two namespaces: each end (namespace, device, address) gets its /30
/// address and goes up.
fn veth(a: (&str, &str, &str), b: (&str, &str, &str)) {
    run(&[
        "ip", "link", "add", a.1, "type", "veth", "peer", "name", b.1,
    ]);
    for (ns, dev, ip) in [a, b] {
        run(&["ip", "link", "set", dev, "netns", ns]);
        run(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{ip}/30"),
            "dev",
            dev,
        ]);
        run(&["ip", "-n", ns, "link", "set", dev, "up"]);
    }
}

impl Net {
    /// Makes the namespaces, the router's link to the ingest and the publisher's first link.
    pub fn new() -> Self {
        require_root();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Interface names are at most 15 bytes: "og" + pid + net + "a1".
        let prefix = format!("og{}n{n}", std::process::id() % 1_000_000);
        let net = Self {
            pub_ns: format!("{prefix}pub"),
            router_ns: format!("{prefix}rtr"),
            ingest_ns: format!("{prefix}ing"),
            prefix,
            links: Cell::new(0),
        };
        for ns in [&net.pub_ns, &net.router_ns, &net.ingest_ns] {
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let router = net.router_ns.as_str();
        run(&[
            "ip",
            "netns",
            "exec",
            router,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        let (router_dev, ingest_dev) = net.ingest_link();
        veth(
            (router, &router_dev, ROUTER_INGEST.0),
            (&net.ingest_ns, &ingest_dev, ROUTER_INGEST.1),
        );
        let ingest = format!("{INGEST}/32");
        let ingest_ns = net.ingest_ns.as_str();
        run(&["ip", "-n", ingest_ns, "addr", "add", &ingest, "dev", "lo"]);
        run(&[
            "ip",
            "-n",
            ingest_ns,
            "route",
            "add",
            "default",
            "via",
            ROUTER_INGEST.0,
        ]);
        run(&[
            "ip",
            "-n",
            router,
            "route",
            "add",
            &ingest,
            "via",
            ROUTER_INGEST.1,
        ]);
        net.add_link();
        net
    }

    /// The ingest's address, reachable from the publisher's namespace.
    pub fn ingest_addr(&self) -> Ipv4Addr {
        INGEST
    }

    /// The router's and the ingest's ends of the link between them.
    fn ingest_link(&self) -> (String, String) {
        (format!("{}ri", self.prefix), format!("{}bi", self.prefix))
    }

    /// The publisher's and the router's ends of the publisher's link `n`.
    fn link_names(&self, n: u32) -> (String, String) {
        (
            format!("{}a{n}", self.prefix),
            format!("{}r{n}", self.prefix),
        )
    }

    /// Adds the publisher's next link to the router and routes the ingest's address over
    /// it (behind any older link's route, which goes first while it exists).
    fn add_link(&self) {
        let n = self.links.get();
        self.links.set(n + 1);
        let (a, r) = self.link_names(n);
        let (a_ip, r_ip) = link_addrs(n);
        veth((&self.pub_ns, &a, &a_ip), (&self.router_ns, &r, &r_ip));
        let metric = (100 + n).to_string();
        let ingest = format!("{INGEST}/32");
        run(&[
            "ip",
            "-n",
            &self.pub_ns,
            "route",
            "add",
            &ingest,
            "via",
            &r_ip,
            "metric",
            &metric,
        ]);
    }

    /// A command that runs `program` in `ns`.
    pub fn command(&self, ns: &str, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns, program]);
        command
    }

    /// Runs `f` on a thread inside the ingest's namespace and returns what it returns:
    /// sockets `f` creates (an in-process ingest's listener, bound there) stay in that
    /// namespace, whichever thread uses them later.
    pub fn in_ingest_ns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.ingest_ns);
        let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
                    use std::os::fd::AsFd;
                    move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
                        .unwrap_or_else(|e| panic!("entering {path}: {e}"));
                    f()
                })
                .join()
                .expect("the thread in the ingest's namespace panicked")
        })
    }

    /// Drops every packet in the ingest's namespace for `duration` (returns when the path is
    /// back).
    pub fn silence(&self, duration: Duration) {
        let _silent = self.silent();
        std::thread::sleep(duration);
    }

    /// Drops every packet in the ingest's namespace until the guard is dropped.
    pub fn silent(&self) -> Silence<'_> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), NFT_SILENCE).unwrap();
        let path = file.path().to_str().unwrap();
        run(&["ip", "netns", "exec", &self.ingest_ns, "nft", "-f", path]);
        Silence { net: self }
    }

    /// Limits the router's link to the ingest to `kbit` (`tbf`, 400 ms of queue) until the
    /// guard drops.
    pub fn slow(&self, kbit: u32) -> Slow<'_> {
        let (dev, _) = self.ingest_link();
        let rate = format!("{kbit}kbit");
        run(&[
            "ip",
            "netns",
            "exec",
            &self.router_ns,
            "tc",
            "qdisc",
            "add",
            "dev",
            &dev,
            "root",
            "tbf",
            "rate",
            &rate,
            "burst",
            "32kbit",
            "latency",
            "400ms",
        ]);
        Slow { net: self, dev }
    }

    /// Moves the path: a second link and route, then the first link deleted, so the old
    /// connection's local address is gone and its packets vanish.
    pub fn change_path(&self) {
        self.add_link();
        let (a, _) = self.link_names(0);
        run(&["ip", "-n", &self.pub_ns, "link", "del", &a]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes its links; nothing of ours is left in the root one.
        for ns in [&self.pub_ns, &self.router_ns, &self.ingest_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// See [`Net::silent`].
pub struct Silence<'a> {
    net: &'a Net,
}

impl Drop for Silence<'_> {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "exec", &self.net.ingest_ns])
            .args(["nft", "delete", "table", "inet", "silence"])
            .status();
    }
}

/// See [`Net::slow`].
pub struct Slow<'a> {
    net: &'a Net,
    dev: String,
}

impl Drop for Slow<'_> {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "exec", &self.net.router_ns])
            .args(["tc", "qdisc", "del", "dev", &self.dev, "root"])
            .status();
    }
}

/// Waits for `condition` with a deadline; panics naming `what` did not happen.
pub fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !condition() {
        assert!(
            Instant::now() < end,
            "{what} did not happen within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
