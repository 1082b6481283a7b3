//! How every AWS call is retried and bounded: the SDK settings the Lambda
//! and the simulator share (`main.rs` adds the HTTPS client and region).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

/// A hung endpoint must not eat the invocation: each attempt is bounded.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(40))
        .build()
}

/// How many times a call is tried when AWS throttles it, answers 5xx or
/// times out, unless `AWS_MAX_ATTEMPTS` says otherwise.
///
/// Why 5 (the SDK's default is 3): every call we make is cheap, idempotent
/// (the state and lock writes are full overwrites or create-only, RunTask
/// carries its `clientToken`) and there are only a dozen per invocation,
/// while the control-plane limits they hit are account-wide and shared with
/// every other deployment tool (SSM's `GetParameter*` and ECS `RunTask`
/// throttle first). A failed call costs a failed pipeline action and a
/// manual stage retry; five jittered tries (0–1, 0–2, 0–4, 0–8 s of backoff,
/// at most 15 s in all) ride out a burst and still end well inside
/// `operation_timeout` and a Lambda invocation. Past that the call fails as
/// `SystemUnavailable` naming the API, and the idempotent path resumes on
/// the stage retry.
const MAX_ATTEMPTS: u32 = 5;

/// The SDK's retry behaviour, chosen deliberately rather than left to the
/// SDK's defaults.
///
/// - **Standard mode**, not adaptive: adaptive adds a client-side rate
///   limiter whose state lives in one process, and a Lambda process makes a
///   handful of calls per invocation — it would only delay us, never learn.
///   Standard mode retries throttling, 5xx, timeouts and connection errors
///   with full-jitter exponential backoff and a retry quota per client.
/// - `AWS_MAX_ATTEMPTS` and `AWS_RETRY_MODE` (the SDK's own variables) are
///   honoured when set, so an operator can tune retries in the function's
///   environment without a rebuild — the SDK ignores them once code sets a
///   retry config, so they are read here.
/// - `AWS_RETRY_INITIAL_BACKOFF_MS` (ours: the SDK has no variable for it)
///   scales the backoff; the whole-system tests set it to 1 ms so that
///   exhausted retries take milliseconds against the local control plane.
pub fn retry_config(env: impl Fn(&str) -> Option<String>) -> RetryConfig {
    let attempts = env("AWS_MAX_ATTEMPTS")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| (1..=20).contains(n))
        .unwrap_or(MAX_ATTEMPTS);
    let config = match env("AWS_RETRY_MODE").as_deref().map(str::trim) {
        Some("adaptive") => RetryConfig::adaptive(),
        _ => RetryConfig::standard(),
    };
    let backoff = env("AWS_RETRY_INITIAL_BACKOFF_MS")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(1));
    config
        .with_max_attempts(attempts)
        .with_initial_backoff(backoff)
        .with_max_backoff(Duration::from_secs(20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_standard_five_attempts_unless_the_environment_says_otherwise() {
        let none = retry_config(|_| None);
        assert_eq!(none.mode(), aws_config::retry::RetryMode::Standard);
        assert_eq!(none.max_attempts(), MAX_ATTEMPTS);
        assert_eq!(none.initial_backoff(), Duration::from_secs(1));
        let set = retry_config(|name| {
            match name {
                "AWS_MAX_ATTEMPTS" => Some("2"),
                "AWS_RETRY_INITIAL_BACKOFF_MS" => Some("1"),
                "AWS_RETRY_MODE" => Some("adaptive"),
                _ => None,
            }
            .map(str::to_owned)
        });
        assert_eq!(set.max_attempts(), 2);
        assert_eq!(set.initial_backoff(), Duration::from_millis(1));
        assert_eq!(set.mode(), aws_config::retry::RetryMode::Adaptive);
        assert_eq!(
            retry_config(|_| Some("0".into())).max_attempts(),
            MAX_ATTEMPTS
        );
    }
}
