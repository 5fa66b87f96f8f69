//! Flags shared by the client commands: how to reach the log (`--url`, `--token`,
//! `--timeout`), the pinned key (`--log-key`, `--origin`), the trusted state (`--state`,
//! `--evidence`) and where proofs come from (`--proofs`).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use veritrail_client::{
    ClientConfig, ClientError, LogClient, LogVerifier, ProofSource, Update, VerifyingClient,
};
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::{NoteVerifier, SIG_TYPE_ED25519};

use crate::cli::common::duration::parse_duration;
use crate::cli::common::error::CliError;
use crate::cli::common::evidence::{DEFAULT_EVIDENCE, client_error};
use crate::cli::common::io::{read_capped, sibling};

/// Where `veritrail serve` listens by default (its `--listen` default).
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:7800";
/// Largest file accepted as `--log-key`: a key string is at most 4 KiB, and a file may hold
/// a few other lines (such as what `veritrail serve` prints).
const MAX_KEY_FILE: u64 = 64 * 1024;
/// Longest a connection may take to open, at most (also capped by `--timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach the log.
#[derive(Debug, clap::Args)]
pub(crate) struct ServerArgs {
    /// Base URL of the log (the address `veritrail serve` prints).
    #[arg(long, env = "VERITRAIL_URL", default_value = DEFAULT_URL)]
    pub(crate) url: String,
    /// Bearer token: role `append` to append, `read` for entries and entry bundles.
    #[arg(long, env = "VERITRAIL_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Longest one request may take, retries aside (e.g. 30s, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
}

impl ServerArgs {
    /// The HTTP client for `--url`.
    ///
    /// # Errors
    /// [`CliError::Usage`] for a URL the client refuses.
    pub(crate) fn client(&self) -> Result<LogClient, CliError> {
        let mut config = ClientConfig::new(self.url.clone());
        config.token = self.token.clone();
        config.timeout = self.timeout.max(Duration::from_millis(1));
        config.connect_timeout = CONNECT_TIMEOUT.min(config.timeout);
        LogClient::new(&config).map_err(|e| CliError::Usage {
            message: e.to_string(),
            hint: format!("pass --url http://HOST:PORT, the address `veritrail serve` prints (default {DEFAULT_URL})"),
        })
    }
}

/// The log's pinned verifier key.
#[derive(Debug, clap::Args)]
pub(crate) struct KeyArgs {
    /// The log's verifier key, `<name>+<hex key id>+<base64>` (what `veritrail serve` and
    /// `veritrail keygen` print), or a file holding one.
    #[arg(long, env = "VERITRAIL_LOG_KEY")]
    pub(crate) log_key: Option<String>,
    /// The log's origin, the first line of its checkpoints. Default: the key's name.
    #[arg(long)]
    pub(crate) origin: Option<String>,
    /// A witness policy (C2SP tlog-policy file): a checkpoint counts only if it is also signed
    /// by a log the policy lists and cosigned by the policy's quorum (docs/witnessing.md).
    #[arg(long, env = "VERITRAIL_POLICY", value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
}

/// A verifier key with the origin it is pinned for.
#[derive(Clone, Debug)]
pub(crate) struct PinnedKey {
    /// The log's verifier key.
    pub(crate) key: NoteVerifier,
    /// The origin its checkpoints must carry.
    pub(crate) origin: String,
    /// The witness policy checkpoints must also satisfy (`--policy`).
    pub(crate) policy: Option<veritrail_ledger::policy::Policy>,
}

impl PinnedKey {
    /// Checks a checkpoint note against `--policy`, if given.
    ///
    /// # Errors
    /// [`CliError::Policy`] naming what the policy misses.
    pub(crate) fn check_policy(
        &self,
        note: &veritrail_ledger::note::Note,
        what: &str,
    ) -> Result<(), CliError> {
        match &self.policy {
            None => Ok(()),
            Some(policy) => veritrail_client::verify_policy(policy, note)
                .map(|_| ())
                .map_err(|source| CliError::Policy {
                    what: what.to_owned(),
                    source,
                }),
        }
    }
}

impl KeyArgs {
    /// The pinned key, if one was given.
    ///
    /// # Errors
    /// As [`parse_log_key`].
    pub(crate) fn optional(&self) -> Result<Option<PinnedKey>, CliError> {
        let Some(value) = &self.log_key else {
            return Ok(None);
        };
        let key = parse_log_key(value)?;
        let origin = self
            .origin
            .clone()
            .unwrap_or_else(|| key.name().as_str().to_owned());
        let policy = match &self.policy {
            None => None,
            Some(path) => {
                let text = read_capped(path, veritrail_ledger::policy::MAX_POLICY_SIZE)?;
                let text = String::from_utf8(text).map_err(|_| CliError::Usage {
                    message: format!("{} is not UTF-8 text", path.display()),
                    hint: "pass a tlog-policy file (docs/witnessing.md)".into(),
                })?;
                Some(text.parse().map_err(|e| CliError::Usage {
                    message: format!("{} is not a witness policy: {e}", path.display()),
                    hint: "fix the tlog-policy file (docs/witnessing.md)".into(),
                })?)
            }
        };
        Ok(Some(PinnedKey {
            key,
            origin,
            policy,
        }))
    }

    /// The pinned key, which `what` needs.
    ///
    /// # Errors
    /// [`CliError::Usage`] without `--log-key`; else as [`parse_log_key`].
    pub(crate) fn required(&self, what: &str) -> Result<PinnedKey, CliError> {
        self.optional()?.ok_or_else(|| CliError::Usage {
            message: format!("{what} needs the log's verifier key"),
            hint: "pass --log-key <name+id+key> (or a file holding it), or set VERITRAIL_LOG_KEY; `veritrail serve` prints the key at startup".into(),
        })
    }
}

/// Parses `--log-key`: a verifier key string, or a file whose content (or one of whose
/// lines, optionally after `verifier key:`) is one. Reads at most [`MAX_KEY_FILE`] bytes.
///
/// # Errors
/// [`CliError::Read`] for a file that cannot be read, [`CliError::Usage`] when neither the
/// value nor the file holds a log (Ed25519) verifier key.
fn parse_log_key(value: &str) -> Result<NoteVerifier, CliError> {
    let key = match value.trim().parse::<NoteVerifier>() {
        Ok(key) => key,
        Err(as_key) => {
            let path = Path::new(value);
            let text = match std::fs::File::open(path) {
                Ok(file) => {
                    let mut text = String::new();
                    file.take(MAX_KEY_FILE)
                        .read_to_string(&mut text)
                        .map_err(|source| CliError::Read {
                            path: path.to_owned(),
                            source,
                        })?;
                    text
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(CliError::Usage {
                        message: format!(
                            "--log-key {value:?} is neither a verifier key ({as_key}) nor a file"
                        ),
                        hint: "pass the key `veritrail serve` prints (name+id+base64), or the path of a file holding it".into(),
                    });
                }
                Err(source) => {
                    return Err(CliError::Read {
                        path: path.to_owned(),
                        source,
                    });
                }
            };
            text.lines()
                .map(|l| l.trim())
                .map(|l| l.strip_prefix("verifier key:").map_or(l, str::trim))
                .find_map(|l| l.parse::<NoteVerifier>().ok())
                .ok_or_else(|| CliError::Usage {
                    message: format!("{value} holds no verifier key"),
                    hint: "the file must hold a line name+id+base64, as `veritrail keygen` prints"
                        .into(),
                })?
        }
    };
    if key.signature_type() != SIG_TYPE_ED25519 {
        return Err(CliError::Usage {
            message: format!("--log-key {key} is a cosigner (witness) key, not a log key"),
            hint: "pass the log's own verifier key, as `veritrail serve` prints it".into(),
        });
    }
    Ok(key)
}

/// The trusted state and where evidence goes.
#[derive(Debug, clap::Args)]
pub(crate) struct StateArgs {
    /// Trusted state file: the latest checkpoint verified for this log, so that the next run
    /// detects a rollback or a fork. Created on first use.
    #[arg(long, value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,
    /// Where to write split-view evidence if the log contradicts itself. Default:
    /// `<state>.evidence.json` (or `veritrail.evidence.json` without --state).
    #[arg(long, value_name = "FILE")]
    pub(crate) evidence: Option<PathBuf>,
}

impl StateArgs {
    /// Loads the trusted state (empty without `--state` or when the file does not exist).
    ///
    /// # Errors
    /// [`CliError::Client`] for a damaged state file or one of another log.
    pub(crate) fn load(&self, pinned: &PinnedKey) -> Result<LogVerifier, CliError> {
        let verifier = match &self.state {
            Some(path) => LogVerifier::load(path, &pinned.origin, &pinned.key)
                .map_err(|e| client_error(ClientError::Verify(e), None))?,
            None => LogVerifier::new(pinned.origin.clone(), pinned.key.clone()),
        };
        Ok(match &pinned.policy {
            Some(policy) => verifier.with_policy(policy.clone()),
            None => verifier,
        })
    }

    /// The evidence file path.
    pub(crate) fn evidence_path(&self) -> PathBuf {
        match (&self.evidence, &self.state) {
            (Some(path), _) => path.clone(),
            (None, Some(state)) => sibling(state, "evidence.json"),
            (None, None) => PathBuf::from(DEFAULT_EVIDENCE),
        }
    }
}

/// Where proofs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Proofs {
    /// Computed here from the log's hash tiles (any C2SP tlog-tiles log).
    Tiles,
    /// Asked from the server's JSON proof API.
    Api,
}

impl From<Proofs> for ProofSource {
    fn from(proofs: Proofs) -> Self {
        match proofs {
            Proofs::Tiles => ProofSource::Tiles,
            Proofs::Api => ProofSource::Api,
        }
    }
}

/// Everything a verifying read needs.
#[derive(Debug, clap::Args)]
pub(crate) struct TrustArgs {
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    /// Where proofs come from: computed from the log's hash tiles, or asked from its API.
    #[arg(long, value_enum, default_value = "tiles")]
    pub(crate) proofs: Proofs,
}

impl TrustArgs {
    /// A verifying client whose trusted checkpoint is the log's latest one (verified, and
    /// saved to `--state`), and what the update concluded.
    ///
    /// # Errors
    /// [`CliError::Misbehaviour`] (split-view evidence written first) when the log's
    /// checkpoint does not verify; [`CliError::Client`] when it cannot be fetched.
    pub(crate) async fn latest(
        &self,
        pinned: &PinnedKey,
        server: &ServerArgs,
    ) -> Result<(VerifyingClient, Checkpoint, Update), CliError> {
        let verifier = self.state.load(pinned)?;
        let mut client = VerifyingClient::new(
            server.client()?,
            verifier,
            self.state.state.clone(),
            self.proofs.into(),
        );
        let evidence = self.state.evidence_path();
        let (checkpoint, update) = client
            .update()
            .await
            .map_err(|e| client_error(e, Some(&evidence)))?;
        Ok((client, checkpoint, update))
    }
}

/// An index beyond the verified tree is the caller's mistake, not the log's.
///
/// # Errors
/// [`CliError::Usage`] when `index >= size`.
pub(crate) fn check_covered(index: u64, size: u64) -> Result<(), CliError> {
    if index < size {
        return Ok(());
    }
    Err(CliError::Usage {
        message: format!("entry {index} is beyond the log's latest verified checkpoint (tree size {size})"),
        hint: "check the index; a just-appended entry is covered by the next checkpoint, retry in a moment".into(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use veritrail_ledger::note::{KeyName, NoteSigner};

    fn verifier() -> NoteVerifier {
        NoteSigner::from_seed(KeyName::new("audit.test/log").unwrap(), [7; 32]).verifier()
    }

    #[test]
    fn log_keys_come_from_the_argument_or_a_file() {
        let key = verifier();
        assert_eq!(parse_log_key(&key.to_string()).unwrap(), key);
        assert_eq!(parse_log_key(&format!(" {key}\n")).unwrap(), key);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("log.vkey");
        std::fs::write(&file, format!("{key}\n")).unwrap();
        assert_eq!(parse_log_key(file.to_str().unwrap()).unwrap(), key);
        // What `veritrail serve` prints on standard output works as a key file too.
        std::fs::write(
            &file,
            format!("veritrail listening on http://127.0.0.1:7800\norigin: audit.test/log\nverifier key: {key}\n"),
        )
        .unwrap();
        assert_eq!(parse_log_key(file.to_str().unwrap()).unwrap(), key);
        std::fs::write(&file, "no key here\n").unwrap();
        assert!(matches!(
            parse_log_key(file.to_str().unwrap()),
            Err(CliError::Usage { .. })
        ));
        assert!(matches!(
            parse_log_key(dir.path().join("missing").to_str().unwrap()),
            Err(CliError::Usage { .. })
        ));
        // A key with a wrong key ID is neither a key nor a file.
        let text = key.to_string();
        let (name, rest) = text.split_once('+').unwrap();
        let forged = format!("{name}+00000000{}", &rest[8..]);
        assert!(matches!(
            parse_log_key(&forged),
            Err(CliError::Usage { .. })
        ));
    }

    #[test]
    fn defaults_sit_beside_the_state_file() {
        let state = StateArgs {
            state: Some(PathBuf::from("/var/lib/audit/state.json")),
            evidence: None,
        };
        assert_eq!(
            state.evidence_path(),
            Path::new("/var/lib/audit/state.json.evidence.json")
        );
    }

    #[test]
    fn an_index_beyond_the_tree_is_a_usage_error() {
        assert!(check_covered(2, 3).is_ok());
        assert!(matches!(check_covered(3, 3), Err(CliError::Usage { .. })));
    }
}
