//! Verifier key strings: `NoteVerifier::from_str` (`<name>+<hex key ID>+<base64(type || key)>`).
//!
//! Asserts:
//! - the raw input, when it parses, prints back to the identical string, has type 0x01 or
//!   0x04 and a key ID equal to the one computed from name, type and key;
//! - a key string assembled from fuzzed parts (name, key ID, type byte, key bytes; the key ID
//!   usually computed, so that the fuzzer reaches past the key ID check) parses exactly when
//!   every rule holds, and otherwise fails with the exact error of the first broken rule.
//!   This is what explores non-canonical and low-order Ed25519 point encodings.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use veritrail_fuzz::base64_encode;
use veritrail_ledger::note::{
    ED25519_KEY_SIZE, KeyName, MAX_KEY_STRING_SIZE, NoteError, NoteVerifier, SIG_TYPE_COSIGNATURE,
    SIG_TYPE_ED25519, key_id,
};

fn check_parsed(s: &str, verifier: &NoteVerifier) {
    assert_eq!(verifier.to_string(), s, "re-encoding differs");
    let ty = verifier.signature_type();
    assert!(ty == SIG_TYPE_ED25519 || ty == SIG_TYPE_COSIGNATURE);
    assert_eq!(
        verifier.key_id(),
        key_id(verifier.name(), ty, verifier.public_key().as_bytes())
    );
    let rebuilt = if ty == SIG_TYPE_ED25519 {
        NoteVerifier::ed25519(verifier.name().clone(), *verifier.public_key())
    } else {
        NoteVerifier::cosignature(verifier.name().clone(), *verifier.public_key())
    };
    assert_eq!(&rebuilt, verifier);
}

fn structured(u: &mut Unstructured<'_>) -> Result<()> {
    let name: String = if u.arbitrary()? {
        u.arbitrary()?
    } else {
        "veritrail.example/log".to_owned()
    };
    let ty: u8 = match u.int_in_range(0u8..=3)? {
        0 => u.arbitrary()?,
        1 => SIG_TYPE_COSIGNATURE,
        _ => SIG_TYPE_ED25519,
    };
    let key_len = if u.int_in_range(0u8..=7)? == 0 {
        u.int_in_range(0..=40)?
    } else {
        ED25519_KEY_SIZE
    };
    let key = u.bytes(key_len)?.to_vec();
    let computed = KeyName::new(name.as_str())
        .ok()
        .map(|n| key_id(&n, ty, &key));
    let id: u32 = match computed {
        Some(id) if u.int_in_range(0u8..=7)? != 0 => id,
        _ => u.arbitrary()?,
    };
    let mut material = vec![ty];
    material.extend_from_slice(&key);
    let s = format!("{name}+{id:08x}+{}", base64_encode(&material));
    let got = s.parse::<NoteVerifier>();

    if s.len() > MAX_KEY_STRING_SIZE {
        assert_eq!(
            got,
            Err(NoteError::KeyStringTooLong {
                size: s.len(),
                max: MAX_KEY_STRING_SIZE
            })
        );
        return Ok(());
    }
    if name.contains('+') {
        // The string splits inside the name: no exact expectation, but no panic, and
        // anything accepted must still print back identically.
        if let Ok(v) = got {
            check_parsed(&s, &v);
        }
        return Ok(());
    }
    let want_error = if let Err(e) = KeyName::new(name.as_str()) {
        Some(e)
    } else if ty != SIG_TYPE_ED25519 && ty != SIG_TYPE_COSIGNATURE {
        Some(NoteError::UnsupportedKeyType { got: ty })
    } else if key.len() != ED25519_KEY_SIZE {
        Some(NoteError::KeyLength {
            got: key.len(),
            want: ED25519_KEY_SIZE,
        })
    } else if Some(id) != computed {
        Some(NoteError::KeyIdMismatch {
            name: name.clone(),
            got: id,
            want: computed.expect("name is valid here"),
        })
    } else {
        None
    };
    match (want_error, got) {
        (Some(want), got) => assert_eq!(got, Err(want)),
        (None, Ok(v)) => {
            check_parsed(&s, &v);
            assert_eq!(v.key_id(), id);
            assert_eq!(v.signature_type(), ty);
            assert_eq!(v.public_key().as_bytes().as_slice(), key.as_slice());
        }
        // Every rule of the string holds: only the point itself can be refused.
        (None, Err(e)) => assert_eq!(e, NoteError::InvalidPublicKey),
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = core::str::from_utf8(data)
        && let Ok(verifier) = s.parse::<NoteVerifier>()
    {
        check_parsed(s, &verifier);
    }
    let _ = structured(&mut Unstructured::new(data));
});
