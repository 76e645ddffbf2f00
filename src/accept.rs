//! Accepting connections for portico's servers (admin and xDS) so that no
//! failure and no client turns an accept loop into a busy loop or a log flood.
//!
//! In: a listener's `accept`. Out: the next connection. An error that
//! concerns one connection (reset or aborted before it was taken) is skipped
//! at once; any other error (no file descriptors, memory or buffers left) is
//! logged and retried after a pause that doubles from 5 ms up to 1 s and
//! starts over after the next success, so a process out of descriptors does
//! not spin on a listener it cannot serve. `Refusals` reports connections a
//! server turned away for a limit as one warning per 10 s with a count.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

/// The first pause after an accept error.
pub const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause between accept attempts while errors go on.
pub const MAX_PAUSE: Duration = Duration::from_secs(1);

/// The back-off state of one accept loop.
#[derive(Debug)]
pub struct AcceptBackoff {
    /// The server, for logs.
    server: &'static str,
    pause: Duration,
}

impl AcceptBackoff {
    pub fn new(server: &'static str) -> Self {
        Self {
            server,
            pause: FIRST_PAUSE,
        }
    }

    /// The next connection from `accept`, pausing after errors as described
    /// above. Cancel-safe when `accept` is (a dropped call loses no
    /// connection that was not yet returned).
    pub async fn accept<T, F, Fut>(&mut self, mut accept: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = io::Result<T>>,
    {
        loop {
            match accept().await {
                Ok(connection) => {
                    self.pause = FIRST_PAUSE;
                    return connection;
                }
                Err(e) if concerns_one_connection(&e) => continue,
                Err(e) => {
                    tracing::warn!(server = self.server, error = %e, pause = ?self.pause, "accept failed; pausing");
                    tokio::time::sleep(self.pause).await;
                    self.pause = (self.pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }
}

/// Errors about the connection being accepted, not about the listener or
/// the process.
fn concerns_one_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// How often a server says that it turns connections away.
const REFUSAL_REPORT: Duration = Duration::from_secs(10);

/// Connections (or streams) a server refused for one limit, reported at most
/// once per 10 s.
#[derive(Debug)]
pub struct Refusals {
    server: &'static str,
    limit: &'static str,
    /// Refused since the last report.
    count: u64,
    reported: Option<Instant>,
}

impl Refusals {
    /// `limit` names the setting that refuses, for the operator.
    pub fn new(server: &'static str, limit: &'static str) -> Self {
        Self {
            server,
            limit,
            count: 0,
            reported: None,
        }
    }

    /// Counts one refusal; logs the count when the last report is old enough.
    pub fn refused(&mut self, capacity: usize) {
        self.count += 1;
        let now = Instant::now();
        if self
            .reported
            .is_none_or(|at| now.duration_since(at) >= REFUSAL_REPORT)
        {
            tracing::warn!(
                server = self.server,
                limit = self.limit,
                capacity,
                refused = self.count,
                "refusing connections: the limit is reached"
            );
            self.count = 0;
            self.reported = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// An accept that fails with "too many open files" until `fail` calls
    /// have been made, then succeeds; counts calls. A busy loop would never
    /// let the paused clock move: after 1,000 calls the accept never
    /// completes, so such a loop ends the test with a count, not a hang.
    fn failing(
        fail: usize,
        calls: &Cell<usize>,
    ) -> impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = io::Result<u32>>>> {
        move || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            Box::pin(async move {
                if n > 1000 {
                    std::future::pending::<()>().await;
                }
                if n <= fail {
                    Err(io::Error::from_raw_os_error(24)) // EMFILE
                } else {
                    Ok(7)
                }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_listener_that_keeps_failing_is_retried_with_growing_pauses_not_in_a_busy_loop() {
        let calls = Cell::new(0);
        let mut backoff = AcceptBackoff::new("test");
        let started = tokio::time::Instant::now();
        // Never succeeds within the minute: the loop must sleep between
        // attempts (the paused clock advances only while it sleeps).
        let outcome = tokio::time::timeout(
            Duration::from_secs(60),
            backoff.accept(failing(usize::MAX, &calls)),
        )
        .await;
        assert!(outcome.is_err(), "nothing was accepted");
        // 5 ms doubling to 1 s: 8 pauses reach 1 s (1.275 s in all), then
        // one attempt per second: about 67 attempts in a minute.
        let attempts = calls.get();
        assert!(
            (60..=70).contains(&attempts),
            "{attempts} attempts in a minute of errors"
        );
        assert!(started.elapsed() >= Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_double_up_to_the_cap_and_start_over_after_a_success() {
        let calls = Cell::new(0);
        let mut backoff = AcceptBackoff::new("test");
        let started = tokio::time::Instant::now();
        assert_eq!(backoff.accept(failing(3, &calls)).await, 7);
        // 5 + 10 + 20 ms of pauses before the fourth attempt succeeded.
        assert_eq!(started.elapsed(), Duration::from_millis(35));
        assert_eq!(backoff.pause, FIRST_PAUSE, "a success resets the pause");
        calls.set(0);
        let started = tokio::time::Instant::now();
        assert_eq!(backoff.accept(failing(12, &calls)).await, 7);
        // 5, 10, ..., 640 ms (8 pauses), then four at the 1 s cap.
        assert_eq!(started.elapsed(), Duration::from_millis(1275 + 4000));
    }

    #[tokio::test(start_paused = true)]
    async fn errors_about_one_connection_are_skipped_without_a_pause() {
        let calls = Cell::new(0);
        let mut backoff = AcceptBackoff::new("test");
        let started = tokio::time::Instant::now();
        let accepted = backoff
            .accept(|| {
                calls.set(calls.get() + 1);
                std::future::ready(if calls.get() < 3 {
                    Err(io::Error::from(io::ErrorKind::ConnectionAborted))
                } else {
                    Ok(1)
                })
            })
            .await;
        assert_eq!(accepted, 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
