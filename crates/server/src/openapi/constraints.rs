//! The document states what the server enforces: every parameter's range, pattern and
//! example; each pattern accepts what the server's parser accepts, checked with arbitrary and
//! mutated inputs; body lengths are the limits; security follows the access policy.

use std::collections::BTreeMap;

use proptest::prelude::*;
use regex::Regex;
use serde_json::Value;
use veritrail_api::limits::MAX_IDEMPOTENCY_KEY_LEN;
use veritrail_api::media::WAIT_PUBLISHED;
use veritrail_ledger::Hash;
use veritrail_ledger::bundle::MAX_ENTRY_SIZE;
use veritrail_ledger::tile::{TileError, TileId, TileKind};

use crate::auth::{Auth, Role, TokenFile};
use crate::config::LimitsConfig;
use crate::idempotency::validate_key;
use crate::query::Params;

fn document(auth: &Auth, limits: &LimitsConfig) -> Value {
    serde_json::to_value(crate::api_document_for(auth, limits)).unwrap()
}

fn default_document() -> Value {
    document(&Auth::default(), &LimitsConfig::default())
}

/// A schema, with a `$ref` to a component resolved.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// The regex of a `pattern`, which must be anchored at both ends.
fn regex(pattern: &str) -> Regex {
    assert!(
        pattern.starts_with('^') && pattern.ends_with('$'),
        "{pattern} is not anchored"
    );
    Regex::new(pattern).unwrap()
}

/// The pattern of the schema of parameter `name` of `GET path` (or the component `name`).
fn parameter_pattern(doc: &Value, method: &str, path: &str, name: &str) -> Regex {
    let parameters = doc["paths"][path][method]["parameters"].as_array().unwrap();
    let parameter = parameters.iter().find(|p| p["name"] == name).unwrap();
    regex(
        resolve(doc, &parameter["schema"])["pattern"]
            .as_str()
            .unwrap(),
    )
}

fn component(doc: &Value, name: &str) -> Value {
    doc["components"]["schemas"][name].clone()
}

/// Every `(method, path, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    all
}

#[test]
fn every_parameter_states_its_range_or_form_and_an_example() {
    let doc = default_document();
    let mut failures = Vec::new();
    for (method, path, operation) in operations(&doc) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let name = parameter["name"].as_str().unwrap();
            let at = format!("{method} {path} {name}");
            let schema = resolve(&doc, &parameter["schema"]);
            match schema["type"].as_str() {
                Some("integer") => {
                    // A u64, or a page size with its own maximum (`limit`).
                    let maximum = schema["maximum"].as_u64();
                    let bounded =
                        maximum == Some(u64::MAX) || (name == "limit" && maximum == Some(1000));
                    if schema["format"] != "uint64"
                        || schema["minimum"].as_u64().is_none()
                        || !bounded
                    {
                        failures.push(format!("{at}: not a u64 with a minimum: {schema}"));
                    }
                }
                Some("string") => {
                    if schema["pattern"].as_str().is_none()
                        && schema["enum"].as_array().is_none()
                        && schema["format"].as_str() != Some("date-time")
                    {
                        failures.push(format!(
                            "{at}: a string without pattern, enum or date-time format"
                        ));
                    }
                }
                _ => failures.push(format!("{at}: type {} (nullable?)", schema["type"])),
            }
            let has_example = !parameter["example"].is_null()
                || !schema["example"].is_null()
                || schema["examples"].as_array().is_some_and(|e| !e.is_empty())
                || schema["enum"].as_array().is_some_and(|e| !e.is_empty());
            if !has_example {
                failures.push(format!("{at}: no example"));
            }
            // Every example matches its own pattern.
            if let Some(pattern) = schema["pattern"].as_str() {
                let pattern = regex(pattern);
                let examples = schema["examples"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .chain([schema["example"].clone(), parameter["example"].clone()])
                    .filter(|e| !e.is_null());
                for example in examples {
                    if !pattern.is_match(example.as_str().unwrap_or_default()) {
                        failures.push(format!("{at}: example {example} misses its pattern"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lengths_and_values_are_the_limits() {
    let doc = default_document();
    let length = |name: &str, key: &str| component(&doc, name)[key].as_u64().unwrap();
    assert_eq!(length("RawEntry", "minLength"), 1);
    assert_eq!(length("RawEntry", "maxLength"), MAX_ENTRY_SIZE as u64);
    assert_eq!(length("EntryBatch", "minLength"), 3);
    assert_eq!(
        length("EntryBatch", "maxLength"),
        LimitsConfig::default().max_body_bytes as u64
    );
    assert_eq!(length("HashTile", "maxLength"), 256 * 32);
    assert_eq!(
        length("EntryBundle", "maxLength"),
        256 * (MAX_ENTRY_SIZE as u64 + 2)
    );
    let key = &doc["paths"]["/v1/entries"]["post"]["parameters"][1];
    assert_eq!(key["name"], "Idempotency-Key");
    assert_eq!(
        key["schema"]["maxLength"].as_u64(),
        Some(MAX_IDEMPOTENCY_KEY_LEN as u64)
    );
    assert_eq!(
        component(&doc, "WaitFor")["enum"],
        serde_json::json!([WAIT_PUBLISHED])
    );
    // The batch body's length is the running server's `--max-body-bytes`.
    let small = LimitsConfig {
        max_body_bytes: 4096,
        ..LimitsConfig::default()
    };
    let doc = document(&Auth::default(), &small);
    assert_eq!(
        component(&doc, "EntryBatch")["maxLength"].as_u64(),
        Some(4096)
    );
}

/// The role each operation needs, from the table in `auth.rs`; `None` for public ones.
fn needed_role(method: &str, path: &str) -> Option<Role> {
    match (method, path) {
        ("post", "/v1/entries")
        | ("post", "/v1/records")
        | ("post", "/v1/traces")
        | ("post", "/v1/logs") => Some(Role::Append),
        ("get", "/v1/records/{index}")
        | ("get", "/v1/records/{index}/payloads/{name}")
        | ("get", "/v1/records")
        | ("get", "/v1/conversations/{id}") => Some(Role::Audit),
        ("post", "/v1/admin/erase")
        | ("post", "/v1/admin/holds")
        | ("post", "/v1/admin/archive")
        | ("post", "/v1/admin/holds/{hold}/release") => Some(Role::Admin),
        ("get", "/v1/admin/holds") => Some(Role::Audit),
        ("get", "/v1/entries/{index}")
        | ("get", "/tile/entries/{path}")
        | ("get", "/v1/proof/inclusion/by-leaf-hash") => Some(Role::Read),
        ("get", "/v1/checkpoints/{size}") => Some(Role::Audit),
        ("get", "/metrics") => Some(Role::Admin),
        _ => None,
    }
}

#[test]
fn security_names_the_role_and_follows_the_access_policy() {
    let tokens = Auth::from_file(&TokenFile::default(), std::path::Path::new("."), false).unwrap();
    let public_read =
        Auth::from_file(&TokenFile::default(), std::path::Path::new("."), true).unwrap();
    let limits = LimitsConfig::default();
    for (auth, mode) in [
        (&tokens, "tokens"),
        (&public_read, "--public-read"),
        (&Auth::disabled(), "--no-auth"),
    ] {
        let doc = document(auth, &limits);
        for (method, path, operation) in operations(&doc) {
            let want = match (needed_role(&method, &path), mode) {
                (_, "--no-auth") | (None, _) => Value::Null,
                (Some(Role::Read), "--public-read") => {
                    serde_json::json!([{}, {"bearer": ["read"]}])
                }
                (Some(role), _) => serde_json::json!([{"bearer": [role.as_str()]}]),
            };
            assert_eq!(operation["security"], want, "{mode}: {method} {path}");
        }
    }
}

#[test]
fn no_parameter_may_be_null() {
    let doc = default_document();
    let text = serde_json::to_string(&doc["paths"]).unwrap();
    assert!(!text.contains("\"null\""), "a parameter schema allows null");
}

/// Tile paths after `tile/`, canonical.
fn tile_paths() -> impl Strategy<Value = TileId> {
    let index = prop_oneof![0u64..2000, any::<u64>(), Just(u64::MAX)];
    let width = prop_oneof![Just(256u16), 1u16..256];
    (
        prop_oneof![Just(None), (0u8..64).prop_map(Some)],
        index,
        width,
    )
        .prop_map(|(level, index, width)| match level {
            Some(level) => TileId::hash(level, index, width).unwrap(),
            None => TileId::entries(index, width).unwrap(),
        })
}

/// A string with one character replaced, inserted or removed at `at`.
fn mutate(text: &str, at: usize, with: char, how: u8) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = at % (chars.len() + 1);
    match how % 3 {
        0 if at < chars.len() => chars[at] = with,
        1 => chars.insert(at, with),
        _ if at < chars.len() => {
            chars.remove(at);
        }
        _ => chars.push(with),
    }
    chars.into_iter().collect()
}

/// Whether the tile path parser takes `path` (after `tile/`) as a tile of `kind`; an index
/// above `u64::MAX`, which the pattern cannot rule out, counts as taken.
fn parser_takes(path: &str, entries: bool) -> bool {
    match TileId::from_path(&format!("tile/{path}")) {
        Ok(tile) => (tile.kind() == TileKind::Entries) == entries,
        Err(TileError::IndexOverflow) => path.starts_with("entries/") == entries,
        Err(_) => false,
    }
}

proptest! {
    #[test]
    fn the_tile_patterns_accept_what_the_parser_accepts(
        tile in tile_paths(),
        at in any::<usize>(),
        with in prop::sample::select(vec!['0', '1', '5', '9', 'x', '/', '.', 'p', 'e', '-', '+', ' ']),
        how in any::<u8>(),
    ) {
        let doc = default_document();
        let hashes = parameter_pattern(&doc, "get", "/tile/{path}", "path");
        let bundles = parameter_pattern(&doc, "get", "/tile/entries/{path}", "path");
        let path = tile.path();
        let after = path.strip_prefix("tile/").unwrap();
        let candidates = [after.to_owned(), mutate(after, at, with, how)];
        for candidate in candidates {
            prop_assert_eq!(hashes.is_match(&candidate), parser_takes(&candidate, false), "{}", candidate);
            let bundle = candidate.strip_prefix("entries/");
            prop_assert_eq!(
                bundle.is_some_and(|b| bundles.is_match(b)),
                parser_takes(&candidate, true),
                "{}", candidate
            );
        }
    }

    #[test]
    fn the_leaf_hash_pattern_accepts_what_the_parser_accepts(
        bytes in any::<[u8; 32]>(),
        at in any::<usize>(),
        with in prop::sample::select(vec!['A', 'B', 'Q', 'g', 'w', '0', '1', '+', '/', '=', '-', '_', ' ']),
        how in any::<u8>(),
    ) {
        let pattern = regex(component(&default_document(), "LeafHash")["pattern"].as_str().unwrap());
        let text = Hash(bytes).to_base64();
        prop_assert!(pattern.is_match(&text));
        let mutated = mutate(&text, at, with, how);
        prop_assert_eq!(pattern.is_match(&mutated), Hash::from_base64(&mutated).is_ok(), "{}", mutated);
    }

    #[test]
    fn the_idempotency_key_pattern_accepts_what_the_server_accepts(
        key in prop_oneof![
            "[ -~]{0,260}",
            "[!-~]{250,260}",
            ".{0,20}",
        ],
    ) {
        let doc = default_document();
        let schema = &doc["paths"]["/v1/entries"]["post"]["parameters"][1]["schema"];
        let pattern = regex(schema["pattern"].as_str().unwrap());
        prop_assert_eq!(pattern.is_match(&key), validate_key(key.as_bytes()).is_ok(), "{:?}", key);
    }

    #[test]
    fn the_proof_flag_pattern_accepts_what_the_server_accepts(
        value in prop_oneof![
            prop::sample::select(vec!["", "0", "1", "true", "false", "2", "01", "TRUE", "yes", "truefalse"]).prop_map(str::to_owned),
            "[a-z0-9]{0,6}",
        ],
    ) {
        let pattern = regex(component(&default_document(), "ProofFlag")["pattern"].as_str().unwrap());
        let params = Params::parse(Some(&format!("proof={value}")), &["proof"]).unwrap();
        prop_assert_eq!(pattern.is_match(&value), params.flag("proof").is_ok(), "{:?}", value);
    }
}

#[test]
fn the_examples_name_what_a_600_entry_log_holds() {
    let doc = default_document();
    let mut examples = BTreeMap::new();
    for name in ["HashTilePath", "EntryBundlePath"] {
        let values: Vec<String> = component(&doc, name)["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        examples.insert(name, values);
    }
    for path in &examples["HashTilePath"] {
        let tile = TileId::from_path(&format!("tile/{path}")).unwrap();
        let TileKind::Hash { level } = tile.kind() else {
            panic!("{path}")
        };
        let width = veritrail_ledger::tile::hash_tile_width(level, tile.index(), 600);
        assert!(width >= Some(tile.width()), "{path} is not in a log of 600");
    }
    for path in &examples["EntryBundlePath"] {
        let tile = TileId::from_path(&format!("tile/entries/{path}")).unwrap();
        let width = veritrail_ledger::tile::entry_bundle_width(tile.index(), 600);
        assert!(width >= Some(tile.width()), "{path} is not in a log of 600");
    }
    // The leaf hash example is the README's first entry.
    assert_eq!(
        component(&doc, "LeafHash")["example"],
        veritrail_ledger::leaf_hash(br#"{"event":"tool_call"}"#).to_base64()
    );
}
