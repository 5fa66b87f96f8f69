//! `veritrail keygen`: a new Ed25519 log signing key in the C2SP signed-note format, or with
//! `--witness` a witness cosigning key (tlog-cosignature, type 0x04).

use std::path::PathBuf;

use veritrail_ledger::cosignature::CosignatureSigner;
use veritrail_ledger::note::{KeyName, NoteSigner};

use crate::cli::common::error::CliError;
use crate::cli::common::io::write_private_key;

/// Arguments of `veritrail keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// The key name: the log's origin, e.g. `audit.example.com/log`; with --witness, the
    /// witness's name, e.g. `witness.example.com/w1`.
    #[arg(long)]
    name: String,
    /// A witness cosigning key (tlog-cosignature, type 0x04) instead of a log key. A fresh
    /// key per name: one Ed25519 key is never used under two names.
    #[arg(long)]
    witness: bool,
    /// Where to write the private key. Never overwritten.
    #[arg(long, default_value = "veritrail.key")]
    out: PathBuf,
}

/// Writes the private key (`PRIVATE+KEY+...`) to a new file with mode 0600 and prints the
/// verifier key.
///
/// # Errors
/// [`CliError::KeyName`], [`CliError::Generate`], [`CliError::KeyExists`] or
/// [`CliError::Write`].
pub(crate) fn run(args: &KeygenArgs) -> Result<(), CliError> {
    let name = KeyName::new(args.name.as_str()).map_err(|source| CliError::KeyName {
        name: args.name.clone(),
        source,
    })?;
    let (private, verifier) = if args.witness {
        let signer = CosignatureSigner::generate(name).map_err(|source| CliError::Generate {
            what: "a witness key",
            source: Box::new(source),
        })?;
        (signer.to_private_key_string(), signer.verifier())
    } else {
        let signer = NoteSigner::generate(name).map_err(|source| CliError::Generate {
            what: "a signing key",
            source: Box::new(source),
        })?;
        (signer.to_private_key_string(), signer.verifier())
    };
    write_private_key(&args.out, &private)?;
    println!("{verifier}");
    eprintln!(
        "wrote the private key to {} (mode 0600); the line above is the verifier key",
        args.out.display()
    );
    Ok(())
}
