//! Client-side pacing: a sliding-window limiter that never lets more than `max` calls start in
//! any window of `length`, for several windows at once (CIN7: 3 per second and 60 per minute).
//!
//! A sliding log is used rather than a GCRA/token bucket because the promise is about *any*
//! window: a bucket with a burst allowance can let 2 × max through across a window boundary.
//! Time is `tokio::time`, so schedules are testable on a paused clock.

use async_trait::async_trait;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Something that grants permission to make one call, waiting as needed.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Waits until one more call may start, and counts it.
    async fn acquire(&self) -> Result<(), LimitError>;
}

/// Why a limiter refused instead of waiting.
#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct LimitError(pub String);

/// At most `max` calls in any window of `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub length: Duration,
    pub max: u32,
}

impl Window {
    /// A window of `length` allowing `max` calls.
    pub const fn new(max: u32, length: Duration) -> Self {
        Self { length, max }
    }
}

/// CIN7's published limits, 3 per second and 60 per minute, each window widened by a small
/// safety margin.
pub fn cin7_windows() -> Vec<Window> {
    vec![
        Window::new(3, Duration::from_secs(1) + SAFETY_MARGIN),
        Window::new(60, Duration::from_secs(60) + SAFETY_MARGIN),
    ]
}

/// GoSweetSpot's requested ceiling, "under 60 calls a minute and 1,000 an hour" per site: at
/// most 59 and 999, each window widened by the same safety margin.
pub fn gss_windows() -> Vec<Window> {
    vec![
        Window::new(59, Duration::from_secs(60) + SAFETY_MARGIN),
        Window::new(999, Duration::from_secs(3600) + SAFETY_MARGIN),
    ]
}

/// The pull's share of GoSweetSpot's minute: two thirds (39 of 59 calls). The write-back needs
/// one shipments GET for every two publishes of 50 orders, so with this share it keeps pace
/// during a large import instead of waiting for the pull to finish (taking every slot, the
/// pull left it one in five). The pull runs single-flight per integration, so an in-process
/// window is enough; the shared window still bounds both together.
pub fn pull_gss_share() -> Vec<Window> {
    vec![Window::new(39, Duration::from_secs(60) + SAFETY_MARGIN)]
}

/// An in-process sliding-window limiter over one or more windows. Callers are served in the
/// order they asked (the log's lock is tokio's fair mutex, held while waiting), so a caller
/// that asks again at once cannot take every freed slot from one that has waited longer.
#[derive(Debug)]
pub struct WindowLimiter {
    windows: Vec<Window>,
    log: tokio::sync::Mutex<VecDeque<Instant>>,
}

/// Margin added to each real-time window so that network jitter, and scheduling delays between
/// a grant and the request leaving, cannot squeeze an extra call into a server-side window.
const SAFETY_MARGIN: Duration = Duration::from_millis(150);

impl WindowLimiter {
    /// A limiter enforcing every window given.
    pub fn new(windows: Vec<Window>) -> Self {
        Self {
            windows,
            log: tokio::sync::Mutex::new(VecDeque::new()),
        }
    }
}

/// How long until one more call may start at `now` under every window, given the start times
/// of the calls granted so far, oldest first; `None` when it may start now. The one piece of
/// window arithmetic every limiter uses (in-process, in the store, in the sandboxes), over
/// instants or durations since an epoch alike.
pub fn wait_before<T>(log: &[T], windows: &[Window], now: T) -> Option<Duration>
where
    T: Copy + Ord + std::ops::Add<Duration, Output = T> + std::ops::Sub<T, Output = Duration>,
{
    windows
        .iter()
        .filter_map(|w| {
            let max = w.max as usize;
            if max == 0 {
                return Some(w.length);
            }
            let oldest = *log.get(log.len().checked_sub(max)?)?;
            let free_at = oldest + w.length;
            (free_at > now).then(|| free_at - now)
        })
        .max()
}

#[async_trait]
impl RateLimiter for WindowLimiter {
    async fn acquire(&self) -> Result<(), LimitError> {
        let keep = self
            .windows
            .iter()
            .map(|w| w.max as usize)
            .max()
            .unwrap_or(0);
        let mut log = self.log.lock().await;
        loop {
            let now = Instant::now();
            match wait_before(log.make_contiguous(), &self.windows, now) {
                None => {
                    log.push_back(now);
                    while log.len() > keep {
                        log.pop_front();
                    }
                    return Ok(());
                }
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// The largest number of instants that fall in any half-open window `[t, t + length)`.
/// Used by tests and the sandboxes to check pacing from recorded request times.
pub fn max_in_any_window(sorted: &[Duration], length: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for (end, t) in sorted.iter().enumerate() {
        while *t >= sorted[start] + length {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_in_any_window() {
        let limiter = WindowLimiter::new(vec![
            Window::new(3, Duration::from_secs(1)),
            Window::new(60, Duration::from_secs(60)),
        ]);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..200 {
            limiter.acquire().await.unwrap();
            times.push(start.elapsed());
        }
        assert_eq!(max_in_any_window(&times, Duration::from_secs(1)), 3);
        assert_eq!(max_in_any_window(&times, Duration::from_secs(60)), 60);
        // 200 calls at 60 a minute need three full minutes of waiting after the first 60.
        assert!(start.elapsed() >= Duration::from_secs(180));
    }

    #[tokio::test(start_paused = true)]
    async fn callers_are_served_in_the_order_they_asked() {
        // Two callers asking again as soon as they are served, one a second; a third asks
        // while both wait. It is served after the two already waiting, not when they let it.
        let limiter = std::sync::Arc::new(WindowLimiter::new(vec![Window::new(
            1,
            Duration::from_secs(1),
        )]));
        let start = Instant::now();
        let greedy = |name: &'static str| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let mut times = Vec::new();
                for _ in 0..6 {
                    limiter.acquire().await.unwrap();
                    times.push((start.elapsed().as_secs(), name));
                }
                times
            })
        };
        let (a, b) = (greedy("a"), greedy("b"));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        limiter.acquire().await.unwrap();
        let late = start.elapsed();
        let mut grants = a.await.unwrap();
        grants.extend(b.await.unwrap());
        grants.sort();
        assert_eq!(late, Duration::from_secs(4), "{grants:?}");
        assert_eq!(grants.len(), 12);
        assert!(
            grants.iter().all(|(t, _)| *t != 4),
            "the slot at 4 s was the late caller's: {grants:?}"
        );
    }

    #[test]
    fn window_counting() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_millis(*m))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            max_in_any_window(&ms(&[0, 500, 999, 1000]), Duration::from_secs(1)),
            3
        );
        assert_eq!(
            max_in_any_window(&ms(&[0, 1000, 2000]), Duration::from_secs(1)),
            1
        );
        assert_eq!(max_in_any_window(&[], Duration::from_secs(1)), 0);
    }
}
