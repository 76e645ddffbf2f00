//! The admin server (`/healthz`, `/readyz`, `/metrics`) against clients that
//! would exhaust it, on 127.0.0.1: a slowloris client is dropped after the
//! header timeout while `/healthz` keeps answering; a request head above the
//! bound gets 431; connections beyond the cap are closed at once, and
//! `/healthz` answers again as soon as the hogs go away.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use portico::admin::{self, Limits};
use portico::metrics::Metrics;
use portico::xds::hub::Hub;

/// The admin server on a free loopback port, with `limits` or the defaults.
fn start(rt: &tokio::runtime::Runtime, limits: Option<Limits>) -> u16 {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let ready = Arc::new(AtomicBool::new(true));
    let metrics = Arc::new(Metrics::new(&Hub::new().metrics));
    match limits {
        Some(limits) => rt.spawn(admin::serve_with(listener, metrics, ready, limits)),
        None => rt.spawn(admin::serve(listener, metrics, ready)),
    };
    port
}

/// The status code of `GET path`, or `None` when the server closed the
/// connection without answering (or did not answer within 10 s).
fn status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: portico\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Whether the server closed `stream`, waiting up to `within` for it.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Whether `stream` is still open now (nothing to read, no end).
fn open_now(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).expect("non-blocking");
    let mut byte = [0u8; 1];
    let open = matches!(stream.read(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock);
    stream.set_nonblocking(false).expect("blocking");
    open
}

#[test]
fn a_slowloris_client_is_dropped_after_the_header_timeout_while_healthz_answers() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let port = start(&rt, None);
    // Taken before connecting: the server's clock starts later.
    let connected = Instant::now();
    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\n")
        .expect("request line");
    // One header line every 200 ms: always sending, never finishing.
    let mut closed_after = None;
    let mut answered = 0;
    while connected.elapsed() < Duration::from_secs(40) {
        if slow.write_all(b"x-slow: 1\r\n").is_err()
            || closed_within(&mut slow, Duration::from_millis(200))
        {
            closed_after = Some(connected.elapsed());
            break;
        }
        assert_eq!(
            status(port, "/healthz"),
            Some(200),
            "/healthz answers while the slow client is connected"
        );
        answered += 1;
    }
    let closed_after = closed_after.expect("the slow client is dropped within 40 s");
    assert!(
        closed_after >= admin::HEADER_TIMEOUT,
        "dropped after {closed_after:?}, before the header timeout"
    );
    assert!(
        answered > 0,
        "/healthz was asked while the slow client was on"
    );
    assert_eq!(status(port, "/healthz"), Some(200));
}

#[test]
fn a_request_head_above_the_bound_gets_431() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let port = start(&rt, None);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = b"GET /healthz HTTP/1.1\r\nx-big: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', admin::MAX_HEAD + 4096));
    // The server may answer and close before it has read all of it.
    let _ = stream.write_all(&head);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 431 "),
        "a head of {} bytes is answered: {answer:?}",
        head.len()
    );
    assert_eq!(status(port, "/healthz"), Some(200));
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once_and_healthz_answers_when_the_hogs_leave() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    const CAP: usize = 4;
    let port = start(
        &rt,
        Some(Limits {
            max_connections: CAP,
            // Long enough that only the cap can close anything here.
            header_timeout: Duration::from_secs(120),
            write_timeout: Duration::from_secs(10),
        }),
    );
    // Hogs connect and send nothing. The server takes connections in
    // order, so these hold every slot.
    let mut hogs: Vec<TcpStream> = (0..CAP)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    let mut excess: Vec<TcpStream> = (0..CAP)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    for (i, stream) in excess.iter_mut().enumerate() {
        assert!(
            closed_within(stream, Duration::from_secs(10)),
            "connection {} beyond the cap of {CAP} is closed at once",
            i + 1
        );
    }
    for (i, hog) in hogs.iter_mut().enumerate() {
        assert!(open_now(hog), "hog {i} holds its slot");
    }
    // Full: /healthz is refused rather than queued behind the hogs.
    assert_eq!(status(port, "/healthz"), None);
    drop(hogs);
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(port, "/healthz") != Some(200) {
        assert!(
            Instant::now() < deadline,
            "/healthz answers once the hogs are gone"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
