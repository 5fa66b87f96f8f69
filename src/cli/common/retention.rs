//! The retention policy and the time to plan for, as the commands that plan retention
//! (`retention plan`, `archive`, `serve --archive-to`) read them.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use veritrail_records::retention::RetentionPolicy;

use crate::cli::common::error::CliError;
use crate::cli::common::io::read_capped;

/// The retention policy of `--policy`, or the defaults.
///
/// # Errors
/// [`CliError::Usage`] for a policy that does not parse; read errors.
pub(crate) fn load_policy(path: Option<&std::path::Path>) -> Result<RetentionPolicy, CliError> {
    match path {
        None => Ok(RetentionPolicy::default()),
        Some(path) => {
            let text = read_capped(path, veritrail_records::retention::MAX_POLICY_SIZE)?;
            RetentionPolicy::parse(&String::from_utf8_lossy(&text)).map_err(|e| CliError::Usage {
                message: format!("{}: {e}", path.display()),
                hint: "see docs/operations.md#retention for the policy format".into(),
            })
        }
    }
}

/// `--now` (RFC 3339), or the current time.
///
/// # Errors
/// [`CliError::Usage`] for a time that does not parse.
pub(crate) fn parse_now(text: Option<&str>) -> Result<OffsetDateTime, CliError> {
    match text {
        None => Ok(OffsetDateTime::now_utc()),
        Some(text) => OffsetDateTime::parse(text, &Rfc3339).map_err(|e| CliError::Usage {
            message: format!("{text:?}: {e}"),
            hint: "give an RFC 3339 time, e.g. 2032-03-01T00:00:00Z".into(),
        }),
    }
}
