//! `veritrail witness serve` and `veritrail witness add-log`: a C2SP tlog-witness.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use veritrail_ledger::cosignature::CosignatureSigner;
use veritrail_witness::http::{Witness, install_metrics};
use veritrail_witness::logs::add_log;

use crate::cli::common::error::CliError;
use crate::cli::common::runtime::{bind, init_logging, runtime, shutdown_signal};

/// `veritrail witness ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum WitnessCommand {
    /// Serve `POST /add-checkpoint` (tlog-witness), `GET /checkpoint/<origin hash>` and
    /// `GET /metrics`, cosigning checkpoints of the logs in `<data>/logs/`.
    Serve(ServeArgs),
    /// Trust a log: its verifier key (`<origin>+<key id>+<base64>`); the origin is the key's
    /// name. A running witness picks it up without a restart. Logs are never removed.
    AddLog(AddLogArgs),
}

/// Arguments of `veritrail witness serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The witness's private key (`veritrail keygen --witness`).
    #[arg(long)]
    key: PathBuf,
    /// The witness's data directory: trusted logs and the cosigned state.
    #[arg(
        long,
        env = "VERITRAIL_WITNESS_DATA",
        default_value = "veritrail-witness"
    )]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7380")]
    listen: SocketAddr,
}

/// Arguments of `veritrail witness add-log`.
#[derive(Debug, clap::Args)]
pub(crate) struct AddLogArgs {
    /// The witness's data directory.
    #[arg(
        long,
        env = "VERITRAIL_WITNESS_DATA",
        default_value = "veritrail-witness"
    )]
    data: PathBuf,
    /// The log's verifier key, as `veritrail keygen` and `veritrail serve` print it.
    key: String,
}

/// Runs a witness command.
///
/// # Errors
/// [`CliError`]: a usage error for a bad key or data directory, [`CliError::Listen`],
/// [`CliError::Serve`].
pub(crate) fn run(command: WitnessCommand) -> Result<(), CliError> {
    match command {
        WitnessCommand::Serve(args) => serve(&args),
        WitnessCommand::AddLog(args) => {
            let added = add_log(&args.data, &args.key).map_err(|e| CliError::Usage {
                message: format!("cannot add the log: {e}"),
                hint: "give the log's verifier key as `veritrail serve` prints it, and a writable --data".into(),
            })?;
            println!(
                "{} {}",
                if added { "trusted" } else { "already trusted" },
                args.key.trim()
            );
            Ok(())
        }
    }
}

fn serve(args: &ServeArgs) -> Result<(), CliError> {
    init_logging("text")?;
    let text = std::fs::read_to_string(&args.key).map_err(|source| CliError::Read {
        path: args.key.clone(),
        source,
    })?;
    let signer: CosignatureSigner = text.trim().parse().map_err(|e| CliError::Usage {
        message: format!("{} is not a witness key: {e}", args.key.display()),
        hint: "create one with `veritrail keygen --witness --name <name> --out <file>`".into(),
    })?;
    runtime()?.block_on(async {
        let (listener, local) = bind(args.listen).await?;
        let witness = Arc::new(
            Witness::open(signer.clone(), &args.data, install_metrics()).map_err(|e| {
                CliError::Usage {
                    message: format!("cannot open the witness state: {e}"),
                    hint: "check --data: a directory this user can write, used by one witness at a time".into(),
                }
            })?,
        );
        tracing::info!(listen = %local, witness = %signer.verifier(), data = %args.data.display(), "witness serving");
        println!("veritrail witness listening on http://{local}");
        println!("witness key: {}", signer.verifier());
        let served =
            veritrail_witness::http::serve(listener, witness.clone(), shutdown_signal()).await;
        witness.close();
        served.map_err(|source| CliError::Serve { source })?;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}
