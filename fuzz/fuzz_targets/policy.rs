//! Witness policies: `Policy::parse` (parser) and `Policy::verify` (quorum evaluator).
//!
//! The input is parsed twice: raw, and after a prefix listing the fixed log and the fixed
//! witness (as `w`), so that group and quorum lines that use them are reached.
//!
//! Asserts:
//! - parsing never panics; an error's line number is a line of the text; whatever parses
//!   respects the limits, gives every group a threshold in 1..=members, defines every group
//!   member and the quorum on an earlier line, lists each name as a group member at most once
//!   in the whole policy, never defines `none`, has log keys of type 0x01 and witness keys of
//!   type 0x04, all distinct;
//! - whatever parses, followed by a new group listing a name some group already lists, is
//!   refused with `DuplicateMember` on that line; followed instead by a new group holding the
//!   last group (listed nowhere) it parses, unless that makes the nesting too deep;
//! - whatever parses verifies a fixed checkpoint, signed by the fixed log and cosigned by the
//!   fixed witness, exactly as an independent reference says: `UnknownLog` when no log has its
//!   origin, `LogSignature` (`NoVerifiedSignature`) when none of those is the fixed log key,
//!   else `Ok` when the quorum, evaluated recursively over the group names with only the
//!   fixed witness's policy name cosigning, is met, else `QuorumNotMet` naming exactly the
//!   witnesses the quorum involves that did not cosign; with the clock one second before the
//!   cosignature (skew 0) the witness does not count and is reported as from the future.
#![no_main]

use std::collections::HashSet;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use veritrail_fuzz::{LOG, LOG_ORIGIN, WITNESS};
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::{NoteError, SIG_TYPE_COSIGNATURE, SIG_TYPE_ED25519};
use veritrail_ledger::policy::{
    MAX_GROUP_MEMBERS, MAX_GROUPS, MAX_LOGS, MAX_POLICY_SIZE, MAX_WITNESSES, NONE, Policy,
    PolicyError, VerifyError,
};
use veritrail_ledger::{TreeHead, leaf_hash};

const TIMESTAMP: u64 = 1_700_000_000;

/// A checkpoint of the fixed log, signed by it and cosigned by the fixed witness.
static NOTE: LazyLock<veritrail_ledger::note::Note> = LazyLock::new(|| {
    let checkpoint =
        Checkpoint::new(LOG_ORIGIN, TreeHead::new(1, leaf_hash(b"entry"))).expect("valid origin");
    let mut note = checkpoint.sign(&LOG).expect("signable");
    let cosignature = WITNESS
        .sign(note.text(), TIMESTAMP)
        .expect("valid text and time");
    note.add_signature(cosignature).expect("second signature");
    note
});

/// The line an error names, if it names one.
fn error_line(error: &PolicyError) -> Option<usize> {
    match *error {
        PolicyError::TooLarge { .. } | PolicyError::MissingQuorum => None,
        PolicyError::ControlCharacter { line, .. }
        | PolicyError::UnknownKeyword { line, .. }
        | PolicyError::MissingItems { line, .. }
        | PolicyError::TooManyItems { line, .. }
        | PolicyError::InvalidKey { line, .. }
        | PolicyError::WrongKeyType { line, .. }
        | PolicyError::DuplicateKey { line, .. }
        | PolicyError::DuplicateKeyId { line, .. }
        | PolicyError::InvalidUrl { line, .. }
        | PolicyError::ReservedName { line }
        | PolicyError::DuplicateName { line, .. }
        | PolicyError::UnknownName { line, .. }
        | PolicyError::DuplicateMember { line, .. }
        | PolicyError::InvalidThreshold { line, .. }
        | PolicyError::ThresholdOutOfRange { line, .. }
        | PolicyError::DuplicateQuorum { line, .. }
        | PolicyError::TooManyLogs { line, .. }
        | PolicyError::TooManyWitnesses { line, .. }
        | PolicyError::TooManyGroups { line, .. }
        | PolicyError::TooManyMembers { line, .. }
        | PolicyError::TooDeep { line, .. } => Some(line),
        ref other => panic!("undocumented error {other:?}"),
    }
}

fn check_structure(policy: &Policy) {
    assert!(policy.logs().len() <= MAX_LOGS);
    assert!(policy.witnesses().len() <= MAX_WITNESSES);
    assert!(policy.groups().len() <= MAX_GROUPS);
    let mut keys = HashSet::new();
    for log in policy.logs() {
        assert_eq!(log.verifier().signature_type(), SIG_TYPE_ED25519);
        assert!(keys.insert(*log.verifier().public_key().as_bytes()));
        assert_eq!(
            policy.logs_for(log.origin()).next(),
            policy.log_for(log.origin())
        );
    }
    let mut defined: HashSet<&str> = HashSet::new();
    // Every name listed as a group member, in any group: each at most once.
    let mut members_seen: HashSet<&str> = HashSet::new();
    for witness in policy.witnesses() {
        assert_eq!(witness.verifier().signature_type(), SIG_TYPE_COSIGNATURE);
        assert!(keys.insert(*witness.verifier().public_key().as_bytes()));
        assert_ne!(witness.name(), NONE);
        assert!(defined.insert(witness.name()));
        assert_eq!(policy.witness(witness.name()), Some(witness));
    }
    for group in policy.groups() {
        let members = group.members();
        assert!(!members.is_empty() && members.len() <= MAX_GROUP_MEMBERS);
        assert!((1..=members.len()).contains(&group.threshold()));
        for member in members {
            assert!(
                defined.contains(member.as_str()),
                "{member} used before definition"
            );
            assert!(
                members_seen.insert(member.as_str()),
                "{member} listed as a group member twice"
            );
        }
        assert_ne!(group.name(), NONE);
        assert!(defined.insert(group.name()));
    }
    if let Some(quorum) = policy.quorum() {
        assert!(defined.contains(quorum));
    }
    for (witness, url) in policy.witness_urls() {
        assert_eq!(witness.url(), Some(url));
        assert!(url.starts_with("http://") || url.starts_with("https://"));
    }
}

/// The reference evaluator: plain recursion over names. Each name is a member of at most one
/// group, so the groups form a forest: from the quorum, the recursion reaches every name at
/// most once (asserted), and a witness contributes along one path only.
struct Reference<'a> {
    policy: &'a Policy,
    cosigned: &'a HashSet<&'a str>,
    reached: HashSet<&'a str>,
}

impl<'a> Reference<'a> {
    fn met(&mut self, name: &'a str) -> bool {
        assert!(self.reached.insert(name), "{name} reached along two paths");
        let policy = self.policy;
        match policy.groups().iter().find(|g| g.name() == name) {
            Some(group) => {
                // `filter` + `count` evaluate every member: the whole tree is walked.
                let count = group
                    .members()
                    .iter()
                    .filter(|member| self.met(member.as_str()))
                    .count();
                count >= group.threshold()
            }
            None => self.cosigned.contains(name),
        }
    }
}

/// Witness names the quorum involves, directly or through groups (each reached once).
fn involved<'a>(policy: &'a Policy, name: &'a str, out: &mut HashSet<&'a str>) {
    match policy.groups().iter().find(|g| g.name() == name) {
        Some(group) => {
            for member in group.members() {
                involved(policy, member, out);
            }
        }
        None => {
            assert!(out.insert(name), "{name} reached along two paths");
        }
    }
}

/// Appends a group to a policy that parsed: listing a name some group already lists, it is
/// refused with `DuplicateMember` on its line; holding only the last group (which no group
/// lists), it parses, unless that nests too deep.
fn check_membership_rule(text: &str, policy: &Policy) {
    let (Some(last), true) = (policy.groups().last(), policy.groups().len() < MAX_GROUPS) else {
        return;
    };
    let defined = |name: &str| {
        policy.witness(name).is_some() || policy.groups().iter().any(|g| g.name() == name)
    };
    let mut name = String::from("again");
    while defined(&name) {
        name.push('_');
    }
    let line = text.split('\n').count() + 1;
    let listed = policy.groups().iter().flat_map(|g| g.members()).next();
    if let Some(again) = listed {
        let extended = format!("{text}\ngroup {name} any {again}\n");
        if extended.len() <= MAX_POLICY_SIZE {
            assert_eq!(
                Policy::parse(&extended),
                Err(PolicyError::DuplicateMember {
                    line,
                    name: again.clone(),
                })
            );
        }
    }
    let extended = format!("{text}\ngroup {name} any {}\n", last.name());
    if extended.len() <= MAX_POLICY_SIZE {
        match Policy::parse(&extended) {
            Ok(more) => assert_eq!(more.groups().len(), policy.groups().len() + 1),
            Err(PolicyError::TooDeep { line: at, .. }) => assert_eq!(at, line),
            Err(other) => panic!("a new group holding the last one refused: {other:?}"),
        }
    }
}

fn check_verify(policy: &Policy, now: u64) {
    let got = policy.verify(&NOTE, now, 0);
    let log_keys: Vec<_> = policy.logs_for(LOG_ORIGIN).map(|l| l.verifier()).collect();
    if log_keys.is_empty() {
        assert_eq!(
            got,
            Err(VerifyError::UnknownLog {
                origin: LOG_ORIGIN.to_owned()
            })
        );
        return;
    }
    if !log_keys.contains(&&LOG.verifier()) {
        assert_eq!(
            got,
            Err(VerifyError::LogSignature {
                origin: LOG_ORIGIN.to_owned(),
                source: NoteError::NoVerifiedSignature { signatures: 2 },
            })
        );
        return;
    }
    // The policy names of the fixed witness (at most one: keys are unique).
    let listed: Vec<&str> = policy
        .witnesses()
        .iter()
        .filter(|w| *w.verifier() == WITNESS.verifier())
        .map(|w| w.name())
        .collect();
    assert!(listed.len() <= 1);
    let in_time = now >= TIMESTAMP;
    let cosigned: HashSet<&str> = if in_time {
        listed.iter().copied().collect()
    } else {
        HashSet::new()
    };
    let future: Vec<String> = if in_time {
        Vec::new()
    } else {
        listed.iter().map(|&n| n.to_owned()).collect()
    };
    let quorum = policy.quorum();
    let met = quorum.is_none_or(|q| {
        Reference {
            policy,
            cosigned: &cosigned,
            reached: HashSet::new(),
        }
        .met(q)
    });
    match (quorum, met) {
        (_, true) => {
            let verified = got.expect("the reference says the quorum is met");
            assert_eq!(verified.log, LOG.verifier());
            assert_eq!(verified.checkpoint.origin, LOG_ORIGIN);
            let names: Vec<&str> = verified
                .cosigners
                .iter()
                .map(|c| c.witness.as_str())
                .collect();
            assert_eq!(names.len(), cosigned.len());
            assert!(names.iter().all(|n| cosigned.contains(n)));
            assert!(verified.cosigners.iter().all(|c| c.timestamp == TIMESTAMP));
            let late: Vec<String> = verified.future.iter().map(|c| c.witness.clone()).collect();
            assert_eq!(late, future);
        }
        (Some(q), false) => {
            let mut reached = HashSet::new();
            involved(policy, q, &mut reached);
            let missing: Vec<String> = policy
                .witnesses()
                .iter()
                .map(|w| w.name())
                .filter(|n| reached.contains(n) && !cosigned.contains(n))
                .map(str::to_owned)
                .collect();
            assert_eq!(
                got,
                Err(VerifyError::QuorumNotMet {
                    quorum: q.to_owned(),
                    missing,
                    future,
                })
            );
        }
        (None, false) => unreachable!("quorum none is always met"),
    }
}

fn check(text: &str) {
    match Policy::parse(text) {
        Ok(policy) => {
            assert_eq!(text.parse::<Policy>().as_ref(), Ok(&policy));
            check_structure(&policy);
            check_membership_rule(text, &policy);
            check_verify(&policy, TIMESTAMP);
            check_verify(&policy, TIMESTAMP - 1);
        }
        Err(PolicyError::TooLarge { size, max }) => {
            assert_eq!((size, max), (text.len(), MAX_POLICY_SIZE));
            assert!(size > max);
        }
        Err(error) => {
            if let Some(line) = error_line(&error) {
                assert!((1..=text.split('\n').count()).contains(&line), "{error:?}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    check(text);
    check(&format!(
        "log {}\nwitness w {}\n{text}",
        LOG.verifier(),
        WITNESS.verifier()
    ));
});
