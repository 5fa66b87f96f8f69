//! The scrubbing table: at least 30 hits and 30 misses per rule family. A miss must hit no
//! rule at all (ordinary metadata passes untouched); a hit must be found as its own kind and
//! leave no trace of the secret in the output.

use super::*;
use base64::Engine as _;

fn scrubber() -> Scrubber {
    Scrubber::new(DEFAULT_MRN_PATTERN).unwrap()
}

/// Ordinary metadata that no rule may touch (part of every family's misses).
fn ordinary() -> Vec<String> {
    [
        "2026-03-01T12:00:00Z",
        "v1.4.2",
        "order 48213",
        "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "https://docs.example.com/guide#install",
        "/var/lib/veritrail/data",
        "192.168.10.24",
        "The patient asked about dosage timing.",
        "$1,234.56",
        "tool ehr_read returned 3 rows",
        "latency_ms=42",
        "ICD-10 E11.9",
        "en-US",
        "gpt-4o-mini",
        "retry 3 of 5",
        "region us-east-1",
        "bucket audit-archive-2026",
        "status: approved",
        "claim CLM-2026-000123",
        "ratio 0.75",
        "SKU-99812-B",
        "build 20260301.4",
        "ticket JIRA-4821",
        "file report_Q1.pdf",
        "model claude-3-5-sonnet",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn family(kind: &str) -> (Vec<String>, Vec<String>) {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<String>>();
    let (hits, near): (Vec<String>, Vec<String>) = match kind {
        "private_key" => {
            let kinds = [
                "",
                "RSA ",
                "EC ",
                "DSA ",
                "OPENSSH ",
                "ENCRYPTED ",
                "PGP ",
                "ED25519 ",
                "X25519 ",
                "SSH2 ENCRYPTED ",
            ];
            let mut hits = Vec::new();
            for k in kinds {
                let block = if k == "PGP " { " BLOCK" } else { "" };
                let begin = format!("-----BEGIN {k}PRIVATE KEY{block}-----");
                let end = format!("-----END {k}PRIVATE KEY{block}-----");
                hits.push(format!("{begin}\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n{end}"));
                hits.push(format!(
                    "key follows: {begin}\r\nMC4CAQAwBQYDK2VwBCIEIA==\r\n{end} (rotated)"
                ));
                hits.push(format!(
                    "{begin}\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAA (truncated"
                ));
            }
            let near = s(&[
                "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0B\n-----END PUBLIC KEY-----",
                "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----",
                "BEGIN PRIVATE KEY",
                "the private key was rotated",
                "-----BEGIN RSA PUBLIC KEY-----",
                "private_key_id",
                "-----BEGIN CERTIFICATE REQUEST-----",
                "PRIVATE KEY-----",
                "-----BEGIN PRIVATE-----",
                "--BEGIN PRIVATE KEY--",
            ]);
            (hits, near)
        }
        "jwt" => {
            let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
            let hits = (0..30)
                .map(|i| {
                    let header = b64(&format!(r#"{{"alg":"HS256","typ":"JWT","kid":"k{i}"}}"#));
                    let payload = b64(&format!(r#"{{"sub":"user-{i}","iat":17000000{i:02}}}"#));
                    let signature = b64(&format!("signature bytes number {i} of thirty"));
                    let token = format!("{header}.{payload}.{signature}");
                    match i % 3 {
                        0 => token,
                        1 => format!("Authorization: Bearer {token}"),
                        _ => format!("{{\"id_token\": \"{token}\"}}"),
                    }
                })
                .collect();
            let near = s(&[
                "eyJ",
                "eyJhbGci.eyJzdWIi",
                "eyJ.eyJ.sig",
                "eyJhbGciOiJIUzI1NiJ9",
                "header.payload.signature",
                "a.b.c",
                "eyJhbGciOiJIUzI1NiJ9.payload.signature",
                "jwt expired at 12:00",
                "id_token missing",
                "eyJh.eyJz.",
            ]);
            (hits, near)
        }
        "url_password" => {
            let schemes = [
                "postgres",
                "mysql",
                "https",
                "redis",
                "amqp",
                "mongodb+srv",
                "ftp",
                "smtp",
                "sftp",
                "git+https",
            ];
            let creds = ["admin:s3cret", "root:hunter2", ":p4ssw0rd"];
            let mut hits = Vec::new();
            for scheme in schemes {
                for cred in creds {
                    hits.push(format!(
                        "{scheme}://{cred}@db-{}.internal:5432/app",
                        hits.len()
                    ));
                }
            }
            let near = s(&[
                "https://example.com/path",
                "postgres://db.internal:5432/app",
                "https://example.com:8443/a:b",
                "ssh://host:22",
                "http://[::1]:8080/",
                "file:///etc/hosts",
                "https://example.com/@user/status",
                "redis://cache:6379/0",
                "mailto:",
                "s3://bucket/key:with:colons",
            ]);
            (hits, near)
        }
        "cloud_key" => {
            let mut hits: Vec<String> = (0..12)
                .map(|i| {
                    format!(
                        "key AKIA{:0>16}",
                        format!("IOSFODNN7EX{i:02}AMP")[..16].to_owned()
                    )
                })
                .collect();
            hits.extend((0..4).map(|i| format!("ASIAXYZ{i}ABCDEFGHIJKL")));
            hits.extend((0..5).map(|i| {
                format!("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY{i:0>10}")
            }));
            hits.extend((0..3).map(|i| {
                format!(
                    "DefaultEndpointsProtocol=https;AccountName=dev;AccountKey={}{i}==",
                    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq"
                )
            }));
            hits.extend((0..3).map(|i| format!("AIzaSyD{i}{}", "x".repeat(31))));
            hits.extend((0..3).map(|i| format!("ya29.a0AfH6SM{i}{}", "b".repeat(30))));
            let near = s(&[
                "AKIA1234",
                "akiaiosfodnn7example",
                "AKIAIOSFODNN7EXAMP",
                "ASIA-PACIFIC region",
                "aws_region=us-east-1",
                "AccountName=devstore",
                "AIza",
                "AKIA",
                "ya29",
                "aws_secret_access_key is set",
            ]);
            (hits, near)
        }
        "api_key" => {
            let mut hits: Vec<String> = (0..5)
                .map(|i| format!("sk-proj-{i}abcdefghijklmnopqrstuvwxyz0123"))
                .collect();
            hits.extend((0..3).map(|i| format!("sk_live_{i}51H8abcdefghijklmnopqr")));
            hits.extend((0..3).map(|i| format!("token ghp_{i}{}", "A1b2C3d4E5".repeat(4))));
            hits.extend((0..2).map(|i| format!("github_pat_11ABCDEFG{i}_{}", "z".repeat(30))));
            hits.extend((0..2).map(|i| format!("glpat-{i}xYz123456789abcdefg")));
            hits.extend((0..3).map(|i| format!("slack xoxb-{i}2345-6789-abcdefghij")));
            hits.extend((0..2).map(|i| format!("npm_{i}{}", "q".repeat(35))));
            hits.extend((0..4).map(|i| format!("Authorization: Bearer {i}f8a9c2d4e6b1a3c5d7e9f0")));
            hits.extend(s(&[
                "api_key=0123456789abcdef",
                "API-KEY: 9f8e7d6c5b4a",
                "secret: 'Tr0ub4dor&3'",
                "password=correcthorsebattery",
                "access_token=abcdefgh12345678",
                "auth-token: zzzzzzzzzzzz",
            ]));
            let near = s(&[
                "sk-1",
                "task-manager",
                "Bearer",
                "bearer of good news",
                "api_key",
                "password: short",
                "the password was reset",
                "ghp_short",
                "xoxb",
                "secretary of state",
                "skeleton-key",
            ]);
            (hits, near)
        }
        "ssn" => {
            let hits = (0..30)
                .map(|i| {
                    let area = 100 + i * 23;
                    let number = format!("{area:03}-{:02}-{:04}", 10 + i, 1000 + i * 7);
                    if i % 2 == 0 {
                        number
                    } else {
                        format!("SSN {number} on file")
                    }
                })
                .collect();
            let near = s(&[
                "000-12-3456",
                "666-12-3456",
                "900-12-3456",
                "123-00-4567",
                "123-45-0000",
                "123456789",
                "123-456-789",
                "12-345-6789",
                "1234-56-7890",
                "999-99-9999",
            ]);
            (hits, near)
        }
        "email" => {
            let hits = (0..30)
                .map(|i| match i % 3 {
                    0 => format!("patient{i}@example.com"),
                    1 => format!("contact: first.last+tag{i}@mail.hospital-{i}.org"),
                    _ => format!("<dr_{i}@clinic.co.uk>"),
                })
                .collect();
            let near = s(&[
                "user@localhost",
                "@handle",
                "a@b",
                "name at example dot com",
                "example.com",
                "foo@bar",
                "@@",
                "user@.com",
                "email address missing",
                "mailto:",
            ]);
            (hits, near)
        }
        "phone" => {
            let mut hits: Vec<String> = (0..10)
                .map(|i| format!("555-{:03}-{:04}", 100 + i, 4000 + i))
                .collect();
            hits.extend((0..5).map(|i| format!("call ({}) 555-01{i:02}", 200 + i)));
            hits.extend((0..5).map(|i| format!("+1 415 555 {:04}", 2600 + i)));
            hits.extend((0..5).map(|i| format!("+44 20 7946 0{i:03}")));
            hits.extend(s(&[
                "555.123.4567",
                "+15551234567",
                "+33 1 23 45 67 89",
                "+49 30 1234 5678",
                "tel: +61 2 9374 4000",
            ]));
            let near = s(&[
                "5551234567",
                "12-34-56",
                "555-1234",
                "version 10.0.19045",
                "ticket #123456",
                "+5 points",
                "ISBN 978-3-16-148410-0",
                "1-800",
                "12 345",
                "2026-03-01 12:00",
            ]);
            (hits, near)
        }
        "mrn" => {
            let hits = (0..30)
                .map(|i| match i % 5 {
                    0 => format!("MRN {}", 1_000_000 + i),
                    1 => format!("mrn:{}", 10_000_000 + i),
                    2 => format!("MRN#00{}", 123_456 + i),
                    3 => format!("MRN-{}", 9_876_543 + i),
                    _ => format!("Patient MRN: {}", 123_456 + i),
                })
                .collect();
            let near = s(&[
                "MRN",
                "MRN 12345",
                "MRNA vaccine",
                "mRNA-1273",
                "HMRN 1234567",
                "MRN 12345678901",
                "MRN unknown",
                "the MRN field is required",
                "MR 1234567",
                "RN 1234567",
            ]);
            (hits, near)
        }
        other => panic!("no family {other}"),
    };
    let mut misses = near;
    misses.extend(ordinary());
    (hits, misses)
}

#[test]
fn every_family_has_30_hits_and_30_misses_and_they_behave() {
    let scrubber = scrubber();
    let mut wrong = Vec::new();
    for kind in KINDS {
        let (hits, misses) = family(kind);
        assert!(hits.len() >= 30, "{kind}: {} hits", hits.len());
        assert!(misses.len() >= 30, "{kind}: {} misses", misses.len());
        for hit in &hits {
            let mut kinds = BTreeSet::new();
            let out = scrubber.scrub_text(hit, &mut kinds);
            if !kinds.contains(kind) {
                wrong.push(format!("{kind}: not found in {hit:?} (found {kinds:?})"));
            }
            if !out.contains(&format!("[REDACTED:{kind}]")) {
                wrong.push(format!("{kind}: no marker in {out:?}"));
            }
        }
        for miss in &misses {
            let kinds = scrubber.kinds_in(miss);
            if !kinds.is_empty() {
                wrong.push(format!("{kind}: {miss:?} wrongly hit {kinds:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn values_are_scrubbed_in_place_with_their_fields() {
    let scrubber = scrubber();
    let mut value = serde_json::json!({
        "note": "reach me at jane.doe@example.com or 555-123-4567",
        "nested": [{"conn": "postgres://app:pw123@db/x"}, 7, null],
        "patient@example.com": true,
    });
    let (mut kinds, mut hits) = (BTreeSet::new(), Vec::new());
    scrubber.scrub_value("details", &mut value, &mut kinds, &mut hits);
    assert_eq!(
        kinds.iter().map(String::as_str).collect::<Vec<_>>(),
        vec!["email", "phone", "url_password"]
    );
    let text = value.to_string();
    for secret in ["jane.doe", "555-123", "pw123", "patient@"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let fields: BTreeSet<String> = hits.iter().map(|h| h.field.clone()).collect();
    assert!(fields.contains("details.note"), "{fields:?}");
    assert!(fields.contains("details.nested[0].conn"), "{fields:?}");
}

#[test]
fn a_custom_mrn_pattern_replaces_the_default_and_a_bad_one_is_refused() {
    let custom = Scrubber::new(r"\bPT-\d{5}\b").unwrap();
    assert!(custom.kinds_in("record PT-12345").contains("mrn"));
    assert!(custom.kinds_in("MRN 1234567").is_empty());
    assert!(Scrubber::new("(unclosed").is_err());
}
