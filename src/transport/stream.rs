//! One byte stream type for plain TCP and TLS, client or server side, so the drivers above
//! are written once. Vectored writes pass straight through to the socket or TLS layer.

use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::{TlsConnector, TlsStream};

use super::url::{RtmpUrl, Scheme};
use super::LinkError;

/// A connected RTMP byte stream.
#[derive(Debug)]
pub enum Stream {
    /// rtmp://
    Tcp(TcpStream),
    /// rtmps:// (client) or the ingest's TLS listener (server).
    Tls(Box<TlsStream<TcpStream>>),
}

/// Socket options that find a dead peer in seconds rather than the OS's minutes: keepalive
/// probes after 5 s idle, and (Linux) a cap on how long written data may stay unacknowledged.
pub fn tune_socket(tcp: &TcpStream, user_timeout: Duration) {
    let _ = tcp.set_nodelay(true);
    let sock = SockRef::from(tcp);
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(2))
        .with_retries(3);
    if let Err(e) = sock.set_tcp_keepalive(&keepalive) {
        log::debug!("TCP keepalive not set: {e}");
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = sock.set_tcp_user_timeout(Some(user_timeout)) {
        log::debug!("TCP_USER_TIMEOUT not set: {e}");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = user_timeout;
}

/// Which local end connections use: OBS's "Bind to IP" and "IP family" settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalEnd {
    /// The local address to connect from (a network interface's address), if any.
    pub bind: Option<IpAddr>,
    /// Which server addresses to try.
    pub family: IpFamily,
    /// The socket's send buffer size (the OS's default when `None`): a smaller one makes
    /// a slow connection show as unsent media, where congestion control can see it, sooner.
    pub send_buffer: Option<usize>,
}

/// Address families to connect over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpFamily {
    /// IPv4 and IPv6, in the resolver's order.
    #[default]
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

impl IpFamily {
    fn allows(self, addr: &SocketAddr) -> bool {
        match self {
            Self::Any => true,
            Self::V4 => addr.is_ipv4(),
            Self::V6 => addr.is_ipv6(),
        }
    }
}

async fn connect_from(addr: SocketAddr, bind: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(local) = bind else {
        return TcpStream::connect(addr).await;
    };
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(addr).await
}

/// How many bytes not yet sent a publisher's socket may hold (`TCP_NOTSENT_LOWAT`).
///
/// Linux grows a send buffer to megabytes, and on a link slower than the stream that is
/// seconds of media out of the session's sight: congestion control would not see the
/// backlog, and the socket would stay unwritable for longer than the write timeout while
/// TCP still delivers. With this limit the backlog stays in the session; 128 KiB is about
/// 170 ms of a 6 Mb/s stream, well under the 700 ms at which video drops begin, and
/// in-flight data (bounded by the congestion window) is not limited.
#[cfg(any(target_os = "linux", target_os = "android"))]
const UNSENT_LIMIT: u32 = 128 * 1024;

/// Resolves and connects to `url`, trying each address in turn, then runs TLS if rtmps.
pub async fn dial(
    url: &RtmpUrl,
    tls: Option<&Arc<rustls::ClientConfig>>,
    user_timeout: Duration,
    local: LocalEnd,
) -> Result<Stream, LinkError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|source| LinkError::Dns {
            host: url.host.clone(),
            source,
        })?
        .filter(|addr| local.family.allows(addr))
        .filter(|addr| local.bind.is_none_or(|ip| ip.is_ipv4() == addr.is_ipv4()))
        .collect();
    let mut last_error = None;
    let mut tcp = None;
    for addr in &addrs {
        match connect_from(*addr, local.bind).await {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(source) => {
                last_error = Some(LinkError::Connect {
                    addr: *addr,
                    source,
                })
            }
        }
    }
    let tcp = match (tcp, last_error) {
        (Some(tcp), _) => tcp,
        (None, Some(error)) => return Err(error),
        (None, None) => {
            return Err(LinkError::Dns {
                host: url.host.clone(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "no address of the chosen IP family or bind address",
                ),
            })
        }
    };
    tune_socket(&tcp, user_timeout);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = SockRef::from(&tcp).set_tcp_notsent_lowat(UNSENT_LIMIT) {
        log::debug!("TCP_NOTSENT_LOWAT not set: {e}");
    }
    if let Some(size) = local.send_buffer {
        if let Err(e) = SockRef::from(&tcp).set_send_buffer_size(size) {
            log::debug!("send buffer size not set: {e}");
        }
    }
    if url.scheme == Scheme::Rtmp {
        return Ok(Stream::Tcp(tcp));
    }
    let config = tls.ok_or_else(|| LinkError::Tls("no TLS configuration".into()))?;
    let name = ServerName::try_from(url.host.clone())
        .map_err(|e| LinkError::Tls(format!("invalid server name {}: {e}", url.host)))?;
    let stream = TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
        .map_err(|e| LinkError::Tls(e.to_string()))?;
    Ok(Stream::Tls(Box::new(stream.into())))
}

impl Stream {
    /// The TCP connection under any TLS layer.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Tcp(s) => s,
            Self::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
