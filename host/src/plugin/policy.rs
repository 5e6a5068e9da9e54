//! What a plugin may do: a TOML file, unknown keys rejected.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Limits and permissions of one plugin. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Wall-clock time one handler call may take (`"10s"`, `"1m"`).
    /// Missing: 10 seconds.
    #[serde(default = "default_time_limit", with = "duration_text")]
    pub time_limit: Duration,
    /// Linear memory the plugin may grow to, in MiB. Missing: 64.
    #[serde(default = "default_memory_mib")]
    pub memory_limit_mib: u32,
    /// Agents the plugin may send to (names, case-insensitive). Missing: any
    /// agent that has a mailbox. Empty: none.
    #[serde(default)]
    pub allowed_recipients: Option<Vec<String>>,
    /// Messages the plugin may send while handling one message (send,
    /// reply and each broadcast copy count). Missing: 10.
    #[serde(default = "default_max_sends")]
    pub max_sends_per_message: u32,
    /// Bytes of payload the plugin may pass to the host while handling one
    /// message, all sends together. Missing: 1 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes_per_message: u64,
    /// Fuel (roughly, WebAssembly instructions) one handler call may burn:
    /// a deterministic bound, unlike the time limit. Missing: no fuel
    /// limit, only the time limit.
    #[serde(default)]
    pub fuel: Option<u64>,
}

/// The longest time limit: a handler that needs a day is not one call.
/// Claims' leases are counted from it, and must not run past what a
/// `Duration` or a lease's milliseconds hold.
const MAX_TIME_LIMIT: Duration = Duration::from_secs(86_400);

fn default_time_limit() -> Duration {
    Duration::from_secs(10)
}
fn default_memory_mib() -> u32 {
    64
}
fn default_max_sends() -> u32 {
    10
}
fn default_max_bytes() -> u64 {
    1024 * 1024
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            time_limit: default_time_limit(),
            memory_limit_mib: default_memory_mib(),
            allowed_recipients: None,
            max_sends_per_message: default_max_sends(),
            max_bytes_per_message: default_max_bytes(),
            fuel: None,
        }
    }
}

/// A policy file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read the policy file {}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid policy file {}: {message}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        message: String,
    },
}

impl Policy {
    /// Reads a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(&text).map_err(|message| PolicyError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses policy text.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let policy: Policy = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
        if policy.memory_limit_mib == 0 {
            return Err("memory_limit_mib must be at least 1".into());
        }
        if policy.time_limit.is_zero() || policy.time_limit > MAX_TIME_LIMIT {
            return Err(format!(
                "time_limit must be from 1s to 1d, not {}s",
                policy.time_limit.as_secs()
            ));
        }
        Ok(policy)
    }

    /// True if `allowed_recipients` names `agent` (not merely allows any).
    pub fn names_recipient(&self, agent: &str) -> bool {
        self.allowed_recipients
            .as_ref()
            .is_some_and(|allowed| allowed.iter().any(|a| a.eq_ignore_ascii_case(agent)))
    }

    /// True if the plugin may send to `agent`.
    pub fn may_send_to(&self, agent: &str) -> bool {
        self.allowed_recipients
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|a| a.eq_ignore_ascii_case(agent)))
    }
}

mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::cli::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keys_take_their_defaults_and_unknown_keys_are_refused() {
        assert_eq!(Policy::parse("").unwrap(), Policy::default());
        let p = Policy::parse("time_limit = \"2s\"\nallowed_recipients = [\"Planner\"]").unwrap();
        assert_eq!(p.time_limit, Duration::from_secs(2));
        assert!(p.may_send_to("planner") && !p.may_send_to("coder"));
        let err = Policy::parse("time_limt = \"2s\"").unwrap_err();
        assert!(err.contains("unknown field `time_limt`"), "{err}");
        assert!(
            Policy::parse("time_limit = \"soon\"")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(Policy::parse("memory_limit_mib = 0").is_err());
        for (limit, accepted) in [("0s", false), ("1s", true), ("1d", true), ("25h", false)] {
            let parsed = Policy::parse(&format!("time_limit = \"{limit}\""));
            assert_eq!(parsed.is_ok(), accepted, "{limit}: {parsed:?}");
        }
        let huge = Policy::parse("time_limit = \"18446744073709551615s\"").unwrap_err();
        assert!(huge.contains("time_limit must be from 1s to 1d"), "{huge}");
    }
}
