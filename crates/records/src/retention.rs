//! Retention: how long each record must be kept, from its compliance domains and
//! classification, the strictest regime winning.
//!
//! A policy maps compliance domains (and, optionally, classifications) to calendar periods;
//! a record is kept until the latest of `start + period` over every period that applies to it:
//! each of its domains (a domain the policy does not name takes the default), its
//! classification if the policy names it, and always the default. Raw entries, which carry no
//! domain, keep the default. Periods are calendar periods (`6y` is six calendar years, `6mo`
//! six calendar months, `30d` thirty days), so the strictest of two is the one that ends later
//! from the record's own start, not a comparison of day counts.
//!
//! The policy file (TOML); every key is optional and the defaults are the ones shown:
//!
//! ```toml
//! default = "1y"
//!
//! [domains]
//! hipaa = "6y"        # HIPAA: six years
//! soc2 = "1y"
//! financial = "7y"
//! pci_dss = "1y"
//! eu_ai_act = "6mo"   # at least six months
//! # gdpr: no minimum; as short as possible, so the default applies
//! # "x-acme.audit" = "10y"
//!
//! [classification]
//! # restricted = "8y"
//! ```
//!
//! In scope: the policy and the expiry of one record, pure and clock-free (the caller gives
//! the start time). Out of scope: holds, archival and purging, which the server decides with
//! these expiries.
//!
//! ```
//! use veritrail_records::retention::RetentionPolicy;
//! use serde_json::json;
//! use time::macros::datetime;
//!
//! let policy = RetentionPolicy::default();
//! let record = json!({"compliance": ["soc2", "hipaa"], "classification": "restricted"});
//! let kept = policy.expiry(&record, datetime!(2026-03-01 12:00 UTC));
//! assert_eq!(kept.until, datetime!(2032-03-01 12:00 UTC)); // HIPAA's six years win
//! assert_eq!(kept.because, "hipaa 6y");
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;
use time::{Month, OffsetDateTime};

use crate::event::{Classification, Domain};

/// Largest policy file accepted, in bytes.
pub const MAX_POLICY_SIZE: usize = 64 * 1024;

/// A calendar period: years, months and days, added in that order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Period {
    years: u16,
    months: u16,
    days: u16,
}

impl Period {
    /// A period of `years` calendar years.
    pub const fn years(years: u16) -> Period {
        Period {
            years,
            months: 0,
            days: 0,
        }
    }

    /// A period of `months` calendar months.
    pub const fn months(months: u16) -> Period {
        Period {
            years: 0,
            months,
            days: 0,
        }
    }

    /// Parses `<n>y`, `<n>mo` and `<n>d` parts, largest first, e.g. `6y`, `6mo`, `1y6mo`,
    /// `90d`. At most 100 years in all.
    ///
    /// # Errors
    /// [`RetentionError::Period`].
    pub fn parse(text: &str) -> Result<Period, RetentionError> {
        let bad = || RetentionError::Period(text.to_owned());
        let mut period = Period::default();
        let mut rest = text.trim();
        let mut order = 0;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (number, after) = rest.split_at(digits);
            if number.is_empty() || (number.len() > 1 && number.starts_with('0')) {
                return Err(bad());
            }
            let n: u16 = number.parse().map_err(|_| bad())?;
            let (unit, after) = if let Some(after) = after.strip_prefix("mo") {
                (2, after)
            } else if let Some(after) = after.strip_prefix('y') {
                (1, after)
            } else if let Some(after) = after.strip_prefix('d') {
                (3, after)
            } else {
                return Err(bad());
            };
            if unit <= order {
                return Err(bad());
            }
            order = unit;
            match unit {
                1 => period.years = n,
                2 => period.months = n,
                _ => period.days = n,
            }
            rest = after;
        }
        let total_days =
            u32::from(period.years) * 366 + u32::from(period.months) * 31 + u32::from(period.days);
        if total_days == 0 || total_days > 100 * 366 {
            return Err(bad());
        }
        Ok(period)
    }

    /// `start` plus this period (the last day of the month when the day does not exist, e.g.
    /// 29 February plus one year is 28 February), or `None` past the representable range.
    pub fn after(&self, start: OffsetDateTime) -> Option<OffsetDateTime> {
        let months = i32::from(start.month() as u8) - 1 + i32::from(self.months);
        let year = start
            .year()
            .checked_add(i32::from(self.years))?
            .checked_add(months.div_euclid(12))?;
        let month = Month::try_from(u8::try_from(months.rem_euclid(12) + 1).ok()?).ok()?;
        let day = start.day().min(time::util::days_in_month(month, year));
        let date = time::Date::from_calendar_date(year, month, day).ok()?;
        start
            .replace_date(date)
            .checked_add(time::Duration::days(i64::from(self.days)))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.years > 0 {
            write!(f, "{}y", self.years)?;
        }
        if self.months > 0 {
            write!(f, "{}mo", self.months)?;
        }
        if self.days > 0 {
            write!(f, "{}d", self.days)?;
        }
        Ok(())
    }
}

/// Why a retention policy does not load.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// Not a period.
    #[error(
        "{0:?} is not a retention period: write e.g. 6y, 6mo, 1y6mo or 90d (1 day to 100 years)"
    )]
    Period(String),
    /// Not a known or namespaced compliance domain.
    #[error("{0}")]
    Domain(String),
    /// Not a classification.
    #[error("{0:?} is not a classification: public, internal, confidential or restricted")]
    Classification(String),
    /// The file is not valid TOML of the expected shape, or too large.
    #[error("retention policy: {0}")]
    File(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    default: Option<String>,
    #[serde(default)]
    domains: BTreeMap<String, String>,
    #[serde(default)]
    classification: BTreeMap<String, String>,
}

/// How long records are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    default: Period,
    domains: BTreeMap<Domain, Period>,
    classifications: BTreeMap<Classification, Period>,
}

impl Default for RetentionPolicy {
    /// HIPAA 6 years, SOC 2 1 year, financial 7 years, PCI DSS 1 year, EU AI Act 6 months,
    /// everything else (GDPR included) the default of 1 year.
    fn default() -> Self {
        RetentionPolicy {
            default: Period::years(1),
            domains: BTreeMap::from([
                (Domain::Hipaa, Period::years(6)),
                (Domain::Soc2, Period::years(1)),
                (Domain::Financial, Period::years(7)),
                (Domain::PciDss, Period::years(1)),
                (Domain::EuAiAct, Period::months(6)),
            ]),
            classifications: BTreeMap::new(),
        }
    }
}

/// Until when a record is kept, and which rule decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// The end of its retention.
    pub until: OffsetDateTime,
    /// The rule that decided it, e.g. `hipaa 6y`, `classification restricted 8y`, `default 1y`.
    pub because: String,
}

impl RetentionPolicy {
    /// Parses a policy file; what it does not set keeps the defaults.
    ///
    /// # Errors
    /// [`RetentionError`] naming the bad value.
    pub fn parse(text: &str) -> Result<RetentionPolicy, RetentionError> {
        if text.len() > MAX_POLICY_SIZE {
            return Err(RetentionError::File(format!(
                "larger than {MAX_POLICY_SIZE} bytes"
            )));
        }
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| RetentionError::File(e.to_string()))?;
        let mut policy = RetentionPolicy::default();
        if let Some(default) = &file.default {
            policy.default = Period::parse(default)?;
        }
        for (name, period) in &file.domains {
            let domain = Domain::parse(name).map_err(RetentionError::Domain)?;
            policy.domains.insert(domain, Period::parse(period)?);
        }
        for (name, period) in &file.classification {
            let classification: Classification =
                serde_json::from_value(Value::String(name.clone()))
                    .map_err(|_| RetentionError::Classification(name.clone()))?;
            policy
                .classifications
                .insert(classification, Period::parse(period)?);
        }
        Ok(policy)
    }

    /// The default period (raw entries, and domains the policy does not name).
    pub fn default_period(&self) -> Period {
        self.default
    }

    /// Until when a stored record (its JSON) is kept, counted from `start` (when the log
    /// received it): the latest end over the default, each of its compliance domains, and
    /// its classification.
    pub fn expiry(&self, record: &Value, start: OffsetDateTime) -> Expiry {
        let mut rules: Vec<(String, Period)> =
            vec![(format!("default {}", self.default), self.default)];
        for domain in record
            .get("compliance")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|d| Domain::parse(d).ok())
        {
            let period = self.domains.get(&domain).copied().unwrap_or(self.default);
            rules.push((format!("{} {period}", domain.as_str()), period));
        }
        if let Some(classification) = record
            .get("classification")
            .cloned()
            .and_then(|c| serde_json::from_value::<Classification>(c).ok())
            && let Some(period) = self.classifications.get(&classification)
        {
            let name = serde_json::to_value(classification)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            rules.push((format!("classification {name} {period}"), *period));
        }
        self.latest(start, rules)
    }

    /// Until when a raw entry (no domains) is kept, counted from `start`.
    pub fn expiry_raw(&self, start: OffsetDateTime) -> Expiry {
        self.latest(
            start,
            vec![(format!("default {}", self.default), self.default)],
        )
    }

    /// The latest end over `rules`; the first rule wins a tie (the default comes first, so a
    /// domain is named only when it keeps the record longer).
    fn latest(&self, start: OffsetDateTime, rules: Vec<(String, Period)>) -> Expiry {
        let mut best = Expiry {
            until: OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT),
            because: "beyond the calendar".into(),
        };
        let mut found = false;
        for (name, period) in rules {
            let Some(until) = period.after(start) else {
                // Past the calendar: kept forever.
                return best;
            };
            if !found || until > best.until {
                best = Expiry {
                    until,
                    because: name,
                };
                found = true;
            }
        }
        best
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn periods_parse_strictly() {
        assert_eq!(Period::parse("6y").unwrap(), Period::years(6));
        assert_eq!(Period::parse("6mo").unwrap(), Period::months(6));
        assert_eq!(Period::parse("1y6mo").unwrap().to_string(), "1y6mo");
        assert_eq!(Period::parse("90d").unwrap().to_string(), "90d");
        for bad in [
            "", "6", "y", "06y", "6mo1y", "6y6y", "0d", "101y", "6 years", "-1y", "6m",
        ] {
            assert!(Period::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn calendar_arithmetic() {
        let leap = datetime!(2028-02-29 10:00 UTC);
        assert_eq!(
            Period::years(1).after(leap),
            Some(datetime!(2029-02-28 10:00 UTC))
        );
        assert_eq!(
            Period::years(4).after(leap),
            Some(datetime!(2032-02-29 10:00 UTC))
        );
        let end_of_august = datetime!(2026-08-31 00:00 UTC);
        assert_eq!(
            Period::months(6).after(end_of_august),
            Some(datetime!(2027-02-28 00:00 UTC))
        );
        assert_eq!(
            Period::parse("1y6mo10d")
                .unwrap()
                .after(datetime!(2026-01-25 00:00 UTC)),
            Some(datetime!(2027-08-04 00:00 UTC))
        );
    }

    #[test]
    fn the_strictest_regime_wins() {
        let policy = RetentionPolicy::default();
        let start = datetime!(2026-03-01 12:00 UTC);
        let cases = [
            (json!({}), datetime!(2027-03-01 12:00 UTC), "default 1y"),
            (
                json!({"compliance": ["eu_ai_act"]}),
                datetime!(2027-03-01 12:00 UTC),
                "default 1y",
            ),
            (
                json!({"compliance": ["gdpr"]}),
                datetime!(2027-03-01 12:00 UTC),
                "default 1y",
            ),
            (
                json!({"compliance": ["soc2", "hipaa"]}),
                datetime!(2032-03-01 12:00 UTC),
                "hipaa 6y",
            ),
            (
                json!({"compliance": ["hipaa", "financial", "pci_dss"]}),
                datetime!(2033-03-01 12:00 UTC),
                "financial 7y",
            ),
        ];
        for (record, until, because) in cases {
            let expiry = policy.expiry(&record, start);
            assert_eq!(
                (expiry.until, expiry.because.as_str()),
                (until, because),
                "{record}"
            );
        }
        assert_eq!(
            policy.expiry_raw(start).until,
            datetime!(2027-03-01 12:00 UTC)
        );
    }

    #[test]
    fn files_override_defaults_and_name_bad_values() {
        let policy = RetentionPolicy::parse(
            "default = \"2y\"\n[domains]\neu_ai_act = \"3y\"\n\"x-acme.audit\" = \"10y\"\n[classification]\nrestricted = \"8y\"\n",
        )
        .unwrap();
        let start = datetime!(2026-01-01 00:00 UTC);
        let cases = [
            (json!({}), "default 2y"),
            (json!({"compliance": ["eu_ai_act"]}), "eu_ai_act 3y"),
            (
                json!({"compliance": ["hipaa"], "classification": "restricted"}),
                "classification restricted 8y",
            ),
            (
                json!({"compliance": ["x-acme.audit", "financial"]}),
                "x-acme.audit 10y",
            ),
            (json!({"compliance": ["x-acme.other"]}), "default 2y"),
        ];
        for (record, because) in cases {
            assert_eq!(policy.expiry(&record, start).because, because, "{record}");
        }
        for (bad, want) in [
            (
                "default = \"forever\"",
                RetentionError::Period("forever".into()),
            ),
            (
                "[classification]\nsecret = \"1y\"",
                RetentionError::Classification("secret".into()),
            ),
        ] {
            assert_eq!(RetentionPolicy::parse(bad), Err(want), "{bad}");
        }
        assert!(matches!(
            RetentionPolicy::parse("[domains]\nhippa = \"6y\""),
            Err(RetentionError::Domain(_))
        ));
        assert!(matches!(
            RetentionPolicy::parse("colour = 1"),
            Err(RetentionError::File(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,40}") {
            let _ = Period::parse(&text);
            let _ = RetentionPolicy::parse(&text);
        }

        /// A record is never kept for less than any period that applies to it.
        #[test]
        fn never_shorter_than_any_rule(
            domains in proptest::collection::vec(0usize..7, 0..4),
            seconds in 0i64..4_000_000_000,
        ) {
            const NAMES: [&str; 7] = ["hipaa", "soc2", "financial", "pci_dss", "gdpr", "eu_ai_act", "x-a.b"];
            let names: Vec<&str> = domains.iter().filter_map(|&i| NAMES.get(i).copied()).collect();
            let policy = RetentionPolicy::default();
            let start = OffsetDateTime::from_unix_timestamp(seconds).unwrap();
            let expiry = policy.expiry(&json!({"compliance": names}), start);
            for name in &names {
                let period = Domain::parse(name)
                    .ok()
                    .and_then(|d| policy.domains.get(&d).copied())
                    .unwrap_or(policy.default);
                proptest::prop_assert!(expiry.until >= period.after(start).unwrap());
            }
            proptest::prop_assert!(expiry.until >= policy.default.after(start).unwrap());
        }
    }
}
