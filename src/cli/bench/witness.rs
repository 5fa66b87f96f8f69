//! `veritrail bench witness`: durable `add-checkpoint` requests per second on a running
//! `veritrail witness serve`.
//!
//! It makes `--logs` fresh logs (Ed25519 keys named `bench-<run>-<n>.example/log`), trusts them
//! by writing their key files into the witness's `--data` directory (as `witness add-log`
//! does; the running witness picks them up), and gives each log one client that grows its tree
//! by one leaf per request: `old n-1`, the consistency proof to `n`, the checkpoint of size `n`
//! signed by the log. Every answer must be a `200` with a cosignature by the witness. Requests
//! of one log are sequential (the witness serialises an origin anyway); logs run in parallel,
//! which is what the witness's group commit is for. The last line on standard output is
//! machine-readable: `checkpoints_per_s=<n> p50_ms=<x> p99_ms=<y>`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::hash::{Hash, TreeHead, leaf_hash};
use veritrail_ledger::note::{KeyName, NoteSigner};
use veritrail_ledger::tree::{CompactRange, HashTileReader, TreeError, consistency_proof};
use veritrail_ledger::witness::{AddCheckpoint, parse_cosignatures};

use crate::cli::bench::report::{merge_latencies, print_rate};
use crate::cli::common::error::CliError;
use crate::cli::common::runtime::runtime;

/// Arguments of `veritrail bench witness`.
#[derive(Debug, clap::Args)]
pub(crate) struct WitnessArgs {
    /// Base URL (the submission prefix) of a running `veritrail witness serve`.
    #[arg(long, default_value = "http://127.0.0.1:7380")]
    url: String,
    /// The witness's data directory: the bench's logs are trusted by writing their keys there.
    #[arg(long)]
    data: PathBuf,
    /// Logs, one client each.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    logs: u32,
    /// Requests in all (split evenly between the logs).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    requests: u64,
}

/// Hash tiles kept in memory: one row of node hashes per tree level (a tile of level `L` holds
/// the hashes of tree level `8 L`).
struct Rows(Vec<Vec<Hash>>);

impl HashTileReader for Rows {
    type Error = TreeError;

    fn read_hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>, TreeError> {
        let short = |got| TreeError::ShortTile {
            level,
            index,
            got,
            want: usize::from(width),
        };
        let row = self.0.get(usize::from(level) * 8).ok_or(short(0))?;
        let start = usize::try_from(index.saturating_mul(256)).unwrap_or(usize::MAX);
        let tile = row.get(start..).unwrap_or_default();
        let tile = tile.get(..tile.len().min(256)).unwrap_or_default();
        if tile.len() < usize::from(width) {
            return Err(short(tile.len()));
        }
        Ok(tile.to_vec())
    }
}

/// The roots of the trees of 1..=`sizes` leaves, and the consistency proof from each size to
/// the next (leaf `i` is the hash of `i` as 8 big-endian bytes).
fn trees(sizes: u64) -> Result<(Vec<Hash>, Vec<Vec<Hash>>), TreeError> {
    let mut range = CompactRange::new();
    let mut rows: Vec<Vec<Hash>> = Vec::new();
    let mut roots = vec![Hash::empty_root()];
    for i in 0..sizes {
        range.append(leaf_hash(&i.to_be_bytes()), |level, _index, hash| {
            let level = level as usize;
            if rows.len() <= level {
                rows.resize(level + 1, Vec::new());
            }
            if let Some(row) = rows.get_mut(level) {
                row.push(*hash);
            }
        });
        roots.push(range.root());
    }
    let reader = Rows(rows);
    let mut proofs = vec![Vec::new(), Vec::new()];
    for new in 2..=sizes {
        proofs.push(consistency_proof(&reader, new - 1, new)?);
    }
    Ok((roots, proofs))
}

/// Runs the load and prints the rate and latency percentiles.
///
/// # Errors
/// [`CliError::LoadGenerator`] when a log cannot be made or trusted, or a request fails or is
/// not answered with a cosignature.
pub(crate) fn run(args: &WitnessArgs) -> Result<(), CliError> {
    type Boxed = Box<dyn std::error::Error + Send + Sync>;
    let failed = |what: &'static str| move |e: Boxed| CliError::LoadGenerator { what, source: e };
    let per_log = args.requests.div_ceil(u64::from(args.logs));
    let (roots, proofs) =
        trees(per_log).map_err(|e| failed("cannot build the trees")(Box::new(e)))?;
    let (roots, proofs) = (Arc::new(roots), Arc::new(proofs));
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut signers = Vec::new();
    for n in 0..args.logs {
        let name = KeyName::new(format!("bench-{run:x}-{n}.example/log"))
            .map_err(|e| failed("cannot name a log")(Box::new(e)))?;
        let signer =
            NoteSigner::generate(name).map_err(|e| failed("cannot make a log key")(Box::new(e)))?;
        veritrail_witness::logs::add_log(&args.data, &signer.verifier().to_string())
            .map_err(|e| failed("cannot trust a log in --data")(Box::new(e)))?;
        signers.push(signer);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| failed("cannot build the HTTP client")(Box::new(e)))?;
    let url = format!("{}/add-checkpoint", args.url.trim_end_matches('/'));
    let started = Instant::now();
    let histogram = runtime()?.block_on(async {
        let tasks: Vec<_> = signers
            .into_iter()
            .map(|signer| {
                let (client, url, roots, proofs) =
                    (client.clone(), url.clone(), roots.clone(), proofs.clone());
                tokio::spawn(async move {
                    let mut histogram = Histogram::<u64>::new(3)?;
                    for size in 1..=per_log {
                        let root = *roots.get(size as usize).ok_or("no root")?;
                        let checkpoint =
                            Checkpoint::new(signer.name().as_str(), TreeHead::new(size, root))?
                                .sign(&signer)?;
                        let body = AddCheckpoint {
                            old: size - 1,
                            proof: proofs.get(size as usize).cloned().unwrap_or_default(),
                            checkpoint,
                        }
                        .to_bytes();
                        let sent = Instant::now();
                        let answer = client.post(&url).body(body).send().await?;
                        let status = answer.status();
                        let bytes = answer.bytes().await?;
                        if !status.is_success() {
                            return Err(format!(
                                "status {status}: {}",
                                String::from_utf8_lossy(&bytes)
                            )
                            .into());
                        }
                        parse_cosignatures(&bytes)?;
                        histogram.record(sent.elapsed().as_micros() as u64)?;
                    }
                    Ok::<_, Boxed>(histogram)
                })
            })
            .collect();
        merge_latencies(tasks).await
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{} add-checkpoint requests from {} logs ({per_log} each, growing by one leaf) in {elapsed:.2} s",
        histogram.len(),
        args.logs
    );
    print_rate("checkpoints_per_s", &histogram, elapsed);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use veritrail_ledger::proof::verify_consistency;

    #[test]
    fn the_trees_proofs_verify() {
        let (roots, proofs) = trees(300).unwrap();
        for new in 2..=300u64 {
            verify_consistency(
                &TreeHead::new(new - 1, roots[new as usize - 1]),
                &TreeHead::new(new, roots[new as usize]),
                &proofs[new as usize],
            )
            .unwrap();
        }
    }
}
