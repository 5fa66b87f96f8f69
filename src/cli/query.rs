//! `veritrail query`: select records on the server, prove every answer against the pinned log
//! key and check that it matches the query, then print them.

use veritrail_client::records::verified_query;
use veritrail_records::Filter;

use crate::cli::common::args::{KeyArgs, ServerArgs};
use crate::cli::common::error::CliError;
use crate::cli::common::evidence::client_error;
use crate::cli::common::io::{record_field, stdout};
use crate::cli::common::runtime::runtime;

/// Arguments of `veritrail query`.
#[derive(Debug, clap::Args)]
pub(crate) struct QueryArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The log's verifier key (required: nothing is printed that was not proven).
    #[command(flatten)]
    key: KeyArgs,
    /// Records of this conversation.
    #[arg(long)]
    conversation_id: Option<String>,
    /// Records of this actor (`actor.id`).
    #[arg(long)]
    actor_id: Option<String>,
    /// Records submitted by this token name or OIDC subject (or `anonymous`).
    #[arg(long)]
    submitted_by: Option<String>,
    /// Records of this agent software (`agent.name`).
    #[arg(long)]
    agent: Option<String>,
    /// Records of this action; repeat for alternatives.
    #[arg(long)]
    action: Vec<String>,
    /// Records touching this resource type.
    #[arg(long)]
    resource_type: Option<String>,
    /// Records touching this resource id.
    #[arg(long)]
    resource_id: Option<String>,
    /// Records of exactly this classification.
    #[arg(long)]
    classification: Option<String>,
    /// Records under this compliance domain.
    #[arg(long)]
    compliance: Option<String>,
    /// Records whose timestamp is at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Records whose timestamp is before this RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Print a JSON array of `{"index", "record"}` instead of one line per record.
    #[arg(long)]
    json: bool,
}

impl QueryArgs {
    /// The filter the flags describe.
    fn filter(&self) -> Result<Filter, CliError> {
        let mut filter = Filter::default();
        let single = [
            ("conversation_id", &self.conversation_id),
            ("actor_id", &self.actor_id),
            ("submitted_by", &self.submitted_by),
            ("agent", &self.agent),
            ("resource_type", &self.resource_type),
            ("resource_id", &self.resource_id),
            ("classification", &self.classification),
            ("compliance", &self.compliance),
            ("since", &self.since),
            ("until", &self.until),
        ];
        let pairs = single
            .into_iter()
            .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
            .chain(self.action.iter().map(|a| ("action", a.as_str())));
        for (name, value) in pairs {
            filter.add(name, value).map_err(|bad| CliError::Usage {
                message: format!("--{}: {}", bad.parameter.replace('_', "-"), bad.problem),
                hint: "`veritrail query --help` lists the filters and their values".into(),
            })?;
        }
        Ok(filter)
    }
}

/// Runs the query, proves every answer and prints it.
///
/// # Errors
/// [`CliError::Usage`] for a bad filter or without `--log-key`; [`CliError::Client`] when
/// the log cannot be reached or an answer does not verify (exit code 1).
pub(crate) fn run(args: &QueryArgs) -> Result<(), CliError> {
    let filter = args.filter()?;
    let Some(pinned) = args.key.optional()? else {
        return Err(CliError::Usage {
            message: "query needs --log-key: only proven records are printed".into(),
            hint: "pass --log-key <data>/log.vkey (or the key the log's operator published)".into(),
        });
    };
    let client = args.server.client()?;
    let bar = indicatif::ProgressBar::new_spinner();
    let answer = runtime()?
        .block_on(verified_query(
            &client,
            &filter,
            &pinned.key,
            Some(&pinned.origin),
            &mut |found, reached| bar.set_message(format!("{found} records, index {reached}")),
        ))
        .map_err(|e| client_error(e, None))?;
    bar.finish_and_clear();
    let records = &answer.records;
    let size = Some(answer.size);
    if args.json {
        let items: Vec<serde_json::Value> = records
            .iter()
            .map(|r| serde_json::json!({"index": r.index, "record": r.record}))
            .collect();
        let mut text = serde_json::to_vec_pretty(&items).map_err(|e| CliError::Usage {
            message: e.to_string(),
            hint: String::new(),
        })?;
        text.push(b'\n');
        stdout(&text)?;
    } else {
        let mut text = String::new();
        for r in records {
            let field = |path: &[&str]| record_field(&r.record, path);
            text.push_str(&format!(
                "{:>8}  {}  {:<26} {:<16} {:<20} {}\n",
                r.index,
                field(&["timestamp"]),
                field(&["action"]),
                field(&["actor", "id"]),
                field(&["conversation_id"]),
                field(&["classification"]),
            ));
        }
        stdout(text.as_bytes())?;
    }
    eprintln!(
        "{} records, each proven in {} and matching the query{}",
        records.len(),
        pinned.origin,
        size.map_or(String::new(), |s| format!(" (tree size {s})"))
    );
    Ok(())
}
