//! The admin endpoint: `/healthz`, `/readyz` and `/metrics` over plain
//! HTTP/1.1 on a loopback (or pod) address. Small on purpose: one request
//! per connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::xds::hub::Hub;

/// Serves until the task is dropped. `/readyz` answers 200 once `ready` is set.
pub async fn serve(listener: TcpListener, hub: Arc<Hub>, ready: Arc<AtomicBool>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let hub = Arc::clone(&hub);
        let ready = ready.load(Ordering::Relaxed);
        tokio::spawn(async move {
            let _ = answer(stream, &hub, ready).await;
        });
    }
}

async fn answer(mut stream: TcpStream, hub: &Hub, ready: bool) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, content_type, body) = match path {
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
        "/readyz" if ready => ("200 OK", "text/plain", "ready\n".to_string()),
        "/readyz" => (
            "503 Service Unavailable",
            "text/plain",
            "not ready: waiting for the first sync and the xDS listener\n".to_string(),
        ),
        "/metrics" => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            hub.metrics.encode(),
        ),
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}
