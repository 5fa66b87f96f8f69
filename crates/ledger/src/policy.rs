//! Witness trust policies, [tlog-policy](https://c2sp.org/tlog-policy): which logs are trusted
//! and which witnesses must have cosigned a checkpoint before it is believed.
//!
//! A policy is a line-based text file:
//!
//! ```text
//! log <vkey> [<url>]                      the vkey's name is the log's origin
//! witness <name> <vkey> [<url>]           url: the witness's tlog-witness submission prefix
//! group <name> all|any|<k> <member>...    k of the n members must have witnessed
//! quorum <name>|none                      exactly once
//! ```
//!
//! A checkpoint is valid under the policy if it is signed by one of the listed logs and the
//! quorum is met by valid cosignatures ([tlog-cosignature](crate::cosignature)) over that exact
//! checkpoint. A group is met when at least `k` of its members are (`any` is `k = 1`, `all` is
//! `k = n`); a witness is met when its cosignature verifies.
//!
//! In scope: a total, size-bounded parser ([`Policy::parse`]) and the evaluator
//! ([`Policy::verify`]). The rules enforced while parsing:
//!
//! - items are separated by ASCII spaces and tabs; a `#` starts a comment wherever it appears
//!   on a line (as in the Sigsum implementation; the C2SP text only mentions whole-line
//!   comments), so a URL cannot hold a `#` fragment; the only control characters allowed
//!   anywhere are tab and newline; the last line need not end in a newline;
//! - log keys are Ed25519 note keys (type 0x01) named after the log's origin; witness keys are
//!   cosignature keys (type 0x04); no public key may appear twice, whether under two `log`
//!   lines, two `witness` lines or one of each, and whatever the key names (keys are compared
//!   as canonical Ed25519 points); two keys may not share both key name and key ID either,
//!   since a signature line could then not be attributed;
//! - witness and group names share one namespace, are unique, are defined before they are
//!   used, and `none` is reserved (it may only appear as `quorum none`); a name is listed as
//!   a group member at most once in the whole policy, so it belongs to at most one group and
//!   each witness can contribute to the quorum in only one way (the quorum line may still
//!   name a member); `k` is a canonical decimal with `1 <= k <= n`;
//! - a URL, when present, is an absolute `http://` or `https://` URL with a host;
//! - limits: [`MAX_POLICY_SIZE`] bytes of text, [`MAX_LOGS`] logs, [`MAX_WITNESSES`]
//!   witnesses, [`MAX_GROUPS`] groups, [`MAX_GROUP_MEMBERS`] members per group and
//!   [`MAX_DEPTH`] levels of nested groups (the spec recommends supporting at least 32 logs,
//!   32 witnesses and 32 groups).
//!
//! Several `log` lines may share an origin (during a key rotation, say): a checkpoint signed
//! by any of them is accepted.
//!
//! Out of scope: fetching cosignatures (a log server asks the witnesses of
//! [`Policy::witness_urls`]), consistency between checkpoints (see [`crate::proof`]) and the
//! log's own rules on what it may sign.
//!
//! ```
//! use veritrail_ledger::TreeHead;
//! use veritrail_ledger::checkpoint::Checkpoint;
//! use veritrail_ledger::cosignature::CosignatureSigner;
//! use veritrail_ledger::note::{KeyName, NoteSigner};
//! use veritrail_ledger::policy::{Policy, VerifyError};
//!
//! let log = NoteSigner::generate(KeyName::new("veritrail.example/log")?)?;
//! let a = CosignatureSigner::generate(KeyName::new("a.example/witness")?)?;
//! let b = CosignatureSigner::generate(KeyName::new("b.example/witness")?)?;
//! let c = CosignatureSigner::generate(KeyName::new("c.example/witness")?)?;
//! let policy: Policy = format!(
//!     "log {} https://veritrail.example/log\n\
//!      witness witness-a {} https://a.example/witness\n\
//!      witness witness-b {}\n\
//!      witness witness-c {}\n\
//!      group two-of-three 2 witness-a witness-b witness-c\n\
//!      quorum two-of-three\n",
//!     log.verifier(),
//!     a.verifier(),
//!     b.verifier(),
//!     c.verifier(),
//! )
//! .parse()?;
//!
//! let now = 1_700_000_000;
//! let mut note = Checkpoint::new("veritrail.example/log", TreeHead::empty())?.sign(&log)?;
//! note.add_signature(a.sign(note.text(), now)?)?;
//! let err = policy.verify(&note, now, 60).unwrap_err();
//! assert!(matches!(&err, VerifyError::QuorumNotMet { missing, .. } if missing == &["witness-b", "witness-c"]));
//! assert_eq!(err.to_string(), "quorum not met: missing witness-b, witness-c");
//!
//! note.add_signature(c.sign(note.text(), now - 5)?)?;
//! let verified = policy.verify(&note, now, 60)?;
//! assert_eq!(verified.checkpoint.tree, TreeHead::empty());
//! let cosigners: Vec<&str> = verified.cosigners.iter().map(|c| c.witness.as_str()).collect();
//! assert_eq!(cosigners, ["witness-a", "witness-c"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::str::FromStr;
use std::collections::HashMap;

use crate::ascii::{DecimalError, parse_decimal};
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::cosignature::{CosignatureError, verify_cosignature};
use crate::note::{
    ED25519_KEY_SIZE, Note, NoteError, NoteVerifier, SIG_TYPE_COSIGNATURE, SIG_TYPE_ED25519,
};

/// Largest policy text [`Policy::parse`] accepts: 64 KiB.
///
/// A `witness` line is about 100 bytes, so this holds every item up to the limits below with
/// room for comments.
pub const MAX_POLICY_SIZE: usize = 64 * 1024;

/// Most `log` lines a policy may have.
pub const MAX_LOGS: usize = 256;

/// Most `witness` lines a policy may have.
pub const MAX_WITNESSES: usize = 256;

/// Most `group` lines a policy may have.
pub const MAX_GROUPS: usize = 256;

/// Most members one group may list.
pub const MAX_GROUP_MEMBERS: usize = 256;

/// Deepest nesting of groups: a group of witnesses has depth 1, a group holding it depth 2.
pub const MAX_DEPTH: usize = 32;

/// The predefined name of the empty quorum (`quorum none`); it cannot be defined or be a
/// group member.
pub const NONE: &str = "none";

/// Errors from parsing a policy. Every one but [`PolicyError::TooLarge`] and
/// [`PolicyError::MissingQuorum`] carries the 1-based number of the offending line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy text is larger than [`MAX_POLICY_SIZE`].
    #[error("policy is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// Size of the text in bytes.
        size: usize,
        /// The limit, [`MAX_POLICY_SIZE`].
        max: usize,
    },
    /// A line holds a control character other than tab (including a carriage return).
    #[error("line {line}: control character 0x{byte:02x}")]
    ControlCharacter {
        /// 1-based line number.
        line: usize,
        /// The character.
        byte: u8,
    },
    /// The line starts with something other than `log`, `witness`, `group` or `quorum`.
    #[error("line {line}: unknown keyword {keyword:?}")]
    UnknownKeyword {
        /// 1-based line number.
        line: usize,
        /// The first item of the line.
        keyword: String,
    },
    /// The line has fewer items than its keyword requires.
    #[error("line {line}: missing items after {keyword:?}")]
    MissingItems {
        /// 1-based line number.
        line: usize,
        /// The line's keyword.
        keyword: &'static str,
    },
    /// The line has more items than its keyword allows.
    #[error("line {line}: too many items after {keyword:?}")]
    TooManyItems {
        /// 1-based line number.
        line: usize,
        /// The line's keyword.
        keyword: &'static str,
    },
    /// A vkey does not parse (see [`NoteVerifier`]'s `FromStr`).
    #[error("line {line}: invalid vkey: {source}")]
    InvalidKey {
        /// 1-based line number.
        line: usize,
        /// Why the key string was refused.
        #[source]
        source: NoteError,
    },
    /// A vkey has the wrong signature type: a `log` needs an Ed25519 key (0x01), a `witness`
    /// a cosignature key (0x04).
    #[error("line {line}: vkey type 0x{got:02x}, expected 0x{want:02x}")]
    WrongKeyType {
        /// 1-based line number.
        line: usize,
        /// The vkey's type byte.
        got: u8,
        /// The type required on this line.
        want: u8,
    },
    /// The public key was already listed (as a log or a witness, under any name).
    #[error("line {line}: public key already listed on line {first_line}")]
    DuplicateKey {
        /// 1-based line number.
        line: usize,
        /// Line of the first listing.
        first_line: usize,
    },
    /// Another key with the same key name and key ID was already listed, so signature lines
    /// could not be attributed.
    #[error("line {line}: key name and key ID already used on line {first_line}")]
    DuplicateKeyId {
        /// 1-based line number.
        line: usize,
        /// Line of the first listing.
        first_line: usize,
    },
    /// A URL is not an absolute `http://` or `https://` URL with a host.
    #[error("line {line}: invalid URL: {reason}")]
    InvalidUrl {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`NONE`] was used as a witness or group name, or as a group member.
    #[error("line {line}: the name \"none\" is reserved")]
    ReservedName {
        /// 1-based line number.
        line: usize,
    },
    /// A witness or group name was already defined.
    #[error("line {line}: name {name:?} already defined on line {first_line}")]
    DuplicateName {
        /// 1-based line number.
        line: usize,
        /// The name.
        name: String,
        /// Line of the first definition.
        first_line: usize,
    },
    /// A group member or the quorum names nothing defined on an earlier line.
    #[error("line {line}: {name:?} is not defined on an earlier line")]
    UnknownName {
        /// 1-based line number.
        line: usize,
        /// The name.
        name: String,
    },
    /// A name is listed as a group member a second time, in this group or an earlier one
    /// (tlog-policy: each name is a group member at most once).
    #[error(
        "line {line}: {name:?} is already a group member (each name may be a member of one group, once)"
    )]
    DuplicateMember {
        /// 1-based line number.
        line: usize,
        /// The member listed twice.
        name: String,
    },
    /// A group threshold is neither `all`, `any` nor a canonical decimal.
    #[error("line {line}: invalid threshold: {source}")]
    InvalidThreshold {
        /// 1-based line number.
        line: usize,
        /// Why it is not a canonical decimal.
        #[source]
        source: DecimalError,
    },
    /// A group threshold is 0 or more than the number of members.
    #[error("line {line}: threshold {k} is not between 1 and the {members} members")]
    ThresholdOutOfRange {
        /// 1-based line number.
        line: usize,
        /// The threshold.
        k: u64,
        /// The number of members.
        members: usize,
    },
    /// There is no `quorum` line.
    #[error("the policy has no quorum line")]
    MissingQuorum,
    /// There is a second `quorum` line.
    #[error("line {line}: second quorum line (the first is on line {first_line})")]
    DuplicateQuorum {
        /// 1-based line number.
        line: usize,
        /// Line of the first quorum.
        first_line: usize,
    },
    /// More than [`MAX_LOGS`] logs.
    #[error("line {line}: more than {max} logs")]
    TooManyLogs {
        /// 1-based line number of the first log over the limit.
        line: usize,
        /// The limit, [`MAX_LOGS`].
        max: usize,
    },
    /// More than [`MAX_WITNESSES`] witnesses.
    #[error("line {line}: more than {max} witnesses")]
    TooManyWitnesses {
        /// 1-based line number of the first witness over the limit.
        line: usize,
        /// The limit, [`MAX_WITNESSES`].
        max: usize,
    },
    /// More than [`MAX_GROUPS`] groups.
    #[error("line {line}: more than {max} groups")]
    TooManyGroups {
        /// 1-based line number of the first group over the limit.
        line: usize,
        /// The limit, [`MAX_GROUPS`].
        max: usize,
    },
    /// A group lists more than [`MAX_GROUP_MEMBERS`] members.
    #[error("line {line}: group has {got} members, more than the limit of {max}")]
    TooManyMembers {
        /// 1-based line number.
        line: usize,
        /// Number of members listed.
        got: usize,
        /// The limit, [`MAX_GROUP_MEMBERS`].
        max: usize,
    },
    /// A group nests deeper than [`MAX_DEPTH`].
    #[error("line {line}: group nesting depth {depth}, more than the limit of {max}")]
    TooDeep {
        /// 1-based line number.
        line: usize,
        /// The group's depth.
        depth: usize,
        /// The limit, [`MAX_DEPTH`].
        max: usize,
    },
}

/// Errors from verifying a checkpoint against a policy ([`Policy::verify`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The note text is not a checkpoint.
    #[error("not a checkpoint: {0}")]
    Checkpoint(#[source] CheckpointError),
    /// No listed log has the checkpoint's origin as its key name.
    #[error("the policy lists no log for origin {origin:?}")]
    UnknownLog {
        /// The checkpoint's origin.
        origin: String,
    },
    /// The log's signature is missing ([`NoteError::NoVerifiedSignature`]) or a signature line
    /// by a listed key of this log is bad ([`NoteError::InvalidSignature`],
    /// [`NoteError::SignatureLength`]).
    #[error("checkpoint of {origin:?} is not validly signed by the log: {source}")]
    LogSignature {
        /// The checkpoint's origin.
        origin: String,
        /// What [`Note::verify`] found.
        #[source]
        source: NoteError,
    },
    /// A signature line by a listed witness's key (same key name and key ID) does not verify
    /// over this checkpoint: the note is rejected, as signed-note verifiers reject a bad
    /// signature by a known key.
    #[error("bad cosignature by witness {witness:?}: {source}")]
    InvalidCosignature {
        /// The witness's name in the policy.
        witness: String,
        /// What [`verify_cosignature`] found.
        #[source]
        source: CosignatureError,
    },
    /// Too few witnesses cosigned.
    #[error(
        "quorum not met: missing {}{}",
        .missing.join(", "),
        future_suffix(.future)
    )]
    QuorumNotMet {
        /// The name on the policy's `quorum` line.
        quorum: String,
        /// Policy names of the witnesses the quorum involves that have no counted cosignature,
        /// in policy order (this includes those of `future`).
        missing: Vec<String>,
        /// Policy names of the witnesses whose valid cosignature was not counted because its
        /// timestamp is too far in the future, in policy order.
        future: Vec<String>,
    },
}

/// The tail of the [`VerifyError::QuorumNotMet`] message naming cosignatures from the future.
fn future_suffix(future: &[String]) -> String {
    if future.is_empty() {
        String::new()
    } else {
        format!(
            " (not counted, timestamped too far in the future: {})",
            future.join(", ")
        )
    }
}

/// A `log` line: the log's verifier key (its name is the origin) and an optional URL.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Log {
    verifier: NoteVerifier,
    url: Option<String>,
}

impl Log {
    /// The log's Ed25519 verifier key (type 0x01).
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The log's origin: the key name of its verifier.
    pub fn origin(&self) -> &str {
        self.verifier.name().as_str()
    }

    /// The URL given for the log, if any (its meaning is up to the application).
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}

/// A `witness` line: a policy name, the cosignature verifier key and an optional URL.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Witness {
    name: String,
    verifier: NoteVerifier,
    url: Option<String>,
}

impl Witness {
    /// The witness's name in this policy (it has no meaning elsewhere; the key's own name is
    /// `verifier().name()`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The witness's cosignature verifier key (type 0x04).
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The witness's submission prefix ([tlog-witness](https://c2sp.org/tlog-witness)), if
    /// given.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}

/// A `group` line: met when at least `threshold` of its members are.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Group {
    name: String,
    threshold: usize,
    members: Vec<String>,
    nodes: Vec<Node>,
}

impl Group {
    /// The group's name in this policy.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many members must be met: 1 for `any`, the number of members for `all`.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The members' names (witnesses or earlier groups), in the order listed.
    pub fn members(&self) -> &[String] {
        &self.members
    }
}

/// What a name refers to: an index into `Policy::witnesses` or `Policy::groups`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Node {
    Witness(usize),
    Group(usize),
}

/// The `quorum` line, unless it is `quorum none`.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Quorum {
    name: String,
    node: Node,
}

/// A parsed policy: logs, witnesses, groups and the quorum.
///
/// Groups only refer to witnesses and earlier groups, so the quorum is evaluated in one pass
/// in definition order, without recursion.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Policy {
    logs: Vec<Log>,
    witnesses: Vec<Witness>,
    groups: Vec<Group>,
    quorum: Option<Quorum>,
}

/// A valid cosignature by a listed witness.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Cosigner {
    /// The witness's name in the policy.
    pub witness: String,
    /// The cosignature's timestamp (POSIX seconds); with several lines by the witness, the
    /// first line's.
    pub timestamp: u64,
}

/// A checkpoint accepted by [`Policy::verify`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Verified {
    /// The parsed checkpoint.
    pub checkpoint: Checkpoint,
    /// The listed log key whose signature verified (the first in note order).
    pub log: NoteVerifier,
    /// Every listed witness whose cosignature verified and counted, in policy order, whether
    /// or not the quorum needed it.
    pub cosigners: Vec<Cosigner>,
    /// Listed witnesses whose cosignature verified but is timestamped more than the allowed
    /// skew in the future: not counted.
    pub future: Vec<Cosigner>,
}

/// The state of a parse in progress.
#[derive(Default)]
struct Parser {
    logs: Vec<Log>,
    witnesses: Vec<Witness>,
    groups: Vec<Group>,
    /// Nesting depth of each group, by index.
    depths: Vec<usize>,
    /// Every witness and group name, with what it refers to and its line.
    names: HashMap<String, (Node, usize)>,
    /// Canonical public key encoding -> line of its first listing.
    keys: HashMap<[u8; ED25519_KEY_SIZE], usize>,
    /// (key name, key ID) -> line of its first listing.
    key_ids: HashMap<(String, u32), usize>,
    /// The quorum and the line it was set on.
    quorum: Option<(Option<Quorum>, usize)>,
    /// Every name listed as a group member so far: each may be listed once in the policy.
    members: std::collections::HashSet<String>,
}

impl Parser {
    fn line(&mut self, line: usize, items: &[&str]) -> Result<(), PolicyError> {
        let Some((&keyword, args)) = items.split_first() else {
            return Ok(());
        };
        match keyword {
            "log" => self.log(line, args),
            "witness" => self.witness(line, args),
            "group" => self.group(line, args),
            "quorum" => self.quorum(line, args),
            other => Err(PolicyError::UnknownKeyword {
                line,
                keyword: other.to_owned(),
            }),
        }
    }

    fn log(&mut self, line: usize, args: &[&str]) -> Result<(), PolicyError> {
        let (vkey, url) = match *args {
            [vkey] => (vkey, None),
            [vkey, url] => (vkey, Some(url)),
            [] => return Err(missing(line, "log")),
            _ => return Err(too_many(line, "log")),
        };
        if self.logs.len() >= MAX_LOGS {
            return Err(PolicyError::TooManyLogs {
                line,
                max: MAX_LOGS,
            });
        }
        let verifier = parse_vkey(line, vkey, SIG_TYPE_ED25519)?;
        let url = url.map(|url| check_url(line, url)).transpose()?;
        self.register_key(line, &verifier)?;
        self.logs.push(Log { verifier, url });
        Ok(())
    }

    fn witness(&mut self, line: usize, args: &[&str]) -> Result<(), PolicyError> {
        let (name, vkey, url) = match *args {
            [name, vkey] => (name, vkey, None),
            [name, vkey, url] => (name, vkey, Some(url)),
            [] | [_] => return Err(missing(line, "witness")),
            _ => return Err(too_many(line, "witness")),
        };
        if self.witnesses.len() >= MAX_WITNESSES {
            return Err(PolicyError::TooManyWitnesses {
                line,
                max: MAX_WITNESSES,
            });
        }
        self.check_new_name(line, name)?;
        let verifier = parse_vkey(line, vkey, SIG_TYPE_COSIGNATURE)?;
        let url = url.map(|url| check_url(line, url)).transpose()?;
        self.register_key(line, &verifier)?;
        let node = Node::Witness(self.witnesses.len());
        self.names.insert(name.to_owned(), (node, line));
        self.witnesses.push(Witness {
            name: name.to_owned(),
            verifier,
            url,
        });
        Ok(())
    }

    fn group(&mut self, line: usize, args: &[&str]) -> Result<(), PolicyError> {
        let [name, threshold, members @ ..] = args else {
            return Err(missing(line, "group"));
        };
        let (name, threshold) = (*name, *threshold);
        if members.is_empty() {
            return Err(missing(line, "group"));
        }
        if members.len() > MAX_GROUP_MEMBERS {
            return Err(PolicyError::TooManyMembers {
                line,
                got: members.len(),
                max: MAX_GROUP_MEMBERS,
            });
        }
        if self.groups.len() >= MAX_GROUPS {
            return Err(PolicyError::TooManyGroups {
                line,
                max: MAX_GROUPS,
            });
        }
        self.check_new_name(line, name)?;
        let n = members.len();
        let threshold = match threshold {
            "all" => n,
            "any" => 1,
            digits => {
                let k = parse_decimal(digits)
                    .map_err(|source| PolicyError::InvalidThreshold { line, source })?;
                let out_of_range = PolicyError::ThresholdOutOfRange {
                    line,
                    k,
                    members: n,
                };
                match usize::try_from(k) {
                    Ok(k) if (1..=n).contains(&k) => k,
                    _ => return Err(out_of_range),
                }
            }
        };
        let mut nodes = Vec::with_capacity(n);
        let mut depth = 1;
        for &member in members {
            if member == NONE {
                return Err(PolicyError::ReservedName { line });
            }
            let &(node, _) = self
                .names
                .get(member)
                .ok_or_else(|| PolicyError::UnknownName {
                    line,
                    name: member.to_owned(),
                })?;
            // "Each defined name can be listed as a group member at most once", across the
            // policy: a witness contributes to the quorum in one way only.
            if nodes.contains(&node) || !self.members.insert(member.to_owned()) {
                return Err(PolicyError::DuplicateMember {
                    line,
                    name: member.to_owned(),
                });
            }
            if let Node::Group(index) = node {
                let below = self.depths.get(index).copied().unwrap_or(MAX_DEPTH);
                depth = depth.max(below.saturating_add(1));
            }
            nodes.push(node);
        }
        if depth > MAX_DEPTH {
            return Err(PolicyError::TooDeep {
                line,
                depth,
                max: MAX_DEPTH,
            });
        }
        let node = Node::Group(self.groups.len());
        self.names.insert(name.to_owned(), (node, line));
        self.depths.push(depth);
        self.groups.push(Group {
            name: name.to_owned(),
            threshold,
            members: members.iter().map(|&m| m.to_owned()).collect(),
            nodes,
        });
        Ok(())
    }

    fn quorum(&mut self, line: usize, args: &[&str]) -> Result<(), PolicyError> {
        let name = match *args {
            [name] => name,
            [] => return Err(missing(line, "quorum")),
            _ => return Err(too_many(line, "quorum")),
        };
        if let Some((_, first_line)) = self.quorum {
            return Err(PolicyError::DuplicateQuorum { line, first_line });
        }
        let quorum = if name == NONE {
            None
        } else {
            let &(node, _) = self
                .names
                .get(name)
                .ok_or_else(|| PolicyError::UnknownName {
                    line,
                    name: name.to_owned(),
                })?;
            Some(Quorum {
                name: name.to_owned(),
                node,
            })
        };
        self.quorum = Some((quorum, line));
        Ok(())
    }

    /// A witness or group name must be new and not [`NONE`].
    fn check_new_name(&self, line: usize, name: &str) -> Result<(), PolicyError> {
        if name == NONE {
            return Err(PolicyError::ReservedName { line });
        }
        match self.names.get(name) {
            Some(&(_, first_line)) => Err(PolicyError::DuplicateName {
                line,
                name: name.to_owned(),
                first_line,
            }),
            None => Ok(()),
        }
    }

    /// Records a log or witness key, refusing a public key listed before (compared as the
    /// canonical encoding of the point, so that a non-canonical encoding of the same key is
    /// caught too) and a key name and key ID pair listed before.
    fn register_key(&mut self, line: usize, verifier: &NoteVerifier) -> Result<(), PolicyError> {
        let canonical = verifier.public_key().to_edwards().compress().to_bytes();
        self.register_key_parts(line, canonical, verifier.name().as_str(), verifier.key_id())
    }

    fn register_key_parts(
        &mut self,
        line: usize,
        canonical: [u8; ED25519_KEY_SIZE],
        name: &str,
        key_id: u32,
    ) -> Result<(), PolicyError> {
        if let Some(&first_line) = self.keys.get(&canonical) {
            return Err(PolicyError::DuplicateKey { line, first_line });
        }
        let id = (name.to_owned(), key_id);
        if let Some(&first_line) = self.key_ids.get(&id) {
            return Err(PolicyError::DuplicateKeyId { line, first_line });
        }
        self.keys.insert(canonical, line);
        self.key_ids.insert(id, line);
        Ok(())
    }

    fn finish(self) -> Result<Policy, PolicyError> {
        let (quorum, _) = self.quorum.ok_or(PolicyError::MissingQuorum)?;
        Ok(Policy {
            logs: self.logs,
            witnesses: self.witnesses,
            groups: self.groups,
            quorum,
        })
    }
}

fn missing(line: usize, keyword: &'static str) -> PolicyError {
    PolicyError::MissingItems { line, keyword }
}

fn too_many(line: usize, keyword: &'static str) -> PolicyError {
    PolicyError::TooManyItems { line, keyword }
}

/// Parses a vkey that must have signature type `want`.
fn parse_vkey(line: usize, vkey: &str, want: u8) -> Result<NoteVerifier, PolicyError> {
    let verifier: NoteVerifier = vkey.parse().map_err(|source| match source {
        NoteError::UnsupportedKeyType { got } => PolicyError::WrongKeyType { line, got, want },
        source => PolicyError::InvalidKey { line, source },
    })?;
    if verifier.signature_type() != want {
        return Err(PolicyError::WrongKeyType {
            line,
            got: verifier.signature_type(),
            want,
        });
    }
    Ok(verifier)
}

/// Accepts `http://<host>...` and `https://<host>...` (lower-case scheme, non-empty host).
fn check_url(line: usize, url: &str) -> Result<String, PolicyError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(PolicyError::InvalidUrl {
            line,
            reason: "not an http:// or https:// URL",
        })?;
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(PolicyError::InvalidUrl {
            line,
            reason: "no host",
        });
    }
    Ok(url.to_owned())
}

/// Whether a byte may appear in a policy: tab, newline and everything but the other ASCII
/// control characters (0x00-0x1f, 0x7f).
fn allowed_byte(b: u8) -> bool {
    b == b'\t' || b == b'\n' || !(b < 0x20 || b == 0x7f)
}

impl Policy {
    /// Parses a policy text. Total: every input gives a policy or an error; this does not
    /// panic.
    ///
    /// # Errors
    /// [`PolicyError::TooLarge`] above [`MAX_POLICY_SIZE`] bytes,
    /// [`PolicyError::MissingQuorum`] without a quorum line, and otherwise the first broken
    /// rule (see the [module documentation](self)), with its line number.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_SIZE {
            return Err(PolicyError::TooLarge {
                size: text.len(),
                max: MAX_POLICY_SIZE,
            });
        }
        let mut parser = Parser::default();
        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            // Multi-byte UTF-8 sequences hold no byte below 0x80, so a byte scan is exact.
            if let Some(byte) = raw.bytes().find(|&b| !allowed_byte(b)) {
                return Err(PolicyError::ControlCharacter { line, byte });
            }
            let content = raw
                .split_once('#')
                .map_or(raw, |(content, _comment)| content);
            let items: Vec<&str> = content
                .split([' ', '\t'])
                .filter(|item| !item.is_empty())
                .collect();
            parser.line(line, &items)?;
        }
        parser.finish()
    }

    /// The listed logs, in file order.
    pub fn logs(&self) -> &[Log] {
        &self.logs
    }

    /// The first listed log whose origin (key name) is `origin`.
    pub fn log_for(&self, origin: &str) -> Option<&Log> {
        self.logs.iter().find(|log| log.origin() == origin)
    }

    /// Every listed log whose origin is `origin` (more than one during a key rotation).
    pub fn logs_for<'a>(&'a self, origin: &'a str) -> impl Iterator<Item = &'a Log> + 'a {
        self.logs.iter().filter(move |log| log.origin() == origin)
    }

    /// The listed witnesses, in file order.
    pub fn witnesses(&self) -> &[Witness] {
        &self.witnesses
    }

    /// The witness with this policy name.
    pub fn witness(&self, name: &str) -> Option<&Witness> {
        self.witnesses.iter().find(|w| w.name == name)
    }

    /// The witnesses that have a URL, with it: whom a log server asks for cosignatures.
    pub fn witness_urls(&self) -> impl Iterator<Item = (&Witness, &str)> {
        self.witnesses
            .iter()
            .filter_map(|w| w.url.as_deref().map(|url| (w, url)))
    }

    /// The groups, in file order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The name on the `quorum` line (a witness or a group), or `None` for `quorum none`.
    pub fn quorum(&self) -> Option<&str> {
        self.quorum.as_ref().map(|q| q.name.as_str())
    }

    /// Verifies a checkpoint note against the policy.
    ///
    /// 1. The note text must be a checkpoint ([`Checkpoint::from_text`]).
    /// 2. The listed logs whose key name is the checkpoint's origin are its keys: one of them
    ///    must have signed, and any signature line by one of them must verify
    ///    ([`Note::verify`]).
    /// 3. Every listed witness's cosignature is checked with [`verify_cosignature`] over this
    ///    note's text. Lines by keys the policy does not list are ignored, including a line
    ///    that uses a witness's key name with another key (its key ID differs). A line that
    ///    claims a listed witness's key name and key ID but does not verify, such as a
    ///    forgery or a cosignature of another checkpoint, rejects the note
    ///    ([`VerifyError::InvalidCosignature`]).
    /// 4. A valid cosignature timestamped after `now_unix_secs + max_skew_secs` does not count
    ///    and is reported in [`Verified::future`] (or [`VerifyError::QuorumNotMet`]).
    ///    Each witness counts once, however many lines it has.
    /// 5. The quorum must be met by the counted witnesses; `quorum none` is always met.
    ///
    /// This does not panic.
    ///
    /// # Errors
    /// [`VerifyError::Checkpoint`], [`VerifyError::UnknownLog`],
    /// [`VerifyError::LogSignature`], [`VerifyError::InvalidCosignature`] and
    /// [`VerifyError::QuorumNotMet`], in the order of the steps above.
    pub fn verify(
        &self,
        note: &Note,
        now_unix_secs: u64,
        max_skew_secs: u64,
    ) -> Result<Verified, VerifyError> {
        let checkpoint = Checkpoint::from_text(note.text()).map_err(VerifyError::Checkpoint)?;
        let keys: Vec<NoteVerifier> = self
            .logs_for(&checkpoint.origin)
            .map(|log| log.verifier.clone())
            .collect();
        if keys.is_empty() {
            return Err(VerifyError::UnknownLog {
                origin: checkpoint.origin,
            });
        }
        let signed = note
            .verify(&keys)
            .map_err(|source| VerifyError::LogSignature {
                origin: checkpoint.origin.clone(),
                source,
            })?;
        let log = signed
            .first()
            .and_then(|signature| keys.iter().find(|key| key.matches(signature)))
            .cloned()
            .ok_or_else(|| VerifyError::LogSignature {
                origin: checkpoint.origin.clone(),
                source: NoteError::NoVerifiedSignature {
                    signatures: note.signatures().len(),
                },
            })?;

        let latest = now_unix_secs.saturating_add(max_skew_secs);
        let mut counted = vec![false; self.witnesses.len()];
        let mut cosigners = Vec::new();
        let mut future = Vec::new();
        for (witness, counts) in self.witnesses.iter().zip(counted.iter_mut()) {
            match verify_cosignature(&witness.verifier, note) {
                Ok(timestamp) => {
                    let cosigner = Cosigner {
                        witness: witness.name.clone(),
                        timestamp,
                    };
                    if timestamp <= latest {
                        *counts = true;
                        cosigners.push(cosigner);
                    } else {
                        future.push(cosigner);
                    }
                }
                Err(CosignatureError::NotFound { .. }) => {}
                Err(source) => {
                    return Err(VerifyError::InvalidCosignature {
                        witness: witness.name.clone(),
                        source,
                    });
                }
            }
        }

        if let Some(quorum) = &self.quorum
            && !self.met(quorum.node, &counted)
        {
            let involved = self.involved(quorum.node);
            let missing = self
                .witnesses
                .iter()
                .zip(involved.iter().zip(&counted))
                .filter(|&(_, (&involved, &counted))| involved && !counted)
                .map(|(w, _)| w.name.clone())
                .collect();
            return Err(VerifyError::QuorumNotMet {
                quorum: quorum.name.clone(),
                missing,
                future: future.into_iter().map(|c| c.witness).collect(),
            });
        }
        Ok(Verified {
            checkpoint,
            log,
            cosigners,
            future,
        })
    }

    /// Whether `node` is met when the witnesses flagged in `counted` have cosigned.
    ///
    /// Every group refers only to earlier groups, so one pass in definition order decides
    /// them all.
    fn met(&self, node: Node, counted: &[bool]) -> bool {
        let mut groups: Vec<bool> = Vec::with_capacity(self.groups.len());
        for group in &self.groups {
            let met = group
                .nodes
                .iter()
                .filter(|&&member| node_met(member, counted, &groups))
                .count();
            groups.push(met >= group.threshold);
        }
        node_met(node, counted, &groups)
    }

    /// Which witnesses `node` involves, directly or through groups, flagged by index.
    fn involved(&self, node: Node) -> Vec<bool> {
        let mut witnesses = vec![false; self.witnesses.len()];
        let mut groups = vec![false; self.groups.len()];
        mark(node, &mut witnesses, &mut groups);
        // A group refers only to earlier groups: walking backwards reaches every descendant.
        for (index, group) in self.groups.iter().enumerate().rev() {
            if groups.get(index).copied().unwrap_or(false) {
                for &member in &group.nodes {
                    mark(member, &mut witnesses, &mut groups);
                }
            }
        }
        witnesses
    }
}

/// Whether a witness or an already-decided group is met.
fn node_met(node: Node, counted: &[bool], groups: &[bool]) -> bool {
    match node {
        Node::Witness(i) => counted.get(i).copied().unwrap_or(false),
        Node::Group(i) => groups.get(i).copied().unwrap_or(false),
    }
}

/// Flags `node` as involved.
fn mark(node: Node, witnesses: &mut [bool], groups: &mut [bool]) {
    let flag = match node {
        Node::Witness(i) => witnesses.get_mut(i),
        Node::Group(i) => groups.get_mut(i),
    };
    if let Some(flag) = flag {
        *flag = true;
    }
}

impl FromStr for Policy {
    type Err = PolicyError;

    /// Same as [`Policy::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::parse(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::TreeHead;
    use crate::cosignature::CosignatureSigner;
    use crate::hash::leaf_hash;
    use crate::note::{KeyName, NoteSignature, NoteSigner, key_id};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    const ORIGIN: &str = "veritrail.example/log";
    const NOW: u64 = 1_700_000_000;

    fn seed(kind: u8, i: usize) -> [u8; 32] {
        let mut seed = [kind; 32];
        seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
        seed
    }

    fn log_signer(name: &str, i: usize) -> NoteSigner {
        NoteSigner::from_seed(KeyName::new(name).unwrap(), seed(1, i))
    }

    fn cosigner(name: &str, i: usize) -> CosignatureSigner {
        CosignatureSigner::from_seed(KeyName::new(name).unwrap(), seed(1, i))
    }

    /// A log vkey string.
    fn lk(name: &str, i: usize) -> String {
        log_signer(name, i).verifier().to_string()
    }

    /// A witness vkey string (type 0x04).
    fn wk(name: &str, i: usize) -> String {
        cosigner(name, i).verifier().to_string()
    }

    /// A vkey string built from raw parts, with the key ID computed over them.
    fn raw_vkey(name: &str, signature_type: u8, key: &[u8]) -> String {
        let id = key_id(&KeyName::new(name).unwrap(), signature_type, key);
        let mut material = vec![signature_type];
        material.extend_from_slice(key);
        format!("{name}+{id:08x}+{}", STANDARD.encode(material))
    }

    /// Everything a parsed policy holds, as one line, for exact comparisons.
    fn summary(policy: &Policy) -> String {
        let url = |url: Option<&str>| url.map(|u| format!(" {u}")).unwrap_or_default();
        let mut parts = Vec::new();
        for log in policy.logs() {
            parts.push(format!("log {}{}", log.origin(), url(log.url())));
        }
        for w in policy.witnesses() {
            parts.push(format!(
                "witness {} {}{}",
                w.name(),
                w.verifier().name(),
                url(w.url())
            ));
        }
        for g in policy.groups() {
            parts.push(format!(
                "group {} {} {}",
                g.name(),
                g.threshold(),
                g.members().join(" ")
            ));
        }
        parts.push(format!("quorum {}", policy.quorum().unwrap_or(NONE)));
        parts.join("; ")
    }

    /// The structural guarantees of every parsed policy.
    fn check_invariants(policy: &Policy) {
        assert!(policy.logs().len() <= MAX_LOGS);
        assert!(policy.witnesses().len() <= MAX_WITNESSES);
        assert!(policy.groups().len() <= MAX_GROUPS);
        for log in policy.logs() {
            assert_eq!(log.verifier().signature_type(), SIG_TYPE_ED25519);
        }
        let mut defined: Vec<&str> = Vec::new();
        for w in policy.witnesses() {
            assert_eq!(w.verifier().signature_type(), SIG_TYPE_COSIGNATURE);
            assert_ne!(w.name(), NONE);
            assert!(!defined.contains(&w.name()));
            defined.push(w.name());
        }
        // Every name listed as a member so far, in any group: each is listed at most once.
        let mut members: Vec<&str> = Vec::new();
        for g in policy.groups() {
            assert!((1..=g.members().len()).contains(&g.threshold()));
            assert!(g.members().len() <= MAX_GROUP_MEMBERS);
            for m in g.members() {
                assert!(defined.contains(&m.as_str()), "{m} used before definition");
                assert!(
                    !members.contains(&m.as_str()),
                    "{m} listed as a member twice"
                );
                members.push(m);
            }
            assert!(!defined.contains(&g.name()));
            defined.push(g.name());
        }
        if let Some(q) = policy.quorum() {
            assert!(defined.contains(&q));
        }
    }

    #[test]
    fn policy_table() {
        let l1 = lk("log.example/a", 1);
        let l2 = lk("log.example/b", 2);
        let [w1, w2, w3, w4] = [1, 2, 3, 4].map(|i| wk(&format!("w{i}.example"), 10 + i));
        // Lines 1 to 3.
        let ws = format!("witness w1 {w1}\nwitness w2 {w2}\nwitness w3 {w3}\n");
        let ws_summary = "witness w1 w1.example; witness w2 w2.example; witness w3 w3.example";
        let ecdsa = format!("x.example+00000000+{}", STANDARD.encode([2u8; 34]));
        let l1_signer = log_signer("log.example/a", 1);
        let l1_bad_id = l1.replace(
            &format!("{:08x}", l1_signer.key_id()),
            &format!("{:08x}", l1_signer.key_id() ^ 1),
        );
        let ok = |s: &str| Ok(s.to_owned());
        let cases: Vec<(String, Result<String, PolicyError>)> = vec![
            // The four line types, comments, blank lines and tabs.
            ("quorum none\n".into(), ok("quorum none")),
            (
                format!("log {l1}\nquorum none\n"),
                ok("log log.example/a; quorum none"),
            ),
            (
                // URLs, and no newline at the end.
                format!(
                    "log {l1} https://log.example/a\nlog {l2} http://127.0.0.1:8080/b?x=1\nquorum none"
                ),
                ok(
                    "log log.example/a https://log.example/a; log log.example/b http://127.0.0.1:8080/b?x=1; quorum none",
                ),
            ),
            (
                format!(
                    "# Veritrail policy\n\n \t \nlog\t{l1}   # the log\n\twitness  w1\t{w1}  https://w1.example/witness\t\n# quorum w2\n   # indented comment\nquorum w1# trailing\n"
                ),
                ok(
                    "log log.example/a; witness w1 w1.example https://w1.example/witness; quorum w1",
                ),
            ),
            (
                format!("{ws}group g all w1 w2 w3\nquorum g\n"),
                Ok(format!("{ws_summary}; group g 3 w1 w2 w3; quorum g")),
            ),
            (
                format!("{ws}group g any w1 w2 w3\nquorum g\n"),
                Ok(format!("{ws_summary}; group g 1 w1 w2 w3; quorum g")),
            ),
            (
                format!("{ws}group g 2 w3 w1\nquorum g\n"),
                Ok(format!("{ws_summary}; group g 2 w3 w1; quorum g")),
            ),
            (
                // Nested groups.
                format!(
                    "{ws}witness w4 {w4}\ngroup a 2 w1 w2 w3\ngroup b any w4\ngroup top all a b\nquorum top\n"
                ),
                Ok(format!(
                    "{ws_summary}; witness w4 w4.example; group a 2 w1 w2 w3; group b 1 w4; group top 2 a b; quorum top"
                )),
            ),
            (
                // The quorum may come first when it is `none`.
                format!("quorum none\n{ws}"),
                Ok(format!("{ws_summary}; quorum none")),
            ),
            (
                // Names are opaque: non-ASCII, "all" and "any" are names like others.
                format!(
                    "witness all {w1}\nwitness w\u{e9}\u{a0}x {w2}\ngroup g all all w\u{e9}\u{a0}x\nquorum g\n"
                ),
                ok(
                    "witness all w1.example; witness w\u{e9}\u{a0}x w2.example; group g 2 all w\u{e9}\u{a0}x; quorum g",
                ),
            ),
            (
                // A `#` ends the line's content, even inside a URL.
                format!("log {l1} https://log.example/a#fragment\nquorum none#x\n"),
                ok("log log.example/a https://log.example/a; quorum none"),
            ),
            // Names: defined before use, unique, `none` reserved.
            (
                format!("group g any w1\n{ws}quorum g\n"),
                Err(PolicyError::UnknownName {
                    line: 1,
                    name: "w1".into(),
                }),
            ),
            (
                format!("quorum w1\n{ws}"),
                Err(PolicyError::UnknownName {
                    line: 1,
                    name: "w1".into(),
                }),
            ),
            (
                format!("{ws}quorum w4\n"),
                Err(PolicyError::UnknownName {
                    line: 4,
                    name: "w4".into(),
                }),
            ),
            (
                format!("witness w1 {w1}\nwitness w1 {w2}\nquorum none\n"),
                Err(PolicyError::DuplicateName {
                    line: 2,
                    name: "w1".into(),
                    first_line: 1,
                }),
            ),
            (
                format!("{ws}group w2 any w1\nquorum none\n"),
                Err(PolicyError::DuplicateName {
                    line: 4,
                    name: "w2".into(),
                    first_line: 2,
                }),
            ),
            (
                format!("{ws}group g any w1\ngroup g any w2\nquorum g\n"),
                Err(PolicyError::DuplicateName {
                    line: 5,
                    name: "g".into(),
                    first_line: 4,
                }),
            ),
            (
                format!("witness none {w1}\nquorum none\n"),
                Err(PolicyError::ReservedName { line: 1 }),
            ),
            (
                format!("{ws}group none any w1\nquorum none\n"),
                Err(PolicyError::ReservedName { line: 4 }),
            ),
            (
                format!("{ws}group g any w1 none\nquorum g\n"),
                Err(PolicyError::ReservedName { line: 4 }),
            ),
            // Group members and thresholds.
            (
                format!("{ws}group g 2 w1 w2 w1\nquorum g\n"),
                Err(PolicyError::DuplicateMember {
                    line: 4,
                    name: "w1".into(),
                }),
            ),
            (
                format!("{ws}group a any w1\ngroup b all a w2 a\nquorum b\n"),
                Err(PolicyError::DuplicateMember {
                    line: 5,
                    name: "a".into(),
                }),
            ),
            // Each name is a group member at most once in the whole policy, not only once per
            // group: a witness in two groups,
            (
                format!("{ws}group a any w1 w2\ngroup b 2 w3 w1\nquorum b\n"),
                Err(PolicyError::DuplicateMember {
                    line: 5,
                    name: "w1".into(),
                }),
            ),
            // a witness both in a subgroup and directly in the group holding it,
            (
                format!("{ws}group a any w1 w2\ngroup b all a w1\nquorum b\n"),
                Err(PolicyError::DuplicateMember {
                    line: 5,
                    name: "w1".into(),
                }),
            ),
            // a group used as a member of two groups (even if neither is the quorum),
            (
                format!(
                    "{ws}group a any w1\ngroup b all a w2\n# comment\ngroup c any w3 a\nquorum none\n"
                ),
                Err(PolicyError::DuplicateMember {
                    line: 7,
                    name: "a".into(),
                }),
            ),
            // and a group shared by two branches of the quorum.
            (
                format!(
                    "{ws}witness w4 {w4}\ngroup x any w1 w2\ngroup y all x w3\ngroup z all x w4\ngroup q any y z\nquorum q\n"
                ),
                Err(PolicyError::DuplicateMember {
                    line: 7,
                    name: "x".into(),
                }),
            ),
            (
                // The quorum line is not a membership: it may name a member of a group.
                format!("{ws}group a any w1 w2\ngroup b all a w3\nquorum a\n"),
                Ok(format!(
                    "{ws_summary}; group a 1 w1 w2; group b 2 a w3; quorum a"
                )),
            ),
            (
                format!("{ws}group g 0 w1 w2\nquorum g\n"),
                Err(PolicyError::ThresholdOutOfRange {
                    line: 4,
                    k: 0,
                    members: 2,
                }),
            ),
            (
                format!("{ws}group g 3 w1 w2\nquorum g\n"),
                Err(PolicyError::ThresholdOutOfRange {
                    line: 4,
                    k: 3,
                    members: 2,
                }),
            ),
            (
                format!("{ws}group g 18446744073709551615 w1 w2\nquorum g\n"),
                Err(PolicyError::ThresholdOutOfRange {
                    line: 4,
                    k: u64::MAX,
                    members: 2,
                }),
            ),
            (
                format!("{ws}group g 01 w1 w2\nquorum g\n"),
                Err(PolicyError::InvalidThreshold {
                    line: 4,
                    source: DecimalError::LeadingZero,
                }),
            ),
            (
                format!("{ws}group g +1 w1 w2\nquorum g\n"),
                Err(PolicyError::InvalidThreshold {
                    line: 4,
                    source: DecimalError::NotDigit,
                }),
            ),
            (
                format!("{ws}group g ALL w1 w2\nquorum g\n"),
                Err(PolicyError::InvalidThreshold {
                    line: 4,
                    source: DecimalError::NotDigit,
                }),
            ),
            (
                format!("{ws}group g 18446744073709551616 w1 w2\nquorum g\n"),
                Err(PolicyError::InvalidThreshold {
                    line: 4,
                    source: DecimalError::Overflow,
                }),
            ),
            // Duplicate public keys, whatever the names and line types.
            (
                format!(
                    "log {}\nlog {}\nquorum none\n",
                    lk("log.example/a", 7),
                    lk("log.example/b", 7)
                ),
                Err(PolicyError::DuplicateKey {
                    line: 2,
                    first_line: 1,
                }),
            ),
            (
                format!("log {l1}\nlog {l1}\nquorum none\n"),
                Err(PolicyError::DuplicateKey {
                    line: 2,
                    first_line: 1,
                }),
            ),
            (
                format!(
                    "witness w1 {}\nwitness w2 {}\nquorum none\n",
                    wk("w1.example", 7),
                    wk("w2.example", 7)
                ),
                Err(PolicyError::DuplicateKey {
                    line: 2,
                    first_line: 1,
                }),
            ),
            (
                format!(
                    "log {}\n# comment\nwitness w1 {}\nquorum none\n",
                    lk("log.example/a", 7),
                    wk("w1.example", 7)
                ),
                Err(PolicyError::DuplicateKey {
                    line: 3,
                    first_line: 1,
                }),
            ),
            (
                format!(
                    "witness w1 {}\nlog {}\nquorum none\n",
                    wk("same.example", 7),
                    lk("same.example", 7)
                ),
                Err(PolicyError::DuplicateKey {
                    line: 2,
                    first_line: 1,
                }),
            ),
            // Key types and malformed keys.
            (
                format!("log {w1}\nquorum none\n"),
                Err(PolicyError::WrongKeyType {
                    line: 1,
                    got: SIG_TYPE_COSIGNATURE,
                    want: SIG_TYPE_ED25519,
                }),
            ),
            (
                format!("witness w1 {l1}\nquorum none\n"),
                Err(PolicyError::WrongKeyType {
                    line: 1,
                    got: SIG_TYPE_ED25519,
                    want: SIG_TYPE_COSIGNATURE,
                }),
            ),
            (
                format!("log {ecdsa}\nquorum none\n"),
                Err(PolicyError::WrongKeyType {
                    line: 1,
                    got: 2,
                    want: SIG_TYPE_ED25519,
                }),
            ),
            (
                "log notakey\nquorum none\n".into(),
                Err(PolicyError::InvalidKey {
                    line: 1,
                    source: NoteError::MalformedKey {
                        reason: "expected <name>+<key ID>+<base64 key>",
                    },
                }),
            ),
            (
                format!("quorum none\nlog {l1_bad_id}\n"),
                Err(PolicyError::InvalidKey {
                    line: 2,
                    source: NoteError::KeyIdMismatch {
                        name: "log.example/a".into(),
                        got: l1_signer.key_id() ^ 1,
                        want: l1_signer.key_id(),
                    },
                }),
            ),
            // The quorum line.
            (ws.clone(), Err(PolicyError::MissingQuorum)),
            (String::new(), Err(PolicyError::MissingQuorum)),
            (
                "# only a comment\n\n\t\n".into(),
                Err(PolicyError::MissingQuorum),
            ),
            (
                "quorum none\n\nquorum none\n".into(),
                Err(PolicyError::DuplicateQuorum {
                    line: 3,
                    first_line: 1,
                }),
            ),
            // Keywords and item counts.
            (
                format!("witnesses w1 {w1}\nquorum none\n"),
                Err(PolicyError::UnknownKeyword {
                    line: 1,
                    keyword: "witnesses".into(),
                }),
            ),
            (
                "quorum none\nQUORUM none\n".into(),
                Err(PolicyError::UnknownKeyword {
                    line: 2,
                    keyword: "QUORUM".into(),
                }),
            ),
            ("log\nquorum none\n".into(), Err(missing(1, "log"))),
            (
                format!("log {l1} https://log.example/ extra\nquorum none\n"),
                Err(too_many(1, "log")),
            ),
            ("witness w1\n".into(), Err(missing(1, "witness"))),
            (
                format!("witness w1 {w1} https://w1.example/ extra\n"),
                Err(too_many(1, "witness")),
            ),
            (
                format!("{ws}group g any\nquorum g\n"),
                Err(missing(4, "group")),
            ),
            ("group g\n".into(), Err(missing(1, "group"))),
            ("quorum\n".into(), Err(missing(1, "quorum"))),
            (format!("{ws}quorum w1 w2\n"), Err(too_many(4, "quorum"))),
            // URLs.
            (
                format!("log {l1} ftp://log.example/\nquorum none\n"),
                Err(PolicyError::InvalidUrl {
                    line: 1,
                    reason: "not an http:// or https:// URL",
                }),
            ),
            (
                format!("witness w1 {w1} w1.example/add-checkpoint\nquorum none\n"),
                Err(PolicyError::InvalidUrl {
                    line: 1,
                    reason: "not an http:// or https:// URL",
                }),
            ),
            (
                format!("log {l1} HTTPS://log.example/\nquorum none\n"),
                Err(PolicyError::InvalidUrl {
                    line: 1,
                    reason: "not an http:// or https:// URL",
                }),
            ),
            (
                format!("log {l1} https://\nquorum none\n"),
                Err(PolicyError::InvalidUrl {
                    line: 1,
                    reason: "no host",
                }),
            ),
            (
                format!("witness w1 {w1} http:///path\nquorum none\n"),
                Err(PolicyError::InvalidUrl {
                    line: 1,
                    reason: "no host",
                }),
            ),
            // Control characters, anywhere (a CRLF file is refused).
            (
                "quorum none\r\n".into(),
                Err(PolicyError::ControlCharacter {
                    line: 1,
                    byte: 0x0d,
                }),
            ),
            (
                "quorum none\n# bell \u{7}\n".into(),
                Err(PolicyError::ControlCharacter { line: 2, byte: 7 }),
            ),
            (
                "quorum none\n\n\u{7f}".into(),
                Err(PolicyError::ControlCharacter {
                    line: 3,
                    byte: 0x7f,
                }),
            ),
            (
                "\u{c}quorum none\n".into(),
                Err(PolicyError::ControlCharacter {
                    line: 1,
                    byte: 0x0c,
                }),
            ),
        ];
        assert!(cases.len() >= 30);
        let mut failures = Vec::new();
        for (i, (text, want)) in cases.iter().enumerate() {
            let got = Policy::parse(text).map(|p| {
                check_invariants(&p);
                summary(&p)
            });
            if &got != want {
                failures.push(format!(
                    "case {i} {text:?}:\n  got  {got:?}\n  want {want:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// A policy text with `logs` logs, `witnesses` witnesses (at least one if there are
    /// groups) and `groups` groups of one member each, quorum on the last group. Group `i`
    /// holds witness `i`, or group `i - witnesses` once every witness is taken, so that each
    /// name is a member at most once (past `witnesses` groups they nest, one level per
    /// `witnesses` groups).
    fn many(logs: usize, witnesses: usize, groups: usize) -> String {
        let mut text = String::new();
        for i in 0..logs {
            let key =
                NoteSigner::from_seed(KeyName::new(format!("log{i}.example")).unwrap(), seed(2, i));
            text.push_str(&format!("log {}\n", key.verifier()));
        }
        for i in 0..witnesses {
            let key = CosignatureSigner::from_seed(
                KeyName::new(format!("w{i}.example")).unwrap(),
                seed(3, i),
            );
            text.push_str(&format!("witness w{i} {}\n", key.verifier()));
        }
        for i in 0..groups {
            match i.checked_sub(witnesses) {
                None => text.push_str(&format!("group g{i} any w{i}\n")),
                Some(below) => text.push_str(&format!("group g{i} any g{below}\n")),
            }
        }
        match groups.checked_sub(1) {
            Some(last) => text.push_str(&format!("quorum g{last}\n")),
            None => text.push_str("quorum none\n"),
        }
        text
    }

    #[test]
    fn limits() {
        let p = Policy::parse(&many(32, 32, 32)).unwrap();
        assert_eq!(
            (p.logs().len(), p.witnesses().len(), p.groups().len()),
            (32, 32, 32)
        );
        let full = many(MAX_LOGS, MAX_WITNESSES, MAX_GROUPS);
        assert!(full.len() <= MAX_POLICY_SIZE, "{}", full.len());
        let p = Policy::parse(&full).unwrap();
        assert_eq!(
            (p.logs().len(), p.witnesses().len(), p.groups().len()),
            (256, 256, 256)
        );
        check_invariants(&p);

        assert_eq!(
            Policy::parse(&many(257, 0, 0)),
            Err(PolicyError::TooManyLogs {
                line: 257,
                max: 256
            })
        );
        assert_eq!(
            Policy::parse(&many(0, 257, 0)),
            Err(PolicyError::TooManyWitnesses {
                line: 257,
                max: 256
            })
        );
        // The 257th group (g256, holding g0) is refused for its number alone.
        assert_eq!(
            Policy::parse(&many(0, MAX_WITNESSES, MAX_GROUPS + 1)),
            Err(PolicyError::TooManyGroups {
                line: 513,
                max: 256
            })
        );

        // Members: 256 distinct ones are fine; 257 are refused before they are resolved.
        let witnesses = many(0, 256, 0).replace("quorum none\n", "");
        let names: Vec<String> = (0..256).map(|i| format!("w{i}")).collect();
        let all = format!("{witnesses}group g all {}\nquorum g\n", names.join(" "));
        let p = Policy::parse(&all).unwrap();
        assert_eq!(p.groups()[0].threshold(), 256);
        let over = format!("{witnesses}group g all {} w0\nquorum g\n", names.join(" "));
        assert_eq!(
            Policy::parse(&over),
            Err(PolicyError::TooManyMembers {
                line: 257,
                got: 257,
                max: 256
            })
        );

        // Nesting: witnesses w0 to w2 (lines 1 to 3), then g1 holds w0 (depth 1) and g<i>
        // holds g<i-1> (depth i, line i + 3); w1 and w2 are left for other groups.
        let chain = |depth: usize| {
            let mut text = many(0, 3, 0).replace("quorum none\n", "");
            text.push_str("group g1 any w0\n");
            for i in 2..=depth {
                text.push_str(&format!("group g{i} any g{}\n", i - 1));
            }
            text
        };
        let p = Policy::parse(&format!("{}quorum g32\n", chain(32))).unwrap();
        assert_eq!(p.groups().len(), 32);
        check_invariants(&p);
        assert_eq!(
            Policy::parse(&format!("{}quorum g33\n", chain(33))),
            Err(PolicyError::TooDeep {
                line: 36,
                depth: 33,
                max: 32
            })
        );
        // The depth is that of the deepest member, wherever it is listed.
        let p = Policy::parse(&format!(
            "{}group h any w2\ngroup top 2 w1 g31 h\nquorum top\n",
            chain(31)
        ))
        .unwrap();
        assert_eq!(p.groups().len(), 33);
        assert_eq!(
            Policy::parse(&format!(
                "{}group h any w2\ngroup top 2 w1 g32 h\nquorum top\n",
                chain(32)
            )),
            Err(PolicyError::TooDeep {
                line: 37,
                depth: 33,
                max: 32
            })
        );

        // Size.
        let padded = format!("quorum none\n{}", "#".repeat(MAX_POLICY_SIZE - 12));
        assert_eq!(padded.len(), MAX_POLICY_SIZE);
        assert!(Policy::parse(&padded).is_ok());
        assert_eq!(
            Policy::parse(&format!("{padded}#")),
            Err(PolicyError::TooLarge {
                size: MAX_POLICY_SIZE + 1,
                max: MAX_POLICY_SIZE
            })
        );
    }

    #[test]
    fn non_canonical_key_encoding_is_a_duplicate() {
        // y = 0 is on the curve; p + 0 (p = 2^255 - 19) encodes the same point
        // non-canonically, and ed25519-dalek accepts it.
        let canonical = [0u8; 32];
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xed;
        non_canonical[31] = 0x7f;
        let a = raw_vkey("a.example", SIG_TYPE_COSIGNATURE, &canonical);
        let b = raw_vkey("b.example", SIG_TYPE_COSIGNATURE, &non_canonical);
        let vb: NoteVerifier = b.parse().unwrap();
        assert_eq!(vb.public_key().as_bytes(), &non_canonical);
        assert_eq!(
            Policy::parse(&format!("witness a {a}\nwitness b {b}\nquorum none\n")),
            Err(PolicyError::DuplicateKey {
                line: 2,
                first_line: 1
            })
        );
    }

    #[test]
    fn key_name_and_id_pairs_are_unique() {
        // A real collision of 32-bit key IDs is too slow to find in a test: drive the check
        // directly.
        let mut parser = Parser::default();
        assert_eq!(parser.register_key_parts(1, [1; 32], "n", 7), Ok(()));
        assert_eq!(
            parser.register_key_parts(2, [2; 32], "n", 7),
            Err(PolicyError::DuplicateKeyId {
                line: 2,
                first_line: 1
            })
        );
        assert_eq!(parser.register_key_parts(3, [3; 32], "m", 7), Ok(()));
        assert_eq!(parser.register_key_parts(4, [4; 32], "n", 8), Ok(()));
        assert_eq!(
            parser.register_key_parts(5, [1; 32], "z", 9),
            Err(PolicyError::DuplicateKey {
                line: 5,
                first_line: 1
            })
        );
    }

    #[test]
    fn accessors() {
        let l1 = lk("log.example/a", 1);
        let old = lk(ORIGIN, 2);
        let new = lk(ORIGIN, 3);
        let text = format!(
            "log {l1} https://log.example/a\nlog {old}\nlog {new} https://veritrail.example/\n\
             witness a {} https://a.example/w\nwitness b {}\nwitness c {} http://c.example\n\
             group g any a b c\nquorum g\n",
            wk("a.example", 11),
            wk("b.example", 12),
            wk("c.example", 13),
        );
        let p: Policy = text.parse().unwrap();
        assert_eq!(p, Policy::parse(&text).unwrap());
        assert_eq!(p.log_for(ORIGIN).unwrap().verifier().to_string(), old);
        assert_eq!(p.logs_for(ORIGIN).count(), 2);
        assert_eq!(
            p.log_for("log.example/a").unwrap().url(),
            Some("https://log.example/a")
        );
        assert!(p.log_for("log.example").is_none());
        assert_eq!(
            p.witness("b").unwrap().verifier().name().as_str(),
            "b.example"
        );
        assert!(p.witness("g").is_none());
        let urls: Vec<(&str, &str)> = p.witness_urls().map(|(w, url)| (w.name(), url)).collect();
        assert_eq!(
            urls,
            [("a", "https://a.example/w"), ("c", "http://c.example")]
        );
        assert_eq!(p.quorum(), Some("g"));
        assert_eq!(p.groups()[0].members(), ["a", "b", "c"]);
        assert_eq!(Policy::parse("quorum none").unwrap().quorum(), None);
        assert_eq!(
            PolicyError::DuplicateName {
                line: 3,
                name: "w".into(),
                first_line: 1
            }
            .to_string(),
            "line 3: name \"w\" already defined on line 1"
        );
    }

    /// A log, five witnesses `witness-a` to `witness-e` (keys named `a.witness.example`
    /// ...), then `rules`.
    struct Setup {
        log: NoteSigner,
        witnesses: Vec<CosignatureSigner>,
        policy: Policy,
    }

    const WITNESSES: [&str; 5] = ["a", "b", "c", "d", "e"];

    fn setup(rules: &str) -> Setup {
        let log = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
        let witnesses: Vec<CosignatureSigner> = WITNESSES
            .iter()
            .map(|n| {
                CosignatureSigner::generate(KeyName::new(format!("{n}.witness.example")).unwrap())
                    .unwrap()
            })
            .collect();
        let mut text = format!("log {}\n", log.verifier());
        for (n, w) in WITNESSES.iter().zip(&witnesses) {
            text.push_str(&format!(
                "witness witness-{n} {} https://{n}.witness.example/\n",
                w.verifier()
            ));
        }
        text.push_str(rules);
        Setup {
            log,
            witnesses,
            policy: text.parse().unwrap(),
        }
    }

    impl Setup {
        fn checkpoint_text(size: u64) -> String {
            Checkpoint::new(ORIGIN, TreeHead::new(size, leaf_hash(&size.to_be_bytes())))
                .unwrap()
                .to_text()
        }

        fn checkpoint(&self, size: u64) -> Note {
            Checkpoint::from_text(&Self::checkpoint_text(size))
                .unwrap()
                .sign(&self.log)
                .unwrap()
        }

        /// Adds witness `w`'s cosignature at `timestamp`.
        fn cosign(&self, note: &mut Note, w: usize, timestamp: u64) {
            let line = self.witnesses[w].sign(note.text(), timestamp).unwrap();
            note.add_signature(line).unwrap();
        }

        /// A checkpoint of size 1 cosigned at `NOW` by the witnesses at `ws`.
        fn cosigned(&self, ws: &[usize]) -> Note {
            let mut note = self.checkpoint(1);
            for &w in ws {
                self.cosign(&mut note, w, NOW);
            }
            note
        }

        fn verify(&self, note: &Note) -> Result<Verified, VerifyError> {
            self.policy.verify(note, NOW, 60)
        }
    }

    fn names(cosigners: &[Cosigner]) -> Vec<&str> {
        cosigners.iter().map(|c| c.witness.as_str()).collect()
    }

    fn not_met(quorum: &str, missing: &[&str], future: &[&str]) -> VerifyError {
        VerifyError::QuorumNotMet {
            quorum: quorum.into(),
            missing: missing.iter().map(|&m| m.into()).collect(),
            future: future.iter().map(|&f| f.into()).collect(),
        }
    }

    const TWO_OF_THREE: &str = "group g 2 witness-a witness-b witness-c\nquorum g\n";

    #[test]
    fn two_of_three() {
        let s = setup(TWO_OF_THREE);
        let note = s.cosigned(&[0, 2]);
        let verified = s
            .verify(&Note::from_bytes(&note.to_bytes()).unwrap())
            .unwrap();
        assert_eq!(verified.checkpoint.tree.size, 1);
        assert_eq!(verified.log, s.log.verifier());
        assert_eq!(
            verified.cosigners,
            [
                Cosigner {
                    witness: "witness-a".into(),
                    timestamp: NOW
                },
                Cosigner {
                    witness: "witness-c".into(),
                    timestamp: NOW
                }
            ]
        );
        assert!(verified.future.is_empty());
        assert!(s.verify(&s.cosigned(&[0, 1, 2])).is_ok());
        // A listed witness outside the quorum is reported but does not help.
        let verified = s.verify(&s.cosigned(&[1, 3, 2])).unwrap();
        assert_eq!(
            names(&verified.cosigners),
            ["witness-b", "witness-c", "witness-d"]
        );

        let err = s.verify(&s.cosigned(&[1])).unwrap_err();
        assert_eq!(err, not_met("g", &["witness-a", "witness-c"], &[]));
        assert_eq!(
            err.to_string(),
            "quorum not met: missing witness-a, witness-c"
        );
        assert_eq!(
            s.verify(&s.cosigned(&[3, 4, 1])),
            Err(not_met("g", &["witness-a", "witness-c"], &[]))
        );
        assert_eq!(
            s.verify(&s.checkpoint(1)),
            Err(not_met("g", &["witness-a", "witness-b", "witness-c"], &[]))
        );
    }

    #[test]
    fn forged_cosignatures() {
        let s = setup(TWO_OF_THREE);
        // Another key under witness-a's key name: its key ID differs, so the line is by an
        // unknown key and ignored (not counted, not an error).
        let impostor =
            CosignatureSigner::generate(KeyName::new("a.witness.example").unwrap()).unwrap();
        assert_ne!(impostor.key_id(), s.witnesses[0].key_id());
        let mut note = s.cosigned(&[1]);
        note.add_signature(impostor.sign(note.text(), NOW).unwrap())
            .unwrap();
        assert_eq!(
            s.verify(&note),
            Err(not_met("g", &["witness-a", "witness-c"], &[]))
        );

        // A line that claims witness-a's key name and key ID but was made by another key is a
        // bad signature by a known key: the note is rejected.
        let forged = impostor.sign(note.text(), NOW).unwrap();
        let claimed = NoteSignature::new(
            forged.name().clone(),
            s.witnesses[0].key_id(),
            forged.signature().to_vec(),
        )
        .unwrap();
        let mut note = s.cosigned(&[1, 2]);
        note.add_signature(claimed).unwrap();
        assert_eq!(
            s.verify(&note),
            Err(VerifyError::InvalidCosignature {
                witness: "witness-a".into(),
                source: CosignatureError::InvalidSignature {
                    name: "a.witness.example".into(),
                    key_id: s.witnesses[0].key_id(),
                },
            })
        );

        // A witness's real cosignature of another checkpoint, moved onto this one: also a bad
        // signature by a known key, so the note is rejected rather than the line ignored.
        let other = s.witnesses[0]
            .sign(&Setup::checkpoint_text(2), NOW)
            .unwrap();
        let mut note = s.cosigned(&[1, 2]);
        note.add_signature(other).unwrap();
        assert_eq!(
            s.verify(&note),
            Err(VerifyError::InvalidCosignature {
                witness: "witness-a".into(),
                source: CosignatureError::InvalidSignature {
                    name: "a.witness.example".into(),
                    key_id: s.witnesses[0].key_id(),
                },
            })
        );

        // A plain Ed25519 signature by the witness's key is not a cosignature (its key ID is
        // over type 0x01): ignored.
        let plain = NoteSigner::new(
            KeyName::new("a.witness.example").unwrap(),
            ed25519_dalek::SigningKey::from_bytes(&[42; 32]),
        );
        let mut note = s.cosigned(&[1, 2]);
        note.add_signature(plain.sign(note.text())).unwrap();
        assert!(s.verify(&note).is_ok());
    }

    #[test]
    fn a_witness_counts_once() {
        let s = setup(TWO_OF_THREE);
        let note = s.cosigned(&[0]);
        // Two valid lines by witness-a (`add_signature` would replace the first).
        let mut bytes = note.to_bytes();
        let again = s.witnesses[0].sign(note.text(), NOW - 10).unwrap();
        bytes.extend_from_slice(again.to_line().as_bytes());
        bytes.push(b'\n');
        let twice = Note::from_bytes(&bytes).unwrap();
        assert_eq!(twice.signatures().len(), 3);
        assert_eq!(
            s.verify(&twice),
            Err(not_met("g", &["witness-b", "witness-c"], &[]))
        );
        let mut with_b = twice.clone();
        s.cosign(&mut with_b, 1, NOW);
        let verified = s.verify(&with_b).unwrap();
        assert_eq!(
            verified.cosigners,
            [
                Cosigner {
                    witness: "witness-a".into(),
                    timestamp: NOW
                },
                Cosigner {
                    witness: "witness-b".into(),
                    timestamp: NOW
                }
            ]
        );
        // A bad second line by a known key rejects the note even though the first is good.
        let mut bytes = with_b.to_bytes();
        let good = s.witnesses[0].sign(note.text(), NOW).unwrap();
        let mut payload = good.signature().to_vec();
        payload[40] ^= 1;
        let bad = NoteSignature::new(good.name().clone(), good.key_id(), payload)
            .unwrap()
            .to_line();
        bytes.extend_from_slice(bad.as_bytes());
        bytes.push(b'\n');
        let note = Note::from_bytes(&bytes).unwrap();
        assert!(matches!(
            s.verify(&note),
            Err(VerifyError::InvalidCosignature { witness, .. }) if witness == "witness-a"
        ));
    }

    #[test]
    fn future_timestamps_do_not_count() {
        let s = setup(TWO_OF_THREE);
        let mut note = s.checkpoint(1);
        s.cosign(&mut note, 0, NOW);
        s.cosign(&mut note, 1, NOW + 61);
        let err = s.policy.verify(&note, NOW, 60).unwrap_err();
        assert_eq!(
            err,
            not_met("g", &["witness-b", "witness-c"], &["witness-b"])
        );
        assert_eq!(
            err.to_string(),
            "quorum not met: missing witness-b, witness-c (not counted, timestamped too far \
             in the future: witness-b)"
        );
        // At the edge of the skew it counts.
        let verified = s.policy.verify(&note, NOW, 61).unwrap();
        assert_eq!(names(&verified.cosigners), ["witness-a", "witness-b"]);
        assert!(verified.future.is_empty());
        let verified = s.policy.verify(&note, NOW + 1, 60).unwrap();
        assert_eq!(verified.cosigners[1].timestamp, NOW + 61);
        // Met without it: it is still reported.
        s.cosign(&mut note, 2, NOW - 3600);
        let verified = s.policy.verify(&note, NOW, 0).unwrap();
        assert_eq!(names(&verified.cosigners), ["witness-a", "witness-c"]);
        assert_eq!(
            verified.future,
            [Cosigner {
                witness: "witness-b".into(),
                timestamp: NOW + 61
            }]
        );
        // No overflow at the top of the range.
        assert!(s.policy.verify(&note, u64::MAX, u64::MAX).is_ok());
    }

    #[test]
    fn the_log_must_be_listed_and_must_have_signed() {
        let s = setup("quorum none\n");
        assert!(s.verify(&s.checkpoint(1)).is_ok());

        let stranger = NoteSigner::generate(KeyName::new("other.example/log").unwrap()).unwrap();
        let foreign = Checkpoint::new("other.example/log", TreeHead::empty())
            .unwrap()
            .sign(&stranger)
            .unwrap();
        assert_eq!(
            s.verify(&foreign),
            Err(VerifyError::UnknownLog {
                origin: "other.example/log".into()
            })
        );

        // The right origin, another key: the listed key never signed.
        let impostor = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
        let unsigned = Checkpoint::from_text(&Setup::checkpoint_text(1))
            .unwrap()
            .sign(&impostor)
            .unwrap();
        assert_eq!(
            s.verify(&unsigned),
            Err(VerifyError::LogSignature {
                origin: ORIGIN.into(),
                source: NoteError::NoVerifiedSignature { signatures: 1 }
            })
        );

        // A bad line by the listed key rejects the note.
        let good = s.checkpoint(1);
        let mut signature = good.signatures()[0].signature().to_vec();
        signature[10] ^= 1;
        let mut bad = Note::new(good.text()).unwrap();
        bad.add_signature(
            NoteSignature::new(KeyName::new(ORIGIN).unwrap(), s.log.key_id(), signature).unwrap(),
        )
        .unwrap();
        assert_eq!(
            s.verify(&bad),
            Err(VerifyError::LogSignature {
                origin: ORIGIN.into(),
                source: NoteError::InvalidSignature {
                    name: ORIGIN.into(),
                    key_id: s.log.key_id()
                }
            })
        );

        // Not a checkpoint.
        let mut hello = Note::new(format!("{ORIGIN}\n")).unwrap();
        hello.add_signature(s.log.sign(hello.text())).unwrap();
        assert_eq!(
            s.verify(&hello),
            Err(VerifyError::Checkpoint(CheckpointError::TooFewLines {
                got: 1
            }))
        );
    }

    #[test]
    fn rotated_log_keys() {
        let old = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
        let new = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
        let policy = Policy::parse(&format!(
            "log {}\nlog {}\nquorum none\n",
            old.verifier(),
            new.verifier()
        ))
        .unwrap();
        let checkpoint = Checkpoint::new(ORIGIN, TreeHead::empty()).unwrap();
        for signer in [&old, &new] {
            let verified = policy.verify(&checkpoint.sign(signer).unwrap(), NOW, 0);
            assert_eq!(verified.unwrap().log, signer.verifier());
        }
    }

    #[test]
    fn nested_groups() {
        let s = setup(
            "group x 2 witness-a witness-b witness-c\ngroup y any witness-d witness-e\n\
             group both all x y\nquorum both\n",
        );
        assert!(s.verify(&s.cosigned(&[0, 1, 3])).is_ok());
        assert!(s.verify(&s.cosigned(&[2, 1, 4])).is_ok());
        assert!(s.verify(&s.cosigned(&[0, 1, 2, 3, 4])).is_ok());
        assert_eq!(
            s.verify(&s.cosigned(&[0, 1])),
            Err(not_met(
                "both",
                &["witness-c", "witness-d", "witness-e"],
                &[]
            ))
        );
        assert_eq!(
            s.verify(&s.cosigned(&[0, 3, 4])),
            Err(not_met("both", &["witness-b", "witness-c"], &[]))
        );
        assert_eq!(
            s.verify(&s.cosigned(&[4])),
            Err(not_met(
                "both",
                &["witness-a", "witness-b", "witness-c", "witness-d"],
                &[]
            ))
        );

        // Three levels, mixing witnesses and groups as members. A group cannot be shared by
        // two branches (each name is a member of one group at most, see `policy_table`).
        let s = setup(
            "group x any witness-a witness-b\ngroup y all x witness-c\n\
             group q 2 y witness-d witness-e\nquorum q\n",
        );
        assert!(s.verify(&s.cosigned(&[0, 2, 3])).is_ok());
        assert!(s.verify(&s.cosigned(&[1, 2, 4])).is_ok());
        assert!(s.verify(&s.cosigned(&[3, 4])).is_ok());
        assert_eq!(
            s.verify(&s.cosigned(&[2, 3])),
            Err(not_met("q", &["witness-a", "witness-b", "witness-e"], &[]))
        );
        assert_eq!(
            s.verify(&s.cosigned(&[0, 1, 3])),
            Err(not_met("q", &["witness-c", "witness-e"], &[]))
        );
        // The quorum may be a group that is itself a member of another.
        let s = setup("group x any witness-a witness-b\ngroup y all x witness-c\nquorum x\n");
        assert!(s.verify(&s.cosigned(&[1])).is_ok());
        assert_eq!(
            s.verify(&s.cosigned(&[2, 3])),
            Err(not_met("x", &["witness-a", "witness-b"], &[]))
        );
    }

    #[test]
    fn quorum_none_and_single_witness() {
        let s = setup("quorum none\n");
        let verified = s.verify(&s.checkpoint(1)).unwrap();
        assert!(verified.cosigners.is_empty());
        let verified = s.verify(&s.cosigned(&[3])).unwrap();
        assert_eq!(names(&verified.cosigners), ["witness-d"]);
        // A bad line by a listed witness still rejects the note.
        let mut note = s.checkpoint(1);
        note.add_signature(
            s.witnesses[0]
                .sign(&Setup::checkpoint_text(5), NOW)
                .unwrap(),
        )
        .unwrap();
        assert!(matches!(
            s.verify(&note),
            Err(VerifyError::InvalidCosignature { .. })
        ));

        let s = setup("quorum witness-b\n");
        assert!(s.verify(&s.cosigned(&[1])).is_ok());
        assert_eq!(
            s.verify(&s.cosigned(&[0, 2])),
            Err(not_met("witness-b", &["witness-b"], &[]))
        );
    }

    /// The reference: a recursive evaluation over the generated structure.
    #[derive(Debug, Clone)]
    struct Shape {
        witnesses: usize,
        /// Members (indices into witnesses then groups) and threshold of each group. As the
        /// policy rules require, a node is a member of at most one group, once: the groups
        /// form a forest, and a witness reaches the quorum along one path at most.
        groups: Vec<(Vec<usize>, usize)>,
        /// Index of the quorum node, or `None`.
        quorum: Option<usize>,
    }

    impl Shape {
        fn name(&self, node: usize) -> String {
            if node < self.witnesses {
                format!("w{node}")
            } else {
                format!("g{}", node - self.witnesses)
            }
        }

        fn met(&self, node: usize, signed: &[bool]) -> bool {
            if node < self.witnesses {
                return signed[node];
            }
            let (members, k) = &self.groups[node - self.witnesses];
            members.iter().filter(|&&m| self.met(m, signed)).count() >= *k
        }

        fn involved(&self, node: usize, out: &mut Vec<bool>) {
            if node < self.witnesses {
                assert!(!out[node], "w{node} reached along two paths");
                out[node] = true;
            } else {
                for &m in &self.groups[node - self.witnesses].0 {
                    self.involved(m, out);
                }
            }
        }

        /// Every node listed as a group member, in listing order.
        fn members(&self) -> Vec<usize> {
            self.groups
                .iter()
                .flat_map(|(members, _)| members.iter().copied())
                .collect()
        }

        /// The policy text without its quorum line: the log, the witnesses `w<i>` (keys of
        /// `signers`) and the groups `g<i>`.
        fn text(&self, log: &NoteSigner, signers: &[CosignatureSigner]) -> String {
            let mut text = format!("log {}\n", log.verifier());
            for (i, w) in signers.iter().enumerate() {
                text.push_str(&format!("witness w{i} {}\n", w.verifier()));
            }
            for (i, (members, k)) in self.groups.iter().enumerate() {
                let members: Vec<String> = members.iter().map(|&m| self.name(m)).collect();
                text.push_str(&format!("group g{i} {k} {}\n", members.join(" ")));
            }
            text
        }
    }

    /// The log and witness signers of a shape.
    fn shape_signers(shape: &Shape) -> (NoteSigner, Vec<CosignatureSigner>) {
        let log = log_signer(ORIGIN, 0);
        let signers = (0..shape.witnesses)
            .map(|i| cosigner(&format!("w{i}.example"), 100 + i))
            .collect();
        (log, signers)
    }

    /// Random group structures (up to 4 witnesses and 5 groups) in which every node is a
    /// member of at most one group, with a random quorum and random cosigners.
    fn shape() -> impl Strategy<Value = (Shape, Vec<bool>)> {
        (
            1..5usize,
            prop::collection::vec((any::<u16>(), any::<u8>()), 0..6),
        )
            .prop_flat_map(|(witnesses, raw_groups)| {
                // The nodes no group holds yet, in index order: only they may become members.
                // A new group takes at least one of them and is free itself, so one is always
                // left.
                let mut free: Vec<usize> = (0..witnesses).collect();
                let mut groups = Vec::new();
                for (i, (mask, k)) in raw_groups.into_iter().enumerate() {
                    let mut members: Vec<usize> = free
                        .iter()
                        .enumerate()
                        .filter(|&(j, _)| mask & (1 << (j % 16)) != 0)
                        .map(|(_, &m)| m)
                        .collect();
                    if members.is_empty() {
                        members.push(free[usize::from(mask) % free.len()]);
                    }
                    free.retain(|m| !members.contains(m));
                    free.push(witnesses + i);
                    let k = 1 + usize::from(k) % members.len();
                    groups.push((members, k));
                }
                let nodes = witnesses + groups.len();
                (
                    Just(witnesses),
                    Just(groups),
                    prop::option::of(0..nodes),
                    prop::collection::vec(any::<bool>(), witnesses),
                )
            })
            .prop_map(|(witnesses, groups, quorum, signed)| {
                (
                    Shape {
                        witnesses,
                        groups,
                        quorum,
                    },
                    signed,
                )
            })
    }

    fn vocabulary() -> Vec<String> {
        let mut words: Vec<String> = [
            "log",
            "witness",
            "group",
            "quorum",
            "none",
            "all",
            "any",
            "0",
            "1",
            "2",
            "3",
            "01",
            "w1",
            "w2",
            "g1",
            "g2",
            "#",
            "\t",
            "https://x.example/",
            "http://",
            "ftp://x",
        ]
        .iter()
        .map(|w| (*w).to_owned())
        .collect();
        words.push(lk("log.example/a", 1));
        words.push(lk("w1.example", 2));
        words.push(wk("w1.example", 2));
        words.push(wk("w2.example", 3));
        words.push(wk("w3.example", 4));
        words
    }

    fn valid_policy() -> String {
        format!(
            "# a policy\nlog {} https://log.example/\nwitness w1 {}\nwitness w2 {} https://w2.example/\n\
             witness w3 {}\ngroup g 2 w1 w2\ngroup top any g w3\nquorum top\n",
            lk("log.example/a", 1),
            wk("w1.example", 2),
            wk("w2.example", 3),
            wk("w3.example", 4)
        )
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in any::<String>()) {
            if let Ok(policy) = Policy::parse(&text) {
                check_invariants(&policy);
            }
        }

        #[test]
        fn parse_never_panics_on_token_soup(
            lines in prop::collection::vec(
                prop::collection::vec(prop::sample::select(vocabulary()), 0..6),
                0..10,
            ),
            separator in prop::sample::select(vec![" ", "\t", "  "]),
        ) {
            let text: String = lines.iter().map(|l| format!("{}\n", l.join(separator))).collect();
            if let Ok(policy) = Policy::parse(&text) {
                check_invariants(&policy);
            }
        }

        #[test]
        fn parse_never_panics_on_mutated_policies(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = valid_policy().into_bytes();
            prop_assert!(Policy::parse(core::str::from_utf8(&bytes).unwrap()).is_ok());
            for (pos, byte) in edits {
                let i = pos.index(bytes.len());
                bytes[i] = byte;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(policy) = Policy::parse(&text) {
                check_invariants(&policy);
            }
        }

        #[test]
        fn evaluation_matches_a_recursive_reference((shape, signed) in shape()) {
            let members = shape.members();
            for (i, m) in members.iter().enumerate() {
                prop_assert!(!members[..i].contains(m), "generated {:?}", shape);
            }
            let (log, signers) = shape_signers(&shape);
            let mut text = shape.text(&log, &signers);
            let quorum = shape.quorum.map(|q| shape.name(q));
            text.push_str(&format!("quorum {}\n", quorum.as_deref().unwrap_or(NONE)));
            let policy = match Policy::parse(&text) {
                Ok(policy) => policy,
                // Deep random nesting stays far below MAX_DEPTH: every shape must parse.
                Err(e) => return Err(TestCaseError::fail(format!("{e}: {text}"))),
            };

            let mut note = Checkpoint::new(ORIGIN, TreeHead::empty()).unwrap().sign(&log).unwrap();
            for (w, &s) in signers.iter().zip(&signed) {
                if s {
                    note.add_signature(w.sign(note.text(), NOW).unwrap()).unwrap();
                }
            }
            let got = policy.verify(&note, NOW, 0);
            match shape.quorum {
                None => prop_assert!(got.is_ok()),
                Some(q) if shape.met(q, &signed) => {
                    let verified = got.unwrap();
                    prop_assert_eq!(verified.cosigners.len(), signed.iter().filter(|&&s| s).count());
                }
                Some(q) => {
                    let mut involved = vec![false; shape.witnesses];
                    shape.involved(q, &mut involved);
                    let missing: Vec<String> = (0..shape.witnesses)
                        .filter(|&i| involved[i] && !signed[i])
                        .map(|i| shape.name(i))
                        .collect();
                    prop_assert_eq!(got, Err(VerifyError::QuorumNotMet {
                        quorum: quorum.unwrap(),
                        missing,
                        future: vec![],
                    }));
                }
            }
        }

        #[test]
        fn a_second_membership_is_refused(
            (shape, _) in shape(),
            pick in any::<prop::sample::Index>(),
            again_first in any::<bool>(),
        ) {
            // A name already listed in some group, listed again in a new group next to a
            // name never listed (the last group is one): refused, naming the repeated one.
            let members = shape.members();
            prop_assume!(!members.is_empty());
            let again = shape.name(members[pick.index(members.len())]);
            let free = shape.name(shape.witnesses + shape.groups.len() - 1);
            let (log, signers) = shape_signers(&shape);
            let mut text = shape.text(&log, &signers);
            let valid = format!("{text}quorum none\n");
            prop_assert!(Policy::parse(&valid).is_ok());
            let line = text.lines().count() + 1;
            let listed = if again_first {
                format!("{again} {free}")
            } else {
                format!("{free} {again}")
            };
            text.push_str(&format!("group extra any {listed}\nquorum extra\n"));
            prop_assert_eq!(
                Policy::parse(&text),
                Err(PolicyError::DuplicateMember { line, name: again })
            );
        }
    }
}
