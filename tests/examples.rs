//! The examples run, end to end: `cargo test` builds them beside the test binaries, and each
//! must finish with its own checks passed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The example binary `name`, built by `cargo test` into `target/<profile>/examples/`.
fn example(name: &str) -> PathBuf {
    // This test runs as target/<profile>/deps/examples-<hash>.
    let deps = std::env::current_exe().unwrap();
    let profile = deps.parent().and_then(|d| d.parent()).unwrap();
    let path = profile.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

#[test]
fn the_healthcare_agent_example_passes_its_own_audit() {
    let started = Instant::now();
    let output = Command::new(example("healthcare_agent"))
        .env_remove("VERITRAIL_MASTER_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    for expected in [
        // The registry classified the tool call the agent said nothing about.
        "tool_invoked               classification=restricted   compliance=[\"hipaa\"]",
        "scrubbed=[\"email\",\"mrn\"] payloads=prompt",
        "payload \"prompt\" opens its commitment",
        "the chain of triage-2026-03-01-0042 is complete and closed",
        "410 the payload was erased by the erasure record at index ",
        "from before the erasure (Grew",
        "monitor: replayed ",
        "auditor read the audit trail ",
        "all checks passed",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}
