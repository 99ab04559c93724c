//! The call budget of `../shared/product.md` and the lower bound it implies under the APIs'
//! rate limits.

use std::time::Duration;

/// Calls the budget allows for `n` new orders imported and written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Pull: ⌈n/250⌉ CIN7 list GETs (at least one: an idle poll costs one).
    pub import_cin7: u64,
    /// Pull: ⌈n/50⌉ GoSweetSpot PUTs.
    pub import_gss: u64,
    /// Write-back batches of up to 100 jobs.
    pub batches: u64,
    /// Write-back: one CIN7 list GET and one CIN7 PUT per batch.
    pub writeback_cin7: u64,
    /// Write-back: one GoSweetSpot shipments GET per batch.
    pub writeback_gss: u64,
}

impl Budget {
    /// The budget for `n` orders.
    pub fn for_orders(n: u64) -> Self {
        let batches = n.div_ceil(100);
        Self {
            import_cin7: n.div_ceil(250).max(1),
            import_gss: n.div_ceil(50),
            batches,
            writeback_cin7: 2 * batches,
            writeback_gss: batches,
        }
    }

    /// Every CIN7 call.
    pub fn cin7(&self) -> u64 {
        self.import_cin7 + self.writeback_cin7
    }

    /// Every GoSweetSpot call.
    pub fn gss(&self) -> u64 {
        self.import_gss + self.writeback_gss
    }
}

/// A rate limit: at most `max` calls starting in any window of `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: usize,
    pub length: Duration,
}

/// CIN7's published limits: 3 a second, 60 a minute.
pub const CIN7_LIMITS: [Limit; 2] = [
    Limit {
        max: 3,
        length: Duration::from_secs(1),
    },
    Limit {
        max: 60,
        length: Duration::from_secs(60),
    },
];

/// What the GoSweetSpot sandbox enforces with 429: GoSweetSpot's published ask, 60 a minute and
/// 1,000 an hour (GoSweetSpot itself does not enforce it).
pub const GSS_SANDBOX_LIMITS: [Limit; 2] = [
    Limit {
        max: 60,
        length: Duration::from_secs(60),
    },
    Limit {
        max: 1000,
        length: Duration::from_secs(3600),
    },
];

/// GoSweetSpot's limits for the bound: callers are to stay *under* 60 a minute and 1,000 an
/// hour (`../shared/product.md`), so at most 59 and 999.
pub const GSS_LIMITS: [Limit; 2] = [
    Limit {
        max: 59,
        length: Duration::from_secs(60),
    },
    Limit {
        max: 999,
        length: Duration::from_secs(3600),
    },
];

fn limits(windows: Vec<shared::rate_limit::Window>) -> Vec<Limit> {
    windows
        .into_iter()
        .map(|w| Limit {
            max: w.max as usize,
            length: w.length,
        })
        .collect()
}

/// The ceilings the CIN7 client paces to (`shared::rate_limit::cin7_windows`).
pub fn cin7_ceilings() -> Vec<Limit> {
    limits(shared::rate_limit::cin7_windows())
}

/// The ceilings the GoSweetSpot client paces to (`shared::rate_limit::gss_windows`).
pub fn gss_ceilings() -> Vec<Limit> {
    limits(shared::rate_limit::gss_windows())
}

/// The pull's share of GoSweetSpot's window (`shared::rate_limit::pull_gss_share`).
pub fn pull_gss_share_ceilings() -> Vec<Limit> {
    limits(shared::rate_limit::pull_gss_share())
}

/// Limits with every window multiplied by `factor` (time compression).
pub fn scaled(limits: &[Limit], factor: f64) -> Vec<Limit> {
    limits
        .iter()
        .map(|l| Limit {
            max: l.max,
            length: l.length.mul_f64(factor),
        })
        .collect()
}

/// The earliest the last of `calls` calls can start, the first starting at zero, when no
/// window of any limit may hold more than its `max` starts (the greedy schedule, which is
/// optimal for sliding windows).
pub fn earliest_last_start(calls: u64, limits: &[Limit]) -> Duration {
    let mut starts: Vec<Duration> = Vec::with_capacity(calls as usize);
    for k in 0..calls as usize {
        let mut t = starts.last().copied().unwrap_or_default();
        for l in limits {
            if l.max > 0 && k >= l.max {
                t = t.max(starts[k - l.max] + l.length);
            }
        }
        starts.push(t);
    }
    starts.last().copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget() {
        let b = Budget::for_orders(10_000);
        assert_eq!((b.import_cin7, b.import_gss, b.batches), (40, 200, 100));
        assert_eq!((b.cin7(), b.gss()), (240, 300));
        assert_eq!(Budget::for_orders(0).cin7(), 1);
    }

    #[test]
    fn bound_under_cin7_limits() {
        assert_eq!(earliest_last_start(3, &CIN7_LIMITS), Duration::ZERO);
        assert_eq!(earliest_last_start(4, &CIN7_LIMITS), Duration::from_secs(1));
        assert_eq!(
            earliest_last_start(60, &CIN7_LIMITS),
            Duration::from_secs(19)
        );
        assert_eq!(
            earliest_last_start(61, &CIN7_LIMITS),
            Duration::from_secs(60)
        );
        assert_eq!(
            earliest_last_start(240, &CIN7_LIMITS),
            Duration::from_secs(199)
        );
        assert_eq!(
            earliest_last_start(300, &GSS_SANDBOX_LIMITS),
            Duration::from_secs(240)
        );
        // 59 a minute: the 296th call waits for a sixth minute.
        assert_eq!(
            earliest_last_start(295, &GSS_LIMITS),
            Duration::from_secs(240)
        );
        assert_eq!(
            earliest_last_start(300, &GSS_LIMITS),
            Duration::from_secs(300)
        );
    }
}
