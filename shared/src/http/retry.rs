//! Whether to try a call again, and when: a pure [`classify`] of each attempt's outcome into a
//! [`Verdict`], and a [`Schedule`] of waits (exponential backoff from `backon`, or the server's
//! `Retry-After` within our patience).
//!
//! The rules are ours: `Retry-After` wins over backoff; a call that is not idempotent is tried
//! again only when the server certainly did not act on it (429, or a request that never left);
//! a batch refused as a whole (HTTP 400) is split by the caller, not retried.

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// Whether a request may safely be sent again after an ambiguous failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads, upserts and deletes: retried on any transient failure.
    Idempotent,
    /// Writes whose effect may already have happened: retried only on 429, when the server
    /// certainly did not act. Other failures go back to the caller to decide (read back).
    NotIdempotent,
}

/// What a call is, as far as classification cares.
#[derive(Debug, Clone, Copy)]
pub struct CallKind<'a> {
    pub idempotency: Idempotency,
    /// Non-2xx statuses handed to the parser instead of failing (e.g. 404 for a lookup).
    pub accept: &'a [u16],
    /// The request carries several items the server judges together, so a 400 may be one
    /// item's fault: the caller splits the batch.
    pub batch: bool,
}

impl CallKind<'static> {
    /// An idempotent call of one thing, accepting only 2xx.
    pub const IDEMPOTENT: Self = Self {
        idempotency: Idempotency::Idempotent,
        accept: &[],
        batch: false,
    };
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this status (and perhaps a `Retry-After`).
    Answered {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// An answer the call accepts, whose body did not parse (truncated or garbled).
    Unparsable,
    /// No answer; `unsent` when the request certainly never reached the server.
    NoAnswer { unsent: bool },
}

/// Why a call stops without a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 401: the credentials are wrong.
    Unauthorized,
    /// 403: the credentials lack a permission.
    Forbidden,
    /// Any other 4xx: the request itself is wrong, and sending it again changes nothing.
    Rejected,
    /// A transient failure of a call that is not idempotent, where the server may have acted:
    /// the caller reads back instead of sending it again.
    Ambiguous,
}

/// What to do after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the answer to the parser.
    Accept,
    /// Try again after backoff.
    Retry,
    /// Try again once the server's wait has passed.
    RetryAfter(Duration),
    /// The server refused a batch as a whole (HTTP 400), likely for one of its items: split it
    /// and send the parts.
    PartialFailure,
    /// Stop.
    Fail(Failure),
}

/// Classifies one attempt's outcome. Pure: the table in the tests is the whole rule.
pub fn classify(outcome: Outcome, kind: CallKind<'_>) -> Verdict {
    let idempotent = kind.idempotency == Idempotency::Idempotent;
    match outcome {
        Outcome::Answered { status, .. }
            if (200..300).contains(&status) || kind.accept.contains(&status) =>
        {
            Verdict::Accept
        }
        Outcome::Answered { status: 401, .. } => Verdict::Fail(Failure::Unauthorized),
        Outcome::Answered { status: 403, .. } => Verdict::Fail(Failure::Forbidden),
        // 429: the server certainly did not act, whatever the method.
        Outcome::Answered {
            status: 429,
            retry_after,
        } => wait(retry_after),
        Outcome::Answered {
            status: 408 | 500..=599,
            retry_after,
        } if idempotent => wait(retry_after),
        Outcome::Answered {
            status: 408 | 500..=599,
            ..
        } => Verdict::Fail(Failure::Ambiguous),
        Outcome::Answered { status: 400, .. } if kind.batch => Verdict::PartialFailure,
        Outcome::Answered { .. } => Verdict::Fail(Failure::Rejected),
        Outcome::Unparsable if idempotent => Verdict::Retry,
        Outcome::Unparsable => Verdict::Fail(Failure::Ambiguous),
        Outcome::NoAnswer { unsent } if idempotent || unsent => Verdict::Retry,
        Outcome::NoAnswer { .. } => Verdict::Fail(Failure::Ambiguous),
    }
}

fn wait(retry_after: Option<Duration>) -> Verdict {
    match retry_after {
        Some(after) => Verdict::RetryAfter(after),
        None => Verdict::Retry,
    }
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff; doubled on each retry, plus up to as much again of jitter.
    pub base_delay: Duration,
    /// The largest backoff before jitter.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this ends the call instead of sleeping through it.
    pub max_retry_after: Duration,
    /// Seeds the jitter, for tests that check a schedule; `None` in service.
    pub jitter_seed: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(65),
            jitter_seed: None,
        }
    }
}

impl RetryPolicy {
    /// The waits for one call, in order.
    pub fn schedule(&self) -> Schedule {
        let mut builder = ExponentialBuilder::new()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_jitter();
        if let Some(seed) = self.jitter_seed {
            builder = builder.with_jitter_seed(seed);
        }
        Schedule {
            backoff: builder.build(),
            max_retry_after: self.max_retry_after,
        }
    }
}

/// Why a [`Schedule`] has no further wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// Every allowed attempt has been made.
    Exhausted,
    /// The server asked for a wait longer than `max_retry_after`.
    TooLongToWait(Duration),
}

/// The waits between one call's attempts.
#[derive(Debug)]
pub struct Schedule {
    backoff: ExponentialBackoff,
    max_retry_after: Duration,
}

impl Schedule {
    /// The wait before the next attempt, for a verdict of [`Verdict::Retry`] (`None`) or
    /// [`Verdict::RetryAfter`] (`Some`). A `Retry-After` is honoured as given plus a quarter of
    /// the backoff's jitter, so parallel callers do not return in lockstep; either way it uses
    /// up one attempt.
    pub fn next_wait(&mut self, retry_after: Option<Duration>) -> Result<Duration, GiveUp> {
        let backoff = self.backoff.next().ok_or(GiveUp::Exhausted)?;
        match retry_after {
            Some(after) if after > self.max_retry_after => Err(GiveUp::TooLongToWait(after)),
            Some(after) => Ok(after + backoff / 4),
            None => Ok(backoff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Failure::*;
    use Idempotency::*;

    fn answered(status: u16) -> Outcome {
        Outcome::Answered {
            status,
            retry_after: None,
        }
    }

    fn kind(idempotency: Idempotency, accept: &'static [u16], batch: bool) -> CallKind<'static> {
        CallKind {
            idempotency,
            accept,
            batch,
        }
    }

    /// Every status class × idempotency × batch × accept list, and each non-status outcome.
    #[test]
    fn the_whole_table() {
        let after = Duration::from_secs(3);
        let s = Verdict::RetryAfter(after);
        // (outcome, idempotent verdict, not-idempotent verdict) for a call of one thing.
        let table: Vec<(Outcome, Verdict, Verdict)> = vec![
            (answered(200), Verdict::Accept, Verdict::Accept),
            (answered(201), Verdict::Accept, Verdict::Accept),
            (answered(204), Verdict::Accept, Verdict::Accept),
            (answered(299), Verdict::Accept, Verdict::Accept),
            (
                answered(301),
                Verdict::Fail(Rejected),
                Verdict::Fail(Rejected),
            ),
            (
                answered(304),
                Verdict::Fail(Rejected),
                Verdict::Fail(Rejected),
            ),
            (
                answered(400),
                Verdict::Fail(Rejected),
                Verdict::Fail(Rejected),
            ),
            (
                answered(401),
                Verdict::Fail(Unauthorized),
                Verdict::Fail(Unauthorized),
            ),
            (
                answered(403),
                Verdict::Fail(Forbidden),
                Verdict::Fail(Forbidden),
            ),
            (
                answered(404),
                Verdict::Fail(Rejected),
                Verdict::Fail(Rejected),
            ),
            (
                answered(409),
                Verdict::Fail(Rejected),
                Verdict::Fail(Rejected),
            ),
            (
                answered(422),
                Verdict::Fail(Rejected),
                Verdict::Fail(Rejected),
            ),
            (answered(408), Verdict::Retry, Verdict::Fail(Ambiguous)),
            (answered(429), Verdict::Retry, Verdict::Retry),
            (
                Outcome::Answered {
                    status: 429,
                    retry_after: Some(after),
                },
                s,
                s,
            ),
            (answered(500), Verdict::Retry, Verdict::Fail(Ambiguous)),
            (answered(502), Verdict::Retry, Verdict::Fail(Ambiguous)),
            (answered(503), Verdict::Retry, Verdict::Fail(Ambiguous)),
            (
                Outcome::Answered {
                    status: 503,
                    retry_after: Some(after),
                },
                s,
                Verdict::Fail(Ambiguous),
            ),
            (answered(599), Verdict::Retry, Verdict::Fail(Ambiguous)),
            (
                Outcome::Unparsable,
                Verdict::Retry,
                Verdict::Fail(Ambiguous),
            ),
            (
                Outcome::NoAnswer { unsent: true },
                Verdict::Retry,
                Verdict::Retry,
            ),
            (
                Outcome::NoAnswer { unsent: false },
                Verdict::Retry,
                Verdict::Fail(Ambiguous),
            ),
        ];
        for (outcome, idempotent, not_idempotent) in table {
            assert_eq!(
                classify(outcome, kind(Idempotent, &[], false)),
                idempotent,
                "{outcome:?} idempotent"
            );
            assert_eq!(
                classify(outcome, kind(NotIdempotent, &[], false)),
                not_idempotent,
                "{outcome:?} not idempotent"
            );
            // A batch differs from a single call only on 400.
            let batch = classify(outcome, kind(Idempotent, &[], true));
            if outcome == answered(400) {
                assert_eq!(batch, Verdict::PartialFailure);
            } else {
                assert_eq!(batch, idempotent, "{outcome:?} batch");
            }
        }
    }

    #[test]
    fn accepted_statuses_go_to_the_parser_and_only_those() {
        let lookup = kind(Idempotent, &[404], false);
        assert_eq!(classify(answered(404), lookup), Verdict::Accept);
        assert_eq!(classify(answered(410), lookup), Verdict::Fail(Rejected));
        // Accepting a status overrides what it would otherwise mean.
        let odd = kind(NotIdempotent, &[400, 503], true);
        assert_eq!(classify(answered(400), odd), Verdict::Accept);
        assert_eq!(classify(answered(503), odd), Verdict::Accept);
    }

    fn policy(max_attempts: u32, seed: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(800),
            max_retry_after: Duration::from_secs(5),
            jitter_seed: Some(seed),
        }
    }

    #[test]
    fn backoff_doubles_is_capped_and_stops_after_the_last_attempt() {
        let mut schedule = policy(7, 42).schedule();
        let ceilings = [100u64, 200, 400, 800, 800, 800];
        for ceiling in ceilings {
            let wait = schedule.next_wait(None).expect("a wait");
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                wait >= ceiling && wait < ceiling * 2,
                "{wait:?} outside [{ceiling:?}, 2×)"
            );
        }
        assert_eq!(schedule.next_wait(None), Err(GiveUp::Exhausted));
        assert_eq!(
            policy(1, 42).schedule().next_wait(None),
            Err(GiveUp::Exhausted)
        );
    }

    #[test]
    fn a_seed_replays_the_schedule() {
        let waits = |seed| {
            let mut s = policy(6, seed).schedule();
            (0..5)
                .map(|_| s.next_wait(None).expect("a wait"))
                .collect::<Vec<_>>()
        };
        assert_eq!(waits(7), waits(7));
        assert_ne!(waits(7), waits(8));
    }

    #[test]
    fn retry_after_is_honoured_within_patience() {
        let mut schedule = policy(4, 1).schedule();
        let wait = schedule
            .next_wait(Some(Duration::from_secs(2)))
            .expect("a wait");
        assert!(wait >= Duration::from_secs(2) && wait < Duration::from_millis(2050));
        assert_eq!(
            schedule.next_wait(Some(Duration::from_secs(6))),
            Err(GiveUp::TooLongToWait(Duration::from_secs(6)))
        );
        // Waits the server asks for use up attempts like backoff does.
        let mut short = policy(2, 1).schedule();
        assert!(short.next_wait(Some(Duration::ZERO)).is_ok());
        assert_eq!(
            short.next_wait(Some(Duration::ZERO)),
            Err(GiveUp::Exhausted)
        );
    }
}
