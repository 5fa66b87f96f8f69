//! The `veritrail` binary, run as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::{Command, Output, Stdio};

use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::NoteVerifier;
use veritrail_ledger::proof::verify_inclusion;
use veritrail_ledger::store::{self, Backend};
use veritrail_ledger::{Ledger, leaf_hash};

fn veritrail(dir: &std::path::Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_veritrail"))
        .current_dir(dir)
        .args(args)
        .env_remove("VERITRAIL_DATA")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut input, stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn keygen_writes_a_private_key_with_mode_0600_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = veritrail(
        dir.path(),
        &["keygen", "--name", "audit.example.com/log", "--out", "k"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let verifier: NoteVerifier = text(&out.stdout).trim().parse().unwrap();
    assert_eq!(verifier.name().as_str(), "audit.example.com/log");
    let key = std::fs::read_to_string(dir.path().join("k")).unwrap();
    assert!(key.starts_with("PRIVATE+KEY+audit.example.com/log+"));
    let signer: veritrail_ledger::note::NoteSigner = key.trim().parse().unwrap();
    assert_eq!(signer.verifier(), verifier);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("k"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = veritrail(
        dir.path(),
        &["keygen", "--name", "other", "--out", "k"],
        None,
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("k")).unwrap(),
        key,
        "key untouched"
    );
    let bad = veritrail(
        dir.path(),
        &["keygen", "--name", "has space", "--out", "k2"],
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(!dir.path().join("k2").exists());
}

#[test]
fn log_append_prints_a_checkpoint_that_verifies_and_covers_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.json"), br#"{"event":"prompt_changed"}"#).unwrap();
    let origin = "clinic.example/audit";
    let out = veritrail(
        dir.path(),
        &["log", "append", "--origin", origin, "a.json", "-"],
        Some(b"from stdin"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let (indices, note) = stdout.split_once(&format!("{origin}\n")).unwrap();
    assert!(indices.starts_with("index 0 leaf_hash "), "{indices}");
    assert!(indices.contains("index 1 leaf_hash "), "{indices}");
    let verifier_line = text(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("verifier key: ").map(str::to_owned))
        .unwrap();
    let verifier: NoteVerifier = verifier_line.parse().unwrap();
    let note = format!("{origin}\n{note}");
    let (checkpoint, _) = Checkpoint::verify_signed(note.as_bytes(), origin, &verifier).unwrap();
    assert_eq!(checkpoint.tree.size, 2);

    // The store holds exactly those entries, provably.
    let ledger = Ledger::open(
        store::open(Backend::Redb, &dir.path().join("veritrail-data")).unwrap(),
        origin,
        veritrail_ledger_signer(&dir.path().join("veritrail-data/log.key")),
    )
    .unwrap();
    for (index, entry) in [&br#"{"event":"prompt_changed"}"#[..], b"from stdin"]
        .iter()
        .enumerate()
    {
        assert_eq!(ledger.entry(index as u64).unwrap(), *entry);
        let proof = ledger.inclusion_proof(index as u64, 2).unwrap();
        verify_inclusion(&leaf_hash(entry), index as u64, &checkpoint.tree, &proof).unwrap();
    }
    drop(ledger);

    let verify = veritrail(dir.path(), &["log", "verify"], None);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    assert!(text(&verify.stdout).contains("tree_size 2\n"));
    assert!(text(&verify.stdout).ends_with("ok\n"));
}

fn veritrail_ledger_signer(path: &std::path::Path) -> veritrail_ledger::note::NoteSigner {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn log_append_rejects_an_oversized_entry_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok"), b"ok").unwrap();
    std::fs::write(dir.path().join("big"), vec![b'x'; 65_536]).unwrap();
    let out = veritrail(dir.path(), &["log", "append", "ok", "big"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("at most 65535"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("hint:"));
    assert!(
        !dir.path().join("veritrail-data").exists(),
        "nothing was created"
    );
}

#[test]
fn log_verify_refuses_a_tampered_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("veritrail-data");
    let out = veritrail(
        dir.path(),
        &["log", "append", "--origin", "x.example/log", "-"],
        Some(b"one"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Leaf 0 in the level-0 tile file now says another entry was logged.
    std::fs::write(data.join("log").join("level-0"), leaf_hash(b"two").0).unwrap();
    // The store does not match its own hashes: a verification failure, exit code 1 (2 would
    // mean "could not check").
    let verify = veritrail(dir.path(), &["log", "verify"], None);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify.stderr));
    let stderr = text(&verify.stderr);
    assert!(
        stderr.contains("error: log verification failed: ") && stderr.contains("root mismatch"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\nhint: the store does not match its own hashes"),
        "{stderr}"
    );
    assert!(
        !text(&verify.stdout).contains("ok"),
        "{}",
        text(&verify.stdout)
    );
}

#[test]
fn log_verify_that_cannot_open_the_store_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    // A data directory holding a file where the store should be: nothing can be checked.
    std::fs::create_dir(dir.path().join("veritrail-data")).unwrap();
    std::fs::write(
        dir.path().join("veritrail-data/ledger.redb"),
        b"not a redb database",
    )
    .unwrap();
    let verify = veritrail(dir.path(), &["log", "verify"], None);
    let stderr = text(&verify.stderr);
    assert_eq!(verify.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("\nhint: "), "{stderr}");
}

#[test]
fn absurd_durations_are_usage_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &[
            "serve",
            "--no-auth",
            "--listen",
            "127.0.0.1:0",
            "--checkpoint-interval",
            "999999999999999h",
        ][..],
        &[
            "serve",
            "--no-auth",
            "--listen",
            "127.0.0.1:0",
            "--checkpoint-republish",
            "5000000000000h",
        ],
        &[
            "serve",
            "--no-auth",
            "--listen",
            "127.0.0.1:0",
            "--idempotency-window",
            "18446744073709551615ms",
        ],
        &["monitor", "--once", "--interval", "999999999999999h"],
        &["checkpoint", "--timeout", "99999999999999999999h"],
        &["bench", "append", "--duration", "9000h"],
    ] {
        let out = veritrail(dir.path(), args, None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("is too long"), "{args:?}: {stderr}");
        assert!(stderr.contains("hint: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    assert!(
        !dir.path().join("veritrail-data").exists(),
        "nothing was created"
    );
}

#[test]
fn serve_creates_an_owner_only_data_directory() {
    use std::io::BufRead as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("veritrail-data");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_veritrail"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env_remove("VERITRAIL_DATA")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("serve.err")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut printed = String::new();
    let started = loop {
        match rx.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(line) if line.starts_with("tree size: ") => break true,
            Ok(line) => printed.push_str(&line),
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(started, "veritrail serve did not start");
    // The payload master key was generated, and is neither printed nor logged.
    let master = std::fs::read_to_string(data.join("payload-master.key")).unwrap();
    let log = std::fs::read_to_string(dir.path().join("serve.err")).unwrap();
    assert!(log.contains("generated the payload master key"), "{log}");
    for output in [&printed, &log] {
        assert!(
            !output.contains(master.trim()),
            "the master key leaked: {output}"
        );
    }
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut files = Vec::new();
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    for expected in [
        "ledger.redb",
        "log.key",
        "log.vkey",
        "auth.toml",
        "admin.token",
        "entries",
        "payload-master.key",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} missing: {files:?}"
        );
    }
}

#[test]
fn a_data_directory_open_to_other_users_is_refused_until_fixed() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let out = veritrail(
        dir.path(),
        &["log", "append", "--data", "d"],
        Some(b"one entry"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = dir.path().join("d");
    let set = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set(&data, 0o755);
    set(&data.join("ledger.redb"), 0o644);
    set(&data.join("log").join("entries"), 0o640);

    let refused = veritrail(dir.path(), &["log", "verify", "--data", "d"], None);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("3 path(s)"), "{stderr}");
    assert!(
        stderr.contains("readable or writable by other users"),
        "{stderr}"
    );
    assert!(stderr.contains("--fix-permissions"), "{stderr}");
    // Refusing changed nothing.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data.join("ledger.redb")), 0o644);

    let fixed = veritrail(
        dir.path(),
        &["log", "verify", "--data", "d", "--fix-permissions"],
        None,
    );
    assert!(
        fixed.status.success(),
        "{}",
        String::from_utf8_lossy(&fixed.stderr)
    );
    assert!(String::from_utf8_lossy(&fixed.stderr).contains("fixed permissions"));
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("ledger.redb")), 0o600);
    assert_eq!(mode(&data.join("log").join("entries")), 0o600);
    let again = veritrail(dir.path(), &["log", "verify", "--data", "d"], None);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn admin_reindex_rebuilds_the_record_index_offline() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let out = veritrail(
        dir.path(),
        &["log", "append", "--origin", "clinic.example/audit", "-"],
        Some(b"a raw entry"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let index = dir.path().join("veritrail-data/record-index.redb");
    std::fs::write(&index, b"damaged").unwrap();
    std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = veritrail(dir.path(), &["admin", "reindex"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("indexed 1 entries in "),
        "{}",
        text(&out.stdout)
    );
    let mode = std::fs::metadata(&index).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_ne!(std::fs::read(&index).unwrap(), b"damaged");
}
