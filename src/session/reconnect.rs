//! When to try connecting again after a connection failed, and when to give up.

use std::time::Duration;

use crate::transport::LinkError;

/// Retry interval while a server still holds the key of a connection we just closed.
const KEY_RELEASE_RETRY: Duration = Duration::from_millis(100);
/// Quick retries made while a server still holds the key, before the normal schedule.
const KEY_RELEASE_ATTEMPTS: u32 = 8;

/// Reconnection after an unplanned drop: one attempt at once (most drops are a server
/// restarting, and every second of waiting is a second of stall), a few more at the initial
/// delay (a restart takes seconds: a 3 s outage then costs 3 to 4 s, not OBS's 5), then
/// OBS's exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicy {
    /// Make the first attempt without waiting.
    pub immediate_first: bool,
    /// Delay before the first delayed attempt.
    pub initial_delay: Duration,
    /// Delayed attempts made at the initial delay before it starts growing.
    pub steady_attempts: u32,
    /// Growth of the delay per failed attempt.
    pub factor: f64,
    /// Largest delay.
    pub max_delay: Duration,
    /// Attempts before giving up.
    pub max_retries: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            immediate_first: true,
            initial_delay: Duration::from_secs(2),
            steady_attempts: 0,
            factor: 1.5,
            max_delay: Duration::from_secs(30),
            max_retries: 25,
        }
    }
}

impl ReconnectPolicy {
    /// The delay before attempt `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let attempt = match (self.immediate_first, attempt) {
            (true, 0) => return Duration::ZERO,
            (true, n) => n - 1,
            (false, n) => n,
        };
        let attempt = attempt.saturating_sub(self.steady_attempts.saturating_sub(1));
        let scaled = self.initial_delay.as_secs_f64() * self.factor.powi(attempt.min(64) as i32);
        Duration::from_secs_f64(scaled.min(self.max_delay.as_secs_f64()))
    }

    /// How long the schedule waits in all before it gives up: the sum of its delays (its
    /// attempts add their own connect time). A race for the way back from a silent path
    /// tries for as long before giving up as the schedule would.
    pub fn span(&self) -> Duration {
        (0..self.max_retries)
            .map(|attempt| self.delay(attempt))
            .sum()
    }
}

/// What to do after a reconnection attempt failed with `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryAfterFailure {
    /// Retrying cannot help (key refused, certificate or password wrong).
    Fatal,
    /// The policy's attempts are used up.
    GiveUp,
    /// The key is still held by the connection we just closed: retry soon.
    KeyRelease(Duration),
    /// Retry on the policy's schedule.
    Schedule,
}

/// The decision after a failed reconnection attempt, given the attempts made so far on the
/// policy's schedule and as quick retries for a held key. Quick retries do not advance the
/// schedule: a key held longer than they last (a server that noticed nothing of a silent
/// connection keeps it until its own timeout) is then retried from the schedule's start,
/// not from its 30 s end.
pub(crate) fn after_failure(
    policy: &ReconnectPolicy,
    (attempts, key_waits): (u32, u32),
    error: &LinkError,
) -> RetryAfterFailure {
    if !error.is_retryable() {
        RetryAfterFailure::Fatal
    } else if attempts >= policy.max_retries {
        RetryAfterFailure::GiveUp
    } else if error.is_key_in_use() && key_waits < KEY_RELEASE_ATTEMPTS {
        // A key still held by the old connection frees up within moments.
        RetryAfterFailure::KeyRelease(KEY_RELEASE_RETRY)
    } else {
        RetryAfterFailure::Schedule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_that_cannot_change_is_fatal_and_attempts_run_out() {
        let policy = ReconnectPolicy {
            max_retries: 3,
            ..ReconnectPolicy::default()
        };
        let lost = LinkError::ClosedByServer;
        assert_eq!(
            after_failure(&policy, (0, 0), &lost),
            RetryAfterFailure::Schedule
        );
        assert_eq!(
            after_failure(&policy, (3, 0), &lost),
            RetryAfterFailure::GiveUp
        );
        let tls = LinkError::Tls("bad certificate".into());
        assert_eq!(
            after_failure(&policy, (0, 0), &tls),
            RetryAfterFailure::Fatal
        );
    }

    #[test]
    fn a_held_key_is_retried_quickly_then_from_the_schedules_start() {
        let policy = ReconnectPolicy::default();
        let held = LinkError::Protocol(crate::protocol::ProtocolError::Rejected {
            stage: "publish",
            code: "NetStream.Publish.BadName".into(),
            description: "Already publishing".into(),
        });
        assert_eq!(
            after_failure(&policy, (1, KEY_RELEASE_ATTEMPTS - 1), &held),
            RetryAfterFailure::KeyRelease(KEY_RELEASE_RETRY)
        );
        // The quick retries are spent: the schedule goes on from where it was (attempt 1,
        // 2 s), not from an attempt count the quick retries inflated.
        assert_eq!(
            after_failure(&policy, (1, KEY_RELEASE_ATTEMPTS), &held),
            RetryAfterFailure::Schedule
        );
    }

    #[test]
    fn reconnection_is_immediate_then_steady_then_backs_off() {
        let policy = ReconnectPolicy {
            initial_delay: Duration::from_secs(1),
            steady_attempts: 3,
            ..ReconnectPolicy::default()
        };
        let delays: Vec<u64> = (0..7).map(|a| policy.delay(a).as_millis() as u64).collect();
        assert_eq!(delays, [0, 1000, 1000, 1000, 1500, 2250, 3375]);
        let obs = ReconnectPolicy::default();
        assert_eq!(obs.delay(0), Duration::ZERO);
        assert_eq!(obs.delay(1), Duration::from_secs(2));
        assert_eq!(obs.delay(2), Duration::from_secs(3));
        assert_eq!(obs.delay(60), Duration::from_secs(30));
        let three = ReconnectPolicy {
            max_retries: 3,
            ..ReconnectPolicy::default()
        };
        assert_eq!(three.span(), Duration::from_secs(5), "0 + 2 + 3 s");
    }
}
