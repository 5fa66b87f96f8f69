//! Durations given on the command line: `250ms`, `10s`, `5m`, `24h`.

use std::time::Duration;

/// The longest duration any flag accepts: one year (8784 h, a leap year). Longer values are
/// typos, and bounding them keeps every deadline computed from a flag (`now + interval`)
/// far from overflowing.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses `250ms`, `10s`, `5m` or `24h`: ASCII digits then a unit, at most
/// [`MAX_DURATION`]. The multiplication is checked, so an absurd value is an error, never
/// an overflow. This does not panic.
///
/// # Errors
/// A message for clap (which exits with code 2), ending with a hint.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let hint = "\nhint: write a number and a unit (ms, s, m or h), e.g. 250ms, 10s, 5m, 24h";
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ if number.is_empty() => {
            return Err(format!("{text:?}: expected a number and a unit{hint}"));
        }
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h{hint}")),
    };
    let too_long = || {
        format!(
            "{text:?} is too long: at most {}h (one year)\nhint: durations are bounded to catch typos; pass a shorter one",
            MAX_DURATION.as_secs() / 3600
        )
    };
    let n: u64 = if number.is_empty() {
        return Err(format!("{text:?}: expected a number and a unit{hint}"));
    } else {
        // Only ASCII digits: the one failure left is a number beyond u64.
        number.parse().map_err(|_| too_long())?
    };
    let duration = n
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(too_long)?;
    if duration > MAX_DURATION {
        return Err(too_long());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("8784h"), Ok(MAX_DURATION));
        for bad in ["10", "ms", "-1s", "+1s", "1 s", "1d", "", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn absurd_durations_are_errors_with_a_hint() {
        for absurd in [
            "8785h",
            "999999999999999h",
            "5000000000000h",
            "18446744073709551615ms",
            "99999999999999999999h",
        ] {
            let err = parse_duration(absurd).expect_err(absurd);
            assert!(err.contains("too long"), "{absurd}: {err}");
            assert!(err.contains("\nhint: "), "{absurd}: {err}");
        }
    }
}
