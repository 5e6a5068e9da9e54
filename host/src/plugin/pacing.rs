//! How many messages the runner claims at once.
//!
//! Every claim lists the whole mailbox (the format keeps no index, and a
//! message that arrived a moment ago may come first), so a fixed small
//! batch makes a big mailbox quadratic: batches of 16 handled 100,000
//! messages with a trivial plugin at 650 a second, against 2,500 on 1,000.
//! A batch also holds its messages back from other consumers and makes a
//! more urgent message that arrives meanwhile wait for the batch to end, so
//! it should be no bigger than the claim's cost calls for. Batches double
//! while claiming takes more than an eighth of the time handling takes, up
//! to [`ClaimPacing::MAX`] messages and [`ClaimPacing::MAX_BYTES`], and halve
//! back towards [`ClaimPacing::MIN`] when handling is slow; a batch whose
//! handlers turn slow is cut short, what it has not handled given back.

use std::time::Duration;

/// The size of the next claim, from how the last ones went.
#[derive(Debug, Clone)]
pub struct ClaimPacing {
    size: u32,
}

impl ClaimPacing {
    /// The smallest batch, and the first.
    pub const MIN: u32 = 16;
    /// The largest batch.
    pub const MAX: u32 = 1024;
    /// A batch whose messages take more room than this is not grown (and is
    /// shrunk): it is held in memory twice, in the queue's sandbox and here.
    pub const MAX_BYTES: u64 = 16 * 1024 * 1024;
    /// Claiming may take up to 1/SHARE of the time handling takes.
    const SHARE: u32 = 8;

    pub fn new() -> ClaimPacing {
        ClaimPacing { size: Self::MIN }
    }

    /// However short the claim, a batch may be handled this long before it
    /// is cut short.
    const HOLD_MIN: Duration = Duration::from_secs(2);

    /// Messages to claim next.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// True if a batch that took `claiming` to claim, handled for `handling`
    /// so far, should give back what it has not handled: it was sized for
    /// handling to take about eight times the claim, and handlers that
    /// turned slow would otherwise keep up to [`ClaimPacing::MAX`]
    /// messages from other consumers. Past four times that, and
    /// [`ClaimPacing::HOLD_MIN`], it is cut short. A batch of
    /// [`ClaimPacing::MIN`] is always handled whole.
    pub fn overdue(&self, claiming: Duration, handling: Duration) -> bool {
        self.size > Self::MIN && handling > (claiming * Self::SHARE * 4).max(Self::HOLD_MIN)
    }

    /// Records a batch cut short: the next one is half as big.
    pub fn cut_short(&mut self) {
        self.size = (self.size / 2).max(Self::MIN);
    }

    /// Records a batch: the claim took `claiming` and returned `claimed`
    /// messages of `bytes` in all, which took `handling` to handle.
    pub fn record(&mut self, claiming: Duration, handling: Duration, claimed: u32, bytes: u64) {
        if bytes > Self::MAX_BYTES {
            self.size = (self.size / 2).max(Self::MIN);
        } else if claimed < self.size {
            // The mailbox ran short: nothing is known of a full batch.
        } else if claiming * Self::SHARE > handling && bytes * 2 <= Self::MAX_BYTES {
            self.size = (self.size * 2).min(Self::MAX);
        } else if claiming * Self::SHARE * 4 < handling {
            self.size = (self.size / 2).max(Self::MIN);
        }
    }
}

impl Default for ClaimPacing {
    fn default() -> ClaimPacing {
        ClaimPacing::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn batches_grow_while_claiming_costs_much_and_stop_at_the_largest() {
        let mut pacing = ClaimPacing::new();
        let mut sizes = vec![pacing.size()];
        for _ in 0..8 {
            // A listing of 30 ms, messages handled in 0.4 ms each.
            let size = pacing.size();
            pacing.record(30 * MS, MS * size * 2 / 5, size, u64::from(size) * 200);
            sizes.push(pacing.size());
        }
        assert_eq!(sizes, [16, 32, 64, 128, 256, 512, 1024, 1024, 1024]);
    }

    #[test]
    fn batches_settle_where_claiming_is_an_eighth_of_handling() {
        let mut pacing = ClaimPacing::new();
        for _ in 0..10 {
            // A listing of 10 ms, messages handled in 1 ms each: 128 handle
            // in 128 ms, more than eight claims.
            let size = pacing.size();
            pacing.record(10 * MS, MS * size, size, 0);
        }
        assert_eq!(pacing.size(), 128);
    }

    #[test]
    fn slow_handlers_bring_batches_back_to_the_smallest() {
        let mut pacing = ClaimPacing::new();
        for _ in 0..3 {
            pacing.record(30 * MS, MS, pacing.size(), 0);
        }
        assert_eq!(pacing.size(), 128);
        let mut sizes = Vec::new();
        for _ in 0..4 {
            // A second a message.
            let size = pacing.size();
            pacing.record(30 * MS, 1000 * MS * size, size, 0);
            sizes.push(pacing.size());
        }
        assert_eq!(sizes, [64, 32, 16, 16]);
    }

    #[test]
    fn a_batch_whose_handlers_turned_slow_is_cut_short_unless_it_is_the_smallest() {
        let mut pacing = ClaimPacing::new();
        // The smallest batch is handled whole, however slowly.
        assert!(!pacing.overdue(30 * MS, 3_600_000 * MS));
        for _ in 0..4 {
            pacing.record(30 * MS, MS, pacing.size(), 0);
        }
        assert_eq!(pacing.size(), 256);
        // Sized for about 240 ms of handling: cut past 2 s (four times
        // that is less), or past four times the claim's share when it is more.
        assert!(!pacing.overdue(30 * MS, 1_900 * MS));
        assert!(pacing.overdue(30 * MS, 2_100 * MS));
        assert!(!pacing.overdue(100 * MS, 3_100 * MS));
        assert!(pacing.overdue(100 * MS, 3_300 * MS));
        pacing.cut_short();
        assert_eq!(pacing.size(), 128);
    }

    #[test]
    fn a_short_batch_changes_nothing_and_big_messages_stop_growth() {
        let mut pacing = ClaimPacing::new();
        pacing.record(30 * MS, MS, 3, 0);
        assert_eq!(pacing.size(), 16);
        // Claiming costs much, but the batch is already 9 MiB.
        pacing.record(30 * MS, MS, 16, 9 << 20);
        assert_eq!(pacing.size(), 16);
        pacing.record(30 * MS, MS, 16, 0);
        pacing.record(30 * MS, MS, 32, 0);
        assert_eq!(pacing.size(), 64);
        // Past the room a batch may take, it shrinks.
        pacing.record(30 * MS, MS, 64, 17 << 20);
        assert_eq!(pacing.size(), 32);
    }
}
