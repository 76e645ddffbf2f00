//! How the Kubernetes source waits after a failed call to the API server (a
//! discovery, a GET of a referenced object): half a second first, doubling
//! with each failure in a row, never more than half a minute, so a broken
//! API server is not hammered and a healed one is noticed soon.

use std::time::Duration;

/// The wait after a first failure.
pub const FIRST: Duration = Duration::from_millis(500);
/// The longest wait between failures in a row.
pub const MAX: Duration = Duration::from_secs(30);

/// The wait after the failure that follows one waited for `wait`.
pub fn after(wait: Duration) -> Duration {
    (wait * 2).min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_first_up_to_max() {
        let waits: Vec<Duration> = std::iter::successors(Some(FIRST), |w| Some(after(*w)))
            .take(10)
            .collect();
        let secs: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(
            secs,
            [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
        );
    }
}
