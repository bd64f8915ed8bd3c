//! Durations written the way operators write them in Terraform and flags:
//! `30m`, `1h30m`, `90s`, `2h`. One parser serves the provider's plan-time
//! validation and the runner's flags, so both accept exactly the same text.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty; write it like \"30m\", \"1h30m\" or \"90s\"")]
    Empty,
    #[error(
        "duration {0:?} is not valid; write it like \"30m\", \"1h30m\" or \"90s\" (units s, m, h)"
    )]
    Syntax(String),
    #[error("duration {0:?} must be greater than zero")]
    Zero(String),
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses `<number><unit>` groups, units `h`, `m`, `s`, each used at most once
/// and in that order, e.g. `1h30m`. A bare number is rejected: the unit matters.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    let syntax = || DurationError::Syntax(text.to_string());
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut last_rank = 0u8;
    for ch in trimmed.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let (rank, secs) = match ch {
            'h' => (1, 3600u64),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return Err(syntax()),
        };
        if digits.is_empty() || rank <= last_rank {
            return Err(syntax());
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| DurationError::Overflow(text.to_string()))?;
        total = n
            .checked_mul(secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| DurationError::Overflow(text.to_string()))?;
        digits.clear();
        last_rank = rank;
    }
    if !digits.is_empty() || last_rank == 0 {
        return Err(syntax());
    }
    if total == 0 {
        return Err(DurationError::Zero(text.to_string()));
    }
    Ok(Duration::from_secs(total))
}

/// The shortest text [`parse_duration`] reads back as `d` (whole seconds).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Whole minutes, rounded down (the unit the reaper's note uses).
pub fn whole_minutes(d: Duration) -> u64 {
    d.as_secs() / 60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 2h "), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h0m5s"), Ok(Duration::from_secs(3605)));
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in ["", "30", "m", "30x", "5m1h", "1h1h", "-5m", "1.5h", "30 m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(
            parse_duration("0m"),
            Err(DurationError::Zero("0m".to_string()))
        );
        assert!(matches!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn format_round_trips() {
        for secs in [1, 59, 60, 61, 1800, 3600, 3661, 86400] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_secs(1800)), "30m");
    }
}
