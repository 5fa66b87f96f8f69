//! Private key strings: `NoteSigner::from_str` and `CosignatureSigner::from_str`
//! (`PRIVATE+KEY+<name>+<hex key ID>+<base64(type || 32-byte seed)>`).
//!
//! Asserts:
//! - the raw input, when it parses as either signer, prints back to the identical string, and
//!   the signer's verifier accepts what the signer signs;
//! - a key string assembled from fuzzed parts (name, key ID, type byte, seed bytes; the key
//!   ID usually computed from the seed) is accepted by exactly the signer of its type, and
//!   otherwise refused with the exact error of the first broken rule.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use veritrail_fuzz::base64_encode;
use veritrail_ledger::cosignature::{CosignatureError, CosignatureSigner, verify_cosignature};
use veritrail_ledger::note::{
    ED25519_KEY_SIZE, KeyName, MAX_KEY_STRING_SIZE, Note, NoteError, NoteSigner,
    SIG_TYPE_COSIGNATURE, SIG_TYPE_ED25519,
};

const TEXT: &str = "veritrail.example/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";

fn check_note_signer(s: &str, signer: &NoteSigner) {
    assert_eq!(signer.to_private_key_string(), s, "re-encoding differs");
    let verifier = signer.verifier();
    assert_eq!(verifier.key_id(), signer.key_id());
    assert_eq!(verifier.signature_type(), SIG_TYPE_ED25519);
    let mut note = Note::new(TEXT).expect("valid text");
    note.add_signature(signer.sign(TEXT))
        .expect("one signature");
    assert_eq!(note.verify(&[verifier]).map(|v| v.len()), Ok(1));
}

fn check_cosigner(s: &str, signer: &CosignatureSigner) {
    assert_eq!(signer.to_private_key_string(), s, "re-encoding differs");
    let verifier = signer.verifier();
    assert_eq!(verifier.key_id(), signer.key_id());
    assert_eq!(verifier.signature_type(), SIG_TYPE_COSIGNATURE);
    let mut note = Note::new(TEXT).expect("valid text");
    note.add_signature(signer.sign(TEXT, 42).expect("valid time"))
        .expect("one signature");
    assert_eq!(verify_cosignature(&verifier, &note), Ok(42));
}

fn structured(u: &mut Unstructured<'_>) -> Result<()> {
    let name: String = if u.arbitrary()? {
        u.arbitrary()?
    } else {
        "witness.example/w1".to_owned()
    };
    let ty: u8 = match u.int_in_range(0u8..=3)? {
        0 => u.arbitrary()?,
        1 => SIG_TYPE_COSIGNATURE,
        _ => SIG_TYPE_ED25519,
    };
    let seed_len = if u.int_in_range(0u8..=7)? == 0 {
        u.int_in_range(0..=40)?
    } else {
        ED25519_KEY_SIZE
    };
    let seed = u.bytes(seed_len)?.to_vec();
    let seed32: Option<[u8; 32]> = seed.as_slice().try_into().ok();
    let key_name = KeyName::new(name.as_str()).ok();
    // The key ID over the type the string claims, when there is one to compute.
    let computed = match (&key_name, seed32, ty) {
        (Some(n), Some(seed), SIG_TYPE_ED25519) => {
            Some(NoteSigner::from_seed(n.clone(), seed).key_id())
        }
        (Some(n), Some(seed), SIG_TYPE_COSIGNATURE) => {
            Some(CosignatureSigner::from_seed(n.clone(), seed).key_id())
        }
        _ => None,
    };
    let id: u32 = match computed {
        Some(id) if u.int_in_range(0u8..=7)? != 0 => id,
        _ => u.arbitrary()?,
    };
    let mut material = vec![ty];
    material.extend_from_slice(&seed);
    let s = format!("PRIVATE+KEY+{name}+{id:08x}+{}", base64_encode(&material));
    let note_signer = s.parse::<NoteSigner>();
    let cosigner = s.parse::<CosignatureSigner>();

    if s.len() > MAX_KEY_STRING_SIZE {
        let want = NoteError::KeyStringTooLong {
            size: s.len(),
            max: MAX_KEY_STRING_SIZE,
        };
        assert_eq!(note_signer.err(), Some(want.clone()));
        assert_eq!(cosigner.err(), Some(CosignatureError::Note(want)));
        return Ok(());
    }
    if name.contains('+') {
        if let Ok(signer) = &note_signer {
            check_note_signer(&s, signer);
        }
        if let Ok(signer) = &cosigner {
            check_cosigner(&s, signer);
        }
        return Ok(());
    }
    // The first rule broken, for a parser expecting type `want_ty`.
    let expected = |want_ty: u8| -> Option<NoteError> {
        if let Err(e) = KeyName::new(name.as_str()) {
            Some(e)
        } else if ty != want_ty {
            Some(NoteError::UnsupportedKeyType { got: ty })
        } else if seed.len() != ED25519_KEY_SIZE {
            Some(NoteError::KeyLength {
                got: seed.len(),
                want: ED25519_KEY_SIZE,
            })
        } else if Some(id) != computed {
            Some(NoteError::KeyIdMismatch {
                name: name.clone(),
                got: id,
                want: computed.expect("name, type and seed are valid here"),
            })
        } else {
            None
        }
    };
    match (expected(SIG_TYPE_ED25519), &note_signer) {
        (Some(want), got) => assert_eq!(got.as_ref().err(), Some(&want)),
        (None, Ok(signer)) => check_note_signer(&s, signer),
        (None, Err(e)) => panic!("valid Ed25519 key string refused: {e:?}"),
    }
    match (expected(SIG_TYPE_COSIGNATURE), &cosigner) {
        (Some(want), got) => {
            assert_eq!(got.as_ref().err(), Some(&CosignatureError::Note(want)));
        }
        (None, Ok(signer)) => check_cosigner(&s, signer),
        (None, Err(e)) => panic!("valid cosigner key string refused: {e:?}"),
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = core::str::from_utf8(data) {
        if let Ok(signer) = s.parse::<NoteSigner>() {
            check_note_signer(s, &signer);
        }
        if let Ok(signer) = s.parse::<CosignatureSigner>() {
            check_cosigner(s, &signer);
        }
    }
    let _ = structured(&mut Unstructured::new(data));
});
