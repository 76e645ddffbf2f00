//! Connections for the ADS server, admitted under limits so that no client
//! can exhaust the server.
//!
//! In: a TCP listener, the limits, and for mutual TLS the acceptor. Out: a
//! stream of connections for tonic. The accept loop only accepts: it never
//! waits on a client. A connection beyond `max_connections` is closed at
//! once; every other one gets its own task, which waits for one of
//! `max_handshakes` handshake turns and then completes the TLS handshake,
//! each within `handshake_timeout`: a client that never finishes its
//! handshake holds one turn for that long, and while turns are free it
//! delays no one. Accept errors back off (`crate::accept`). A connection
//! then has `handshake_timeout` again to send its first bytes (the HTTP/2
//! preface), which hyper does not bound.
//! Each connection holds its slot until it closes; the counts are in the
//! `portico_xds_connections`, `_handshakes` and `_refused` metrics.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use super::hub::Hub;
use super::metrics::Refusal;
use super::server::Limits;
use crate::accept::{AcceptBackoff, Refusals};

/// Admitted connections, as tonic takes them.
pub type Incoming<IO> = ReceiverStream<Result<Admitted<IO>, io::Error>>;

/// Plain TCP connections (standalone, tests): no handshake, the other limits.
pub fn plain(listener: TcpListener, limits: &Limits, hub: Arc<Hub>) -> Incoming<TcpStream> {
    admit(listener, limits, hub, |tcp| std::future::ready(Ok(tcp)))
}

/// Connections that completed a mutual TLS handshake with `acceptor`.
pub fn tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: &Limits,
    hub: Arc<Hub>,
) -> Incoming<TlsStream<TcpStream>> {
    admit(listener, limits, hub, move |tcp| acceptor.accept(tcp))
}

/// One open connection's place under `max_connections`, counted in the
/// connections gauge until dropped.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, open: Gauge) -> Self {
        open.inc();
        Self {
            _permit: permit,
            open,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

fn admit<IO, H, Fut>(
    listener: TcpListener,
    limits: &Limits,
    hub: Arc<Hub>,
    handshake: H,
) -> Incoming<IO>
where
    IO: Send + 'static,
    H: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<IO>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let max_connections = limits.max_connections.min(Semaphore::MAX_PERMITS);
    let timeout = limits.handshake_timeout;
    let slots = Arc::new(Semaphore::new(max_connections));
    let turns = Arc::new(Semaphore::new(
        limits.max_handshakes.min(Semaphore::MAX_PERMITS),
    ));
    let handshake = Arc::new(handshake);
    tokio::spawn(async move {
        let mut backoff = AcceptBackoff::new("xDS");
        let mut refusals = Refusals::new("xDS", "--xds-max-connections");
        loop {
            let (tcp, peer) = tokio::select! {
                // tonic stopped taking connections: close the listener.
                _ = tx.closed() => return,
                accepted = backoff.accept(|| listener.accept()) => accepted,
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                hub.metrics.refused(Refusal::ConnectionLimit);
                refusals.refused(max_connections);
                continue;
            };
            let slot = Slot::new(permit, hub.metrics.connections.clone());
            // ADS is small messages both ways: no Nagle delay.
            let _ = tcp.set_nodelay(true);
            let turns = Arc::clone(&turns);
            let handshake = Arc::clone(&handshake);
            let hub = Arc::clone(&hub);
            let sender = tx.clone();
            tokio::spawn(async move {
                // A turn, then the handshake, each within the timeout: a
                // client queued behind stalled ones still gets its full
                // handshake time.
                let shaken = async {
                    let turn = tokio::time::timeout(timeout, turns.acquire()).await;
                    // The semaphore is never closed.
                    let Ok(Ok(_turn)) = turn else { return None };
                    let _in_progress = InProgress::new(hub.metrics.handshakes.clone());
                    tokio::time::timeout(timeout, handshake(tcp)).await.ok()
                }
                .await;
                match shaken {
                    Some(Ok(io)) => {
                        let _ = sender.send(Ok(Admitted::new(io, slot, timeout))).await;
                    }
                    Some(Err(e)) => {
                        hub.metrics.refused(Refusal::HandshakeFailed);
                        tracing::info!(%peer, error = %e, "xDS TLS handshake refused");
                    }
                    None => {
                        hub.metrics.refused(Refusal::HandshakeTimeout);
                        tracing::info!(%peer, "xDS TLS handshake timed out");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// A handshake in progress, counted in the handshakes gauge until dropped.
struct InProgress(Gauge);

impl InProgress {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// An admitted connection: holds its slot until closed, and fails its reads
/// if the client sends nothing before its first-bytes deadline.
pub struct Admitted<IO> {
    io: IO,
    /// Until the first bytes arrive.
    first_bytes: Option<Pin<Box<Sleep>>>,
    _slot: Slot,
}

impl<IO> Admitted<IO> {
    fn new(io: IO, slot: Slot, first_bytes_within: Duration) -> Self {
        Self {
            io,
            first_bytes: Some(Box::pin(tokio::time::sleep(first_bytes_within))),
            _slot: slot,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Admitted<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.first_bytes = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = this
                    .first_bytes
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if !expired {
                    return Poll::Pending;
                }
                this.first_bytes = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no HTTP/2 preface within the handshake timeout",
                )))
            }
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Admitted<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// tonic reads the peer address and, over TLS, the client certificate from
/// the wrapped connection.
impl<IO: Connected> Connected for Admitted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
