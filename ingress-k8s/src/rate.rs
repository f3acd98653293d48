//! A token bucket for writes to the API server (Events, status), so a start-up with thousands
//! of Ingresses does not write as fast as the API server takes it.

/// A token bucket: `burst` tokens, one more every `1 / per_second` seconds.
pub(crate) struct Rate {
    every: std::time::Duration,
    burst: u32,
    tokens: u32,
    /// When the last token was earned.
    refilled: tokio::time::Instant,
}

impl Rate {
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        let every = std::time::Duration::from_secs(1) / per_second.max(1);
        Self { every, burst, tokens: burst, refilled: tokio::time::Instant::now() }
    }

    /// Takes a token, waiting for one if there is none.
    pub(crate) async fn take(&mut self) {
        let earned = self.refilled.elapsed().as_nanos() / self.every.as_nanos().max(1);
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(earned).min(self.burst);
            // Whole tokens only: the time towards the next one is kept.
            self.refilled = if self.tokens == self.burst {
                tokio::time::Instant::now()
            } else {
                self.refilled + self.every * earned
            };
        }
        if self.tokens == 0 {
            self.refilled += self.every;
            tokio::time::sleep_until(self.refilled).await;
        } else {
            self.tokens -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn writes_are_rate_limited_after_a_burst() {
        let mut rate = Rate::new(5, 10);
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            rate.take().await;
        }
        assert_eq!(start.elapsed(), std::time::Duration::ZERO, "a burst of 10 at once");
        for _ in 0..5 {
            rate.take().await;
        }
        assert_eq!(start.elapsed(), std::time::Duration::from_secs(1), "then 5 a second");
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let rested = tokio::time::Instant::now();
        for _ in 0..10 {
            rate.take().await;
        }
        assert_eq!(rested.elapsed(), std::time::Duration::ZERO, "a quiet spell refills the burst, no more");
        rate.take().await;
        assert_eq!(rested.elapsed(), std::time::Duration::from_millis(200));
    }
}
