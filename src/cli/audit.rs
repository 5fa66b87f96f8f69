//! `veritrail audit conversation <id>`: fetch one conversation, prove it complete at one
//! signed checkpoint, and print it as a timeline.

use veritrail_client::ClientError;
use veritrail_client::records::{VerifiedConversation, verified_conversation};

use crate::cli::common::args::{KeyArgs, ServerArgs};
use crate::cli::common::error::CliError;
use crate::cli::common::evidence::client_error;
use crate::cli::common::io::{record_field, stdout};
use crate::cli::common::runtime::runtime;

/// `veritrail audit ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Prove one conversation complete and print its timeline.
    ///
    /// Every record is proven against a checkpoint signed by --log-key, the records must
    /// form one chain from the conversation's first record, and the log's signed head
    /// statement must name the chain's last record at that checkpoint. Prints time, actor,
    /// action, tool, model, classification and each payload's state (available or erased).
    Conversation(Box<ConversationArgs>),
}

/// Arguments of `veritrail audit conversation`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConversationArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The log's verifier key (required: nothing is printed that was not proven).
    #[command(flatten)]
    key: KeyArgs,
    /// Print JSON instead of a timeline.
    #[arg(long)]
    json: bool,
    /// The conversation id.
    id: String,
}

/// Runs an `audit` subcommand.
///
/// # Errors
/// As [`conversation`].
pub(crate) fn run(command: &AuditCommand) -> Result<(), CliError> {
    match command {
        AuditCommand::Conversation(args) => conversation(args),
    }
}

/// What became of one payload.
fn payload_state(found: Result<(String, Vec<u8>, Vec<u8>), ClientError>) -> String {
    match found {
        Ok(_) => "available".into(),
        Err(ClientError::Api {
            status: 410,
            message,
            ..
        }) => format!("erased ({message})"),
        Err(e) => format!("unreadable ({e})"),
    }
}

/// Proves the conversation and prints it.
///
/// # Errors
/// [`CliError::Usage`] without `--log-key`; [`CliError::Client`] when the log cannot be
/// reached or the conversation does not verify (exit code 1).
fn conversation(args: &ConversationArgs) -> Result<(), CliError> {
    let Some(pinned) = args.key.optional()? else {
        return Err(CliError::Usage {
            message: "audit conversation needs --log-key: only proven records are printed".into(),
            hint: "pass --log-key <data>/log.vkey (or the key the log's operator published)".into(),
        });
    };
    let client = args.server.client()?;
    let runtime = runtime()?;
    let verified: VerifiedConversation = runtime
        .block_on(verified_conversation(
            &client,
            &args.id,
            &pinned.key,
            Some(&pinned.origin),
        ))
        .map_err(|e| client_error(e, None))?;
    // Each payload's state: a read of the payload endpoint (the payload is not shown).
    let mut payloads: Vec<Vec<(String, String)>> = Vec::new();
    for record in &verified.records {
        let names: Vec<String> = record
            .record
            .get("payloads")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let mut states = Vec::new();
        for name in names {
            let state = payload_state(runtime.block_on(client.payload(record.index, &name)));
            states.push((name, state));
        }
        payloads.push(states);
    }
    let closed = verified.chain.as_ref().is_some_and(|c| c.ended);
    let verdict = match verified.records.len() {
        0 => format!(
            "no record of {:?} at tree size {} (the log signed this)",
            args.id, verified.head.size
        ),
        n => format!(
            "complete: {n} records from #{} to #{}, {}; the log signed #{} as the head at tree size {}",
            verified.records.first().map_or(0, |r| r.index),
            verified.records.last().map_or(0, |r| r.index),
            if closed { "closed" } else { "open" },
            verified.head.head.as_ref().map_or(0, |h| h.index),
            verified.head.size
        ),
    };
    if args.json {
        let records: Vec<serde_json::Value> = verified
            .records
            .iter()
            .zip(&payloads)
            .map(|(r, states)| {
                serde_json::json!({
                    "index": r.index,
                    "record": r.record,
                    "payloads": states.iter().map(|(n, s)| (n.clone(), serde_json::Value::String(s.clone()))).collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect();
        let body = serde_json::json!({
            "conversation": args.id,
            "size": verified.head.size,
            "complete": true,
            "closed": closed,
            "head": verified.head.head.as_ref().map(|h| h.index),
            "records": records,
        });
        let mut text = serde_json::to_vec_pretty(&body).unwrap_or_default();
        text.push(b'\n');
        stdout(&text)?;
    } else {
        let mut text = format!("conversation {:?} in {}\n", args.id, pinned.origin);
        for (r, states) in verified.records.iter().zip(&payloads) {
            let field = |path: &[&str]| record_field(&r.record, path);
            text.push_str(&format!(
                "#{:<7} {}  {:<16} {:<26} tool={:<18} model={:<16} {}\n",
                r.index,
                field(&["timestamp"]),
                field(&["actor", "id"]),
                field(&["action"]),
                field(&["gen_ai", "gen_ai.tool.name"]),
                field(&["gen_ai", "gen_ai.request.model"]),
                field(&["classification"]),
            ));
            for (name, state) in states {
                text.push_str(&format!("          payload {name}: {state}\n"));
            }
        }
        text.push_str(&verdict);
        text.push('\n');
        stdout(text.as_bytes())?;
    }
    eprintln!("{verdict}");
    Ok(())
}
