//! The admin endpoint: `/healthz`, `/readyz` and `/metrics` over plain
//! HTTP/1.1 on a loopback (or pod) address. Small on purpose: one request
//! per connection.
//!
//! Bounded, so that no client (a slow one, a broken one, a flood) can take it
//! away from the kubelet's probes and the metrics scraper: at most
//! `max_connections` connections at once (more are closed at once); the
//! request head must arrive within `header_timeout` and fit in 16 KiB (a
//! larger one gets 431); the answer must be taken within `write_timeout`;
//! accept errors back off (`accept`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::accept::{AcceptBackoff, Refusals};
use crate::metrics::Metrics;

/// Connections served at once; more are closed as they arrive. Probes and
/// scrapes take a few; the rest is room for bursts.
pub const MAX_CONNECTIONS: usize = 64;
/// The time a client has to send its whole request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The time a client has to take the whole answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head read; a longer one is answered 431.
pub const MAX_HEAD: usize = 16 * 1024;

/// How long the rest of a too large head is read after the 431.
const LINGER: Duration = Duration::from_secs(1);

/// The admin server's limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            header_timeout: HEADER_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
        }
    }
}

/// Serves with the default limits until the task is dropped. `/readyz`
/// answers 200 once `ready` is set.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, ready: Arc<AtomicBool>) {
    serve_with(listener, metrics, ready, Limits::default()).await
}

/// Serves with `limits` until the task is dropped.
pub async fn serve_with(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    limits: Limits,
) {
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let mut backoff = AcceptBackoff::new("admin");
    let mut refusals = Refusals::new("admin", "admin connections");
    loop {
        let (stream, _) = backoff.accept(|| listener.accept()).await;
        // Dropping the stream closes it: the client learns at once.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refusals.refused(limits.max_connections);
            continue;
        };
        let metrics = Arc::clone(&metrics);
        let ready = Arc::clone(&ready);
        tokio::spawn(async move {
            let _slot = slot;
            let _ = answer(stream, &metrics, &ready, &limits).await;
        });
    }
}

/// What came before the blank line that ends a request head.
enum Head {
    Complete(Vec<u8>),
    TooLarge,
    /// The client closed the connection first.
    Closed,
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Head> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        // Only the new bytes (and the three before them) can complete the
        // terminator: a client sending a byte at a time costs linear work.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(from + end);
            return Ok(Head::Complete(head));
        }
        if head.len() >= MAX_HEAD {
            return Ok(Head::TooLarge);
        }
    }
}

async fn answer(
    mut stream: TcpStream,
    metrics: &Metrics,
    ready: &AtomicBool,
    limits: &Limits,
) -> std::io::Result<()> {
    // A client that does not finish its head in time is dropped.
    let Ok(head) = tokio::time::timeout(limits.header_timeout, read_head(&mut stream)).await else {
        return Ok(());
    };
    let head = head?;
    let too_large = matches!(head, Head::TooLarge);
    let (status, content_type, body) = match head {
        Head::Closed => return Ok(()),
        Head::TooLarge => (
            "431 Request Header Fields Too Large",
            "text/plain",
            "request head too large\n".to_string(),
        ),
        Head::Complete(head) => {
            let line = String::from_utf8_lossy(&head);
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            match path {
                "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
                "/readyz" if ready.load(Ordering::Relaxed) => {
                    ("200 OK", "text/plain", "ready\n".to_string())
                }
                "/readyz" => (
                    "503 Service Unavailable",
                    "text/plain",
                    "not ready: waiting for the first sync and the xDS listener\n".to_string(),
                ),
                "/metrics" => (
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    metrics.encode(),
                ),
                _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
            }
        }
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // A client that does not take the answer in time is dropped.
    let write = async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(limits.write_timeout, write)
        .await
        .unwrap_or(Ok(()))?;
    if too_large {
        // The client may still be sending its head. Closing with unread
        // bytes would reset the connection and could destroy the 431 before
        // the client reads it: take (a bounded amount of) the rest first.
        let mut sink = [0u8; 1024];
        let drain = async {
            let mut left: usize = 64 * 1024;
            while left > 0 {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
    Ok(())
}
