//! C2SP signed notes and checkpoints from `vectors/notes`, checked against the published keys
//! and the expectations in `vectors/README.md`.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::fs;

use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::{Note, NoteError, NoteSigner, NoteVerifier};

const C2SP_KEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const PETER_KEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const SUMDB_KEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
const PETER_PRIVATE_KEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

/// What `vectors/README.md` says about each note: its verifier key and expected outcome.
fn expectations() -> BTreeMap<&'static str, (&'static str, Result<(), NoteError>)> {
    BTreeMap::from([
        ("c2sp.note", (C2SP_KEY, Ok(()))),
        (
            "c2sp-bad.note",
            (
                C2SP_KEY,
                Err(NoteError::InvalidSignature {
                    name: "example.com/foo".to_owned(),
                    key_id: 0x530d903a,
                }),
            ),
        ),
        ("peter.note", (PETER_KEY, Ok(()))),
        ("sumdb.note", (SUMDB_KEY, Ok(()))),
    ])
}

fn read_note(file: &str) -> Vec<u8> {
    fs::read(crate::vectors_dir().join("notes").join(file)).unwrap()
}

/// Parses and verifies one vector file; returns a failure message or nothing.
fn check_note(file: &str, key: &str, want: &Result<(), NoteError>) -> Option<String> {
    let verifier: NoteVerifier = match key.parse() {
        Ok(v) => v,
        Err(e) => return Some(format!("{file}: verifier key does not parse: {e:?}")),
    };
    let bytes = read_note(file);
    let note = match Note::from_bytes(&bytes) {
        Ok(note) => note,
        Err(e) => return Some(format!("{file}: does not parse: {e:?}")),
    };
    if note.to_bytes() != bytes {
        return Some(format!("{file}: re-encoding differs from the file"));
    }
    let got = note.verify(std::slice::from_ref(&verifier)).map(|_| ());
    (got != *want).then(|| format!("{file}: got {got:?}, want {want:?}"))
}

#[test]
fn every_note_vector_verifies_as_documented() {
    let expected = expectations();
    let mut failures = Vec::new();
    let mut seen = 0;
    for entry in fs::read_dir(crate::vectors_dir().join("notes")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        seen += 1;
        match expected.get(name.as_str()) {
            Some((key, want)) => failures.extend(check_note(&name, key, want)),
            None => failures.push(format!("{name}: no expectation in vectors/README.md")),
        }
    }
    if seen != expected.len() {
        failures.push(format!(
            "found {seen} note files, expected {}",
            expected.len()
        ));
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn unknown_keys_are_ignored_and_do_not_verify() {
    let peter: NoteVerifier = PETER_KEY.parse().unwrap();
    let c2sp: NoteVerifier = C2SP_KEY.parse().unwrap();
    let note = Note::from_bytes(&read_note("c2sp.note")).unwrap();
    assert_eq!(
        note.verify(std::slice::from_ref(&peter)),
        Err(NoteError::NoVerifiedSignature { signatures: 1 })
    );
    // With both keys known, only the matching one counts.
    let verified = note.verify(&[peter, c2sp]).unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].name().as_str(), "example.com/foo");
}

#[test]
fn signing_peter_note_reproduces_the_file() {
    let bytes = read_note("peter.note");
    let published = Note::from_bytes(&bytes).unwrap();
    let signer: NoteSigner = PETER_PRIVATE_KEY.parse().unwrap();
    let mut note = Note::new(published.text()).unwrap();
    note.add_signature(signer.sign(note.text())).unwrap();
    assert_eq!(
        String::from_utf8(note.to_bytes()).unwrap(),
        String::from_utf8(bytes).unwrap()
    );
}

#[test]
fn key_strings_round_trip() {
    let mut failures = Vec::new();
    for key in [C2SP_KEY, PETER_KEY, SUMDB_KEY] {
        match key.parse::<NoteVerifier>() {
            Ok(v) if v.to_string() == key => {}
            other => failures.push(format!("{key}: {other:?}")),
        }
    }
    let signer: NoteSigner = PETER_PRIVATE_KEY.parse().unwrap();
    if signer.to_private_key_string() != PETER_PRIVATE_KEY {
        failures.push(format!(
            "private key re-encodes as {}",
            signer.to_private_key_string()
        ));
    }
    if signer.verifier().to_string() != PETER_KEY {
        failures.push(format!("private key's verifier is {}", signer.verifier()));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn sumdb_note_is_a_production_checkpoint() {
    let verifier: NoteVerifier = SUMDB_KEY.parse().unwrap();
    let bytes = read_note("sumdb.note");
    let (checkpoint, note) =
        Checkpoint::verify_signed(&bytes, "go.sum database tree", &verifier).unwrap();
    assert_eq!(checkpoint.tree.size, 6476701);
    assert_eq!(
        checkpoint.tree.root.to_base64(),
        "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk="
    );
    assert!(checkpoint.extensions.is_empty());
    assert_eq!(checkpoint.to_text(), note.text());
}
