//! `veritrail bench fsync`: the disk's raw durable-write rate, the baseline that group commit
//! is measured against.
//!
//! One thread appends `--size` bytes to a scratch file in `--dir` and `fdatasync`s it, in a
//! loop, for `--duration` — exactly what one commit of one small entry costs without any
//! batching. The last line on standard output is machine-readable: `fsyncs_per_s=<n>`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cli::common::duration::parse_duration;
use crate::cli::common::error::CliError;

/// Arguments of `veritrail bench fsync`.
#[derive(Debug, clap::Args)]
pub(crate) struct FsyncArgs {
    /// Directory on the disk to measure (a scratch file is created and removed there).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// How long to measure.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    duration: Duration,
    /// Bytes appended before each fdatasync.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=(1 << 24)))]
    size: u32,
}

/// Runs the probe and prints `fsyncs_per_s=<n>`.
pub(crate) fn run(args: &FsyncArgs) -> Result<(), CliError> {
    let path = args
        .dir
        .join(format!(".veritrail-fsync-probe-{}", std::process::id()));
    let write_error = |source| CliError::Write {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(write_error)?;
    let block = vec![0x5au8; args.size as usize];
    let started = Instant::now();
    let mut count = 0u64;
    let result = loop {
        if started.elapsed() >= args.duration {
            break Ok(());
        }
        if let Err(e) = file.write_all(&block).and_then(|()| file.sync_data()) {
            break Err(e);
        }
        count += 1;
    };
    let elapsed = started.elapsed();
    drop(file);
    let removed = std::fs::remove_file(&path);
    result.map_err(write_error)?;
    removed.map_err(write_error)?;
    let rate = count as f64 / elapsed.as_secs_f64();
    println!(
        "{count} appends of {} bytes, each followed by fdatasync, in {:.2} s ({:.3} ms each)",
        args.size,
        elapsed.as_secs_f64(),
        1000.0 / rate
    );
    println!("fsyncs_per_s={rate:.0}");
    Ok(())
}
