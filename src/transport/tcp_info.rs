//! What the operating system's TCP knows about a connection's delivery, and a pure reading of
//! it: is the path alive, congested (acknowledging, slower than the stream) or silent
//! (holding unacknowledged data with no acknowledgement for several round trips)?
//!
//! RTMP's own Acknowledgement comes every few megabytes, or never (some servers do not send
//! it at all); TCP acknowledges every few packets. So TCP's counters tell a dead path from a
//! slow one within a few round trips, and tell how much of the stream the server's machine
//! received when the server sends no RTMP acknowledgements.
//!
//! Where the numbers come from:
//! - Linux: `getsockopt(TCP_INFO)` (`tcpi_last_ack_recv`, `tcpi_rtt`, `tcpi_backoff`,
//!   `tcpi_bytes_acked`, `tcpi_notsent_bytes`, `tcpi_unacked`) and `ioctl(SIOCOUTQ)` (bytes
//!   written and not yet acknowledged).
//! - macOS: `getsockopt(TCP_CONNECTION_INFO)` (`tcpi_srtt`, `tcpi_snd_sbbytes`,
//!   `tcpi_txbytes`, `tcpi_txretransmitbytes`); no time of the last acknowledgement, which
//!   [`PathWatch`] then infers from the acknowledged byte count moving.
//! - Windows: `WSAIoctl(SIO_TCP_INFO)` version 0 (`RttUs`, `BytesInFlight`, `BytesOut`,
//!   `BytesRetrans`, `TimeoutEpisodes`); likewise no time of the last acknowledgement, and no
//!   count of unsent bytes.

use std::time::{Duration, Instant};

/// One reading of a connection's TCP state. Fields a platform does not report are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Smoothed round-trip time.
    pub rtt: Option<Duration>,
    /// Time since the last acknowledgement arrived (Linux).
    pub since_last_ack: Option<Duration>,
    /// Bytes the peer acknowledged since the connection opened (Linux exactly; Windows and
    /// macOS: sent bytes no longer in flight or queued, good for seeing progress).
    pub bytes_acked: Option<u64>,
    /// Bytes written to the socket and not yet acknowledged, sent or not (Linux
    /// `SIOCOUTQ`, macOS `tcpi_snd_sbbytes`): what the server's machine has not received
    /// of everything written.
    pub unacked_bytes: Option<u64>,
    /// Of those, bytes not sent yet: the path is slower than the writer (Linux).
    pub unsent_bytes: Option<u64>,
    /// Bytes sent and not acknowledged (in flight on the path).
    pub in_flight_bytes: Option<u64>,
    /// Retransmission timeouts in a row without an acknowledgement (Linux `tcpi_backoff`):
    /// each doubles the wait before TCP tries again.
    pub backoff: Option<u8>,
    /// Retransmission timeouts over the connection's life (Windows `TimeoutEpisodes`).
    pub timeouts: Option<u32>,
}

impl DeliveryStats {
    /// Whether data is on the path waiting for an acknowledgement (`None`: unknown).
    fn awaiting_ack(&self) -> Option<bool> {
        self.in_flight_bytes
            .or(self.unacked_bytes)
            .map(|bytes| bytes > 0)
    }
}

/// How a path behaves, read from successive [`DeliveryStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    /// Nothing waits for an acknowledgement: nothing to judge.
    Idle,
    /// Acknowledgements arrive and nothing waits behind the send window.
    Alive,
    /// Acknowledgements arrive, and data waits to be sent: the path is slower than the
    /// stream. Dropping frames helps here.
    Congested,
    /// Data waits for an acknowledgement that has not come for `quiet`, longer than
    /// [`SilenceRule`] allows: the path delivers nothing. Dropping frames does not help
    /// (whatever was not delivered will be resent on the next connection).
    Silent {
        /// Time since the last acknowledgement (or since acknowledged bytes last moved).
        quiet: Duration,
    },
}

/// When a quiet path counts as silent: no acknowledgement for `rtts` round trips, and never
/// sooner than `floor` (a single lost packet costs one retransmission timeout, at least 200
/// ms on Linux, before its acknowledgement can come).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilenceRule {
    /// Round trips without an acknowledgement.
    pub rtts: u32,
    /// Shortest quiet time that counts.
    pub floor: Duration,
}

impl Default for SilenceRule {
    fn default() -> Self {
        Self {
            rtts: 4,
            floor: Duration::from_millis(500),
        }
    }
}

impl SilenceRule {
    /// How long a path may go without acknowledgement at this round-trip time.
    pub fn threshold(&self, rtt: Option<Duration>) -> Duration {
        rtt.map_or(self.floor, |rtt| (rtt * self.rtts).max(self.floor))
    }
}

/// Reads successive [`DeliveryStats`] of one connection into a [`PathState`]. Pure: time is
/// an argument.
#[derive(Debug, Clone)]
pub struct PathWatch {
    rule: SilenceRule,
    /// When an acknowledgement was last seen (or the watch started).
    last_ack: Option<Instant>,
    /// Acknowledged bytes at the last reading, to see progress where the platform does not
    /// give the time of the last acknowledgement.
    acked: Option<u64>,
    /// Latest time nothing was known to wait for an acknowledgement: a connection idle for
    /// a minute has not been acknowledged for a minute, and is not silent for it.
    idle_at: Option<Instant>,
}

impl PathWatch {
    /// A watch that knows nothing yet.
    pub fn new(rule: SilenceRule) -> Self {
        Self {
            rule,
            last_ack: None,
            acked: None,
            idle_at: None,
        }
    }

    /// A watch of a connection that has had nothing outstanding until `now` (it is new, or
    /// was kept idle), whatever its last acknowledgement's age.
    pub fn starting(now: Instant, rule: SilenceRule) -> Self {
        Self {
            idle_at: Some(now),
            ..Self::new(rule)
        }
    }

    /// Takes a reading made at `now`; returns the path's state.
    pub fn observe(&mut self, now: Instant, stats: &DeliveryStats) -> PathState {
        let progressed = match (self.acked, stats.bytes_acked) {
            (Some(before), Some(after)) => after > before,
            _ => false,
        };
        self.acked = stats.bytes_acked.or(self.acked);
        let last_ack = match stats.since_last_ack {
            Some(since) => now.checked_sub(since).unwrap_or(now),
            None if progressed || self.last_ack.is_none() => now,
            None => self.last_ack.unwrap_or(now),
        };
        self.last_ack = Some(self.last_ack.map_or(last_ack, |seen| seen.max(last_ack)));
        if stats.awaiting_ack() != Some(true) {
            self.idle_at = Some(now);
            return PathState::Idle;
        }
        let since = self.last_ack.max(self.idle_at).unwrap_or(now);
        let quiet = now.saturating_duration_since(since);
        if quiet > self.rule.threshold(stats.rtt) {
            return PathState::Silent { quiet };
        }
        if stats.unsent_bytes.is_some_and(|unsent| unsent > 0) {
            PathState::Congested
        } else {
            PathState::Alive
        }
    }
}

/// Reads `socket`'s delivery statistics (Linux, macOS, Windows; elsewhere an
/// `Unsupported` error).
pub fn delivery_stats(socket: &socket2::Socket) -> std::io::Result<DeliveryStats> {
    sys::read(socket)
}

/// The system calls: the one place in the transport that needs `unsafe`, because neither
/// socket2 nor std reads these structures.
#[allow(unsafe_code)]
mod sys {
    use std::io;

    use super::DeliveryStats;

    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) fn read(socket: &socket2::Socket) -> io::Result<DeliveryStats> {
        use std::os::fd::AsRawFd;
        use std::time::Duration;

        let fd = socket.as_raw_fd();
        // SAFETY: tcp_info is plain old data, so all zeroes is a valid value.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: `fd` is an open socket for the borrow's duration; `info` and `len` are
        // valid for writes, and `len` holds the buffer's size so the kernel writes no more.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&raw mut info).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut queued: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int through the pointer.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &raw mut queued) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // Kernels older than 4.6 return a shorter structure: trust only what they wrote.
        let has = |end: usize| len as usize >= end;
        let notsent_end = std::mem::offset_of!(libc::tcp_info, tcpi_notsent_bytes) + 4;
        let acked_end = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked) + 8;
        let unacked = u64::try_from(queued).unwrap_or(0);
        let unsent = has(notsent_end).then_some(u64::from(info.tcpi_notsent_bytes));
        Ok(DeliveryStats {
            rtt: (info.tcpi_rtt > 0).then(|| Duration::from_micros(info.tcpi_rtt.into())),
            since_last_ack: Some(Duration::from_millis(info.tcpi_last_ack_recv.into())),
            bytes_acked: has(acked_end).then_some(info.tcpi_bytes_acked),
            unacked_bytes: Some(unacked),
            unsent_bytes: unsent,
            in_flight_bytes: Some(unacked.saturating_sub(unsent.unwrap_or(0))),
            backoff: Some(info.tcpi_backoff),
            timeouts: None,
        })
    }

    #[cfg(target_vendor = "apple")]
    pub(super) fn read(socket: &socket2::Socket) -> io::Result<DeliveryStats> {
        use std::os::fd::AsRawFd;
        use std::time::Duration;

        // SAFETY: tcp_connection_info is plain old data, so all zeroes is a valid value.
        let mut info: libc::tcp_connection_info = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::tcp_connection_info>() as libc::socklen_t;
        // SAFETY: the fd is an open socket for the borrow's duration; `info` and `len` are
        // valid for writes, and `len` holds the buffer's size.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_CONNECTION_INFO,
                (&raw mut info).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let queued = u64::from(info.tcpi_snd_sbbytes);
        let sent = info
            .tcpi_txbytes
            .saturating_sub(info.tcpi_txretransmitbytes);
        Ok(DeliveryStats {
            rtt: (info.tcpi_srtt > 0).then(|| Duration::from_millis(info.tcpi_srtt.into())),
            since_last_ack: None,
            bytes_acked: Some(sent.saturating_sub(queued)),
            unacked_bytes: Some(queued),
            unsent_bytes: None,
            in_flight_bytes: None,
            backoff: None,
            timeouts: None,
        })
    }

    #[cfg(windows)]
    pub(super) fn read(socket: &socket2::Socket) -> io::Result<DeliveryStats> {
        use std::os::windows::io::AsRawSocket;
        use std::time::Duration;

        use windows_sys::Win32::Networking::WinSock::{
            TCP_INFO_v0, WSAGetLastError, WSAIoctl, SIO_TCP_INFO, SOCKET,
        };

        let version: u32 = 0;
        // SAFETY: TCP_INFO_v0 is plain old data, so all zeroes is a valid value.
        let mut info: TCP_INFO_v0 = unsafe { std::mem::zeroed() };
        let mut returned: u32 = 0;
        // SAFETY: the socket is open for the borrow's duration; the input buffer is the
        // version number, the output buffer is a TCP_INFO_v0 of the size passed; no
        // overlapped operation, so the call completes before returning.
        let rc = unsafe {
            WSAIoctl(
                socket.as_raw_socket() as SOCKET,
                SIO_TCP_INFO,
                (&raw const version).cast(),
                size_of::<u32>() as u32,
                (&raw mut info).cast(),
                size_of::<TCP_INFO_v0>() as u32,
                &mut returned,
                std::ptr::null_mut(),
                None,
            )
        };
        if rc != 0 {
            // SAFETY: no preconditions.
            return Err(io::Error::from_raw_os_error(unsafe { WSAGetLastError() }));
        }
        let in_flight = u64::from(info.BytesInFlight);
        let sent = info.BytesOut.saturating_sub(info.BytesRetrans.into());
        Ok(DeliveryStats {
            rtt: (info.RttUs > 0).then(|| Duration::from_micros(info.RttUs.into())),
            since_last_ack: None,
            bytes_acked: Some(sent.saturating_sub(in_flight)),
            unacked_bytes: None,
            unsent_bytes: None,
            in_flight_bytes: Some(in_flight),
            backoff: None,
            timeouts: Some(info.TimeoutEpisodes),
        })
    }

    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_vendor = "apple",
        windows
    )))]
    pub(super) fn read(_: &socket2::Socket) -> io::Result<DeliveryStats> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A Linux-like reading: `unacked` bytes on the path, the last ack `since` ago.
    fn linux(unacked: u64, unsent: u64, since: u64, rtt: u64) -> DeliveryStats {
        DeliveryStats {
            rtt: Some(ms(rtt)),
            since_last_ack: Some(ms(since)),
            bytes_acked: Some(1000),
            unacked_bytes: Some(unacked + unsent),
            unsent_bytes: Some(unsent),
            in_flight_bytes: Some(unacked),
            backoff: Some(0),
            timeouts: None,
        }
    }

    #[test]
    fn nothing_outstanding_is_idle_however_long_the_quiet() {
        let mut watch = PathWatch::new(SilenceRule::default());
        let now = Instant::now();
        assert_eq!(
            watch.observe(now, &linux(0, 0, 60_000, 20)),
            PathState::Idle
        );
    }

    #[test]
    fn acknowledging_path_is_alive_and_with_unsent_data_congested() {
        let mut watch = PathWatch::new(SilenceRule::default());
        let now = Instant::now();
        assert_eq!(
            watch.observe(now, &linux(50_000, 0, 10, 20)),
            PathState::Alive
        );
        assert_eq!(
            watch.observe(now + ms(100), &linux(50_000, 90_000, 30, 20)),
            PathState::Congested
        );
    }

    #[test]
    fn silence_is_a_few_rtts_with_a_floor() {
        let rule = SilenceRule::default();
        assert_eq!(rule.threshold(Some(ms(20))), ms(500), "the floor");
        assert_eq!(rule.threshold(Some(ms(300))), ms(1200), "4 round trips");
        assert_eq!(rule.threshold(None), ms(500));
        let mut watch = PathWatch::new(rule);
        let now = Instant::now();
        assert_eq!(
            watch.observe(now, &linux(8000, 0, 499, 20)),
            PathState::Alive
        );
        assert_eq!(
            watch.observe(now + ms(2), &linux(8000, 0, 501, 20)),
            PathState::Silent { quiet: ms(501) }
        );
        // A slow path with a long round trip is not silent at the floor.
        let mut watch = PathWatch::new(rule);
        assert_eq!(
            watch.observe(now, &linux(8000, 0, 900, 300)),
            PathState::Alive
        );
    }

    #[test]
    fn a_silent_path_with_a_backlog_is_silent_not_congested() {
        let mut watch = PathWatch::new(SilenceRule::default());
        let now = Instant::now();
        assert_eq!(
            watch.observe(now, &linux(60_000, 128_000, 3000, 20)),
            PathState::Silent { quiet: ms(3000) }
        );
    }

    /// A connection that sat idle has an old last acknowledgement; the quiet counts from
    /// when data began to wait, not from then.
    #[test]
    fn quiet_counts_from_the_end_of_idleness() {
        let now = Instant::now();
        let mut watch = PathWatch::new(SilenceRule::default());
        assert_eq!(
            watch.observe(now, &linux(0, 0, 60_000, 20)),
            PathState::Idle
        );
        assert_eq!(
            watch.observe(now + ms(100), &linux(8000, 0, 60_100, 20)),
            PathState::Alive
        );
        assert_eq!(
            watch.observe(now + ms(700), &linux(8000, 0, 60_700, 20)),
            PathState::Silent { quiet: ms(700) }
        );
        let mut kept_idle = PathWatch::starting(now, SilenceRule::default());
        assert_eq!(
            kept_idle.observe(now + ms(100), &linux(8000, 0, 60_000, 20)),
            PathState::Alive
        );
    }

    /// Windows and macOS give no time of the last acknowledgement: the watch times the
    /// acknowledged byte count instead.
    #[test]
    fn without_ack_times_progress_of_acknowledged_bytes_counts() {
        let reading = |acked: u64| DeliveryStats {
            rtt: Some(ms(20)),
            bytes_acked: Some(acked),
            in_flight_bytes: Some(4000),
            ..DeliveryStats::default()
        };
        let mut watch = PathWatch::new(SilenceRule::default());
        let start = Instant::now();
        assert_eq!(watch.observe(start, &reading(100)), PathState::Alive);
        assert_eq!(
            watch.observe(start + ms(400), &reading(100)),
            PathState::Alive
        );
        assert_eq!(
            watch.observe(start + ms(600), &reading(100)),
            PathState::Silent { quiet: ms(600) }
        );
        assert_eq!(
            watch.observe(start + ms(700), &reading(5000)),
            PathState::Alive
        );
        assert_eq!(
            watch.observe(start + ms(1300), &reading(5000)),
            PathState::Silent { quiet: ms(600) }
        );
    }

    #[test]
    fn unknown_outstanding_data_is_idle() {
        let mut watch = PathWatch::new(SilenceRule::default());
        assert_eq!(
            watch.observe(Instant::now(), &DeliveryStats::default()),
            PathState::Idle
        );
    }

    /// A real loopback connection: the kernel's numbers arrive and make sense.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn reads_a_real_connection() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(&[7; 10_000]).unwrap();
        let mut got = vec![0; 10_000];
        server.read_exact(&mut got).unwrap();
        let socket = socket2::SockRef::from(&client).try_clone().unwrap();
        // The server's kernel acknowledges what its application read: wait for it.
        let deadline = Instant::now() + Duration::from_secs(5);
        let stats = loop {
            let stats = delivery_stats(&socket).unwrap();
            if stats.unacked_bytes == Some(0) {
                break stats;
            }
            assert!(
                Instant::now() < deadline,
                "10 kB never acknowledged: {stats:?}"
            );
            std::thread::yield_now();
        };
        assert!(stats.bytes_acked.unwrap() >= 10_000, "{stats:?}");
        assert_eq!(stats.unsent_bytes, Some(0));
        assert!(stats.rtt.is_some());
    }
}
