"""Offline formats against published vectors: docs/formats.md's running example, the
shared C2SP note and RFC 6962 proof vectors, and hostile variations of each."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json

import pytest
from conftest import VECTORS
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from veritrail import VerificationError, verify_receipt
from veritrail.tlog import (
    Checkpoint,
    NoteSignature,
    decode_base64,
    hash_from_base64,
    inclusion_proof_len,
    leaf_hash,
    node_hash,
    parse_checkpoint,
    parse_decimal,
    parse_note,
    parse_receipt,
    parse_verifier_key,
    root_from_inclusion_proof,
    verify_checkpoint,
)

# docs/formats.md, "The running example" (test keys whose private halves are published).
LOG_KEY = "veritrail.example/log+f93a8124+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs"
WITNESS_KEY = "witness.example/w1+24b5d9fe+BP0XJDhaoMdbZPt4zWAvodmR/ev3axPFjtcC6sg16fYY"
ENTRIES = [b"agent-3 read patient record 17", b"prompt v2 deployed", b"agent-7 called send_email"]
NOTE = (
    "veritrail.example/log\n3\nDGQR3dMGcN3pLDZ2IybBXrLsjUsKwozMjMnYmFY9BsI=\n\n"
    "\u2014 veritrail.example/log +TqBJNzQlFoc3P4PBCYyKt+dI17Ph5AJHrxRWL+bzfSv/XSZ2645Bj5lZ8BVGfv/0E+r6m+Xxvk29CiOvj27Rl5+nwE=\n"  # noqa: E501
    "\u2014 witness.example/w1 JLXZ/gAAAABlU/EAknRiL4jkE4W8/sEV9G7RvYo72KjUnbPi//eaNxMyO2UcVCahLfNV6t/pbMaChQav3e1RompR30rHd29I0fwHCQ==\n"  # noqa: E501
)
RECEIPT_2 = "c2sp.org/tlog-proof@v1\nindex 2\nkjmwjwxhoc//b57AuW3gmSAALca7UrAJFbZSwr8tuUE=\n\n" + NOTE
RECEIPT_0 = (
    "c2sp.org/tlog-proof@v1\nextra cmVxdWVzdCA0Mg==\nindex 0\n"
    "npw/VJrmO4iKZiqxe9vhk6DxqYP5ye54Tw0cMFxwUxw=\nu9RHVYCaAHi6dpA1/o8Y3+t0ArUhLZ6uf4QU9wmdA+Q=\n\n" + NOTE
)


def test_running_example_hashes() -> None:
    leaves = [leaf_hash(e) for e in ENTRIES]
    assert leaves[0].hex() == "82fa60388aea377571648a525fd68dab9ea608f3752df24b6595ee7f96f4b151"
    assert leaves[2].hex() == "bbd44755809a0078ba769035fe8f18dfeb7402b5212d9eae7f8414f7099d03e4"
    root = node_hash(node_hash(leaves[0], leaves[1]), leaves[2])
    assert base64.b64encode(root).decode() == "DGQR3dMGcN3pLDZ2IybBXrLsjUsKwozMjMnYmFY9BsI="
    assert root_from_inclusion_proof(leaves[2], 2, 3, [node_hash(leaves[0], leaves[1])]) == root


def test_running_example_receipts_verify_and_round_trip() -> None:
    assert verify_receipt(LOG_KEY, ENTRIES[2], RECEIPT_2) == 2
    assert verify_receipt(LOG_KEY, ENTRIES[0], RECEIPT_0.encode()) == 0
    assert parse_receipt(RECEIPT_0).extra == b"request 42"
    for text in (RECEIPT_0, RECEIPT_2):
        assert parse_receipt(text).to_bytes() == text.encode()
    # The witness line verifies as a cosignature, the log line as a note signature.
    note = parse_receipt(RECEIPT_2).checkpoint
    assert [s.name for s in note.verify([parse_verifier_key(WITNESS_KEY)])] == ["witness.example/w1"]
    assert [s.name for s in note.verify([parse_verifier_key(LOG_KEY)])] == ["veritrail.example/log"]


def test_signing_the_example_reproduces_the_signature_line() -> None:
    key = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    text = "veritrail.example/log\n3\nDGQR3dMGcN3pLDZ2IybBXrLsjUsKwozMjMnYmFY9BsI=\n"
    verifier = parse_verifier_key(LOG_KEY)
    line = NoteSignature(verifier.name, verifier.key_id, key.sign(text.encode())).to_line()
    assert line + "\n" in NOTE
    assert str(verifier) == LOG_KEY


@pytest.mark.parametrize(
    "entry, receipt, why",
    [
        (ENTRIES[1], RECEIPT_2, "another entry"),
        (ENTRIES[2], RECEIPT_2.replace("index 2", "index 1"), "wrong index"),
        (ENTRIES[2], RECEIPT_2.replace("index 2", "index 02"), "non-canonical index"),
        (ENTRIES[2], RECEIPT_2.replace("kjmwjwxhoc", "kjmwjwxhod"), "flipped proof hash"),
        (ENTRIES[2], RECEIPT_2.replace("+TqBJNzQlFoc3P4", "+TqBJNzQlFoc3P5"), "bad log signature"),
        (ENTRIES[2], RECEIPT_2.replace("\n3\nDGQR", "\n4\nDGQR"), "signed text changed"),
        (ENTRIES[2], RECEIPT_2.replace("kjmwjwxhoc//b57AuW3gmSAALca7UrAJFbZSwr8tuUE=\n", ""), "proof hash removed"),
        (
            ENTRIES[2],
            RECEIPT_2.replace("\n\nveritrail", "\nkjmwjwxhoc//b57AuW3gmSAALca7UrAJFbZSwr8tuUE=\n\nveritrail"),
            "proof hash added",
        ),
        (ENTRIES[2], RECEIPT_2.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"), "header"),
        (
            ENTRIES[2],
            RECEIPT_2.replace("\u2014 veritrail.example/log +Tq", "\u2014 veritrail.example/log  +Tq"),
            "malformed line",
        ),
        (
            ENTRIES[2],
            RECEIPT_2.replace("\u2014 veritrail.example/log +Tq", "- veritrail.example/log +Tq"),
            "no em dash",
        ),
        (ENTRIES[2], RECEIPT_2[:-1], "last newline cut"),
        (ENTRIES[2], RECEIPT_2 + "\n", "trailing blank line"),
        (ENTRIES[2], RECEIPT_2.replace("\nindex", "\r\nindex"), "carriage return"),
        (ENTRIES[2], "", "empty"),
        (ENTRIES[2], "\x00" * 100, "garbage"),
    ],
)
def test_tampered_example_receipts_fail(entry: bytes, receipt: str, why: str) -> None:
    with pytest.raises(VerificationError):
        verify_receipt(LOG_KEY, entry, receipt)


def test_every_truncation_fails() -> None:
    data = RECEIPT_2.encode()
    # Dropping the whole cosignature line leaves a valid receipt (the log's line is the
    # one that counts); every other cut fails.
    without_cosignature = data[: data.index("\u2014 witness".encode())]
    for n in range(len(data)):
        if data[:n] == without_cosignature:
            assert verify_receipt(LOG_KEY, ENTRIES[2], data[:n]) == 2
            continue
        with pytest.raises(VerificationError):
            verify_receipt(LOG_KEY, ENTRIES[2], data[:n])


def test_wrong_keys_fail() -> None:
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    name = "veritrail.example/log"
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + other).digest()[:4].hex()
    encoded = base64.b64encode(b"\x01" + other).decode()
    same_name_other_key = f"{name}+{key_id}+{encoded}"
    for key in (WITNESS_KEY, same_name_other_key):
        with pytest.raises(VerificationError):
            verify_receipt(key, ENTRIES[2], RECEIPT_2)
    # Right key, but the origin pinned is another one.
    with pytest.raises(VerificationError, match="origin"):
        verify_receipt(LOG_KEY, ENTRIES[2], RECEIPT_2, origin="other.example/log")


def test_non_canonical_signature_scalar_is_refused() -> None:
    # S + L verifies with a lax verifier; verify_strict (and this SDK) refuse it.
    note = parse_note(NOTE.encode())
    line = note.signatures[0]
    r, s = line.signature[:32], int.from_bytes(line.signature[32:], "little")
    malleated = r + (s + 2**252 + 27742317777372353535851937790883648493).to_bytes(32, "little")
    bad = NoteSignature(line.name, line.key_id, malleated).to_line()
    with pytest.raises(VerificationError):
        verify_receipt(LOG_KEY, ENTRIES[2], RECEIPT_2.replace(line.to_line(), bad))


def test_small_order_key_and_r_are_refused() -> None:
    # The identity point as public key and R, with S = 0, satisfies the cofactorless
    # equation for every message: OpenSSL alone accepts it, ed25519-dalek's verify_strict
    # does not, and neither does the SDK.
    identity = (1).to_bytes(32, "little")
    with contextlib.suppress(InvalidSignature):  # OpenSSL's answer, for the record only
        Ed25519PublicKey.from_public_bytes(identity).verify(identity + bytes(32), b"anything")
    name = "forger.example/log"
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + identity).digest()[:4]
    encoded = base64.b64encode(b"\x01" + identity).decode()
    vkey = f"{name}+{key_id.hex()}+{encoded}"
    parse_verifier_key(vkey)  # decompresses: a point, just a weak one
    root = base64.b64encode(leaf_hash(b"forged")).decode()
    text = f"{name}\n1\n{root}\n"
    forged = NoteSignature(name, int.from_bytes(key_id, "big"), identity + bytes(32)).to_line()
    receipt = f"c2sp.org/tlog-proof@v1\nindex 0\n\n{text}\n{forged}\n"
    with pytest.raises(VerificationError, match="invalid signature"):
        verify_receipt(vkey, b"forged", receipt)


@pytest.mark.parametrize(
    "key",
    [
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
    ],
)
def test_real_verifier_keys_parse_and_print(key: str) -> None:
    assert str(parse_verifier_key(key)) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "no-plus-signs",
        "name+f93a8124",
        "veritrail.example/log+F93A8124+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs",  # upper-case ID
        "veritrail.example/log+f93a8125+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs",  # wrong ID
        "veritrail.example/log+f93a8124+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtI",  # padding
        "veritrail.example/log+f93a8124+AupKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs",  # type 0x02
        "veritrail.example/log+f93a8124+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURt",  # short
        "veritrail.example/log+f93a8124+",
        "bad name+f93a8124+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs",
        "x" * 5000 + "+f93a8124+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs",
    ],
)
def test_bad_verifier_keys_are_refused(key: str) -> None:
    with pytest.raises(VerificationError):
        parse_verifier_key(key)


def test_decimals_and_base64_are_canonical() -> None:
    assert parse_decimal("0") == 0
    assert parse_decimal("18446744073709551615") == 2**64 - 1
    for bad in ("", "01", "+1", "-1", " 1", "1 ", "18446744073709551616", "1e3", "\u0661"):
        with pytest.raises(VerificationError):
            parse_decimal(bad)
    assert decode_base64("") == b""
    assert decode_base64("AA==") == b"\x00"
    for bad in ("AB==", "AA", "AA=", "A===", "AA==\n", " AA==", "AA-_", "AAA=A==="):
        with pytest.raises(VerificationError):
            decode_base64(bad)
    with pytest.raises(VerificationError):
        hash_from_base64(base64.b64encode(bytes(31)).decode())


def test_checkpoint_parsing_is_strict() -> None:
    good = "o\n3\nDGQR3dMGcN3pLDZ2IybBXrLsjUsKwozMjMnYmFY9BsI=\n"
    assert parse_checkpoint(good) == Checkpoint("o", 3, decode_base64("DGQR3dMGcN3pLDZ2IybBXrLsjUsKwozMjMnYmFY9BsI="))
    assert parse_checkpoint(good + "ext\n").extensions == ("ext",)
    assert parse_checkpoint(good + "ext\n").to_text() == good + "ext\n"
    for bad in (
        good[:-1],
        "o\n3\n",
        "\n3\nDGQR3dMGcN3pLDZ2IybBXrLsjUsKwozMjMnYmFY9BsI=\n",
        "o\n03\nDGQR3dMGcN3pLDZ2IybBXrLsjUsKwozMjMnYmFY9BsI=\n",
        "o\u0085\n3\nDGQR3dMGcN3pLDZ2IybBXrLsjUsKwozMjMnYmFY9BsI=\n",
        good + "\n",
    ):
        with pytest.raises(VerificationError):
            parse_checkpoint(bad)


def test_notes_are_canonical() -> None:
    note = parse_note(NOTE.encode())
    assert note.to_bytes() == NOTE.encode()
    # The text ends at the last blank line, so it may hold blank lines itself.
    assert parse_note(b"a\n\nb\n\n" + NOTE.encode().split(b"\n\n", 1)[1]).text == "a\n\nb\n"
    too_many = "t\n\n" + "".join(f"\u2014 k{i} AAAAAAA=\n" for i in range(101))
    with pytest.raises(VerificationError, match="101"):
        parse_note(too_many.encode())
    assert len(parse_note(too_many.replace("\u2014 k0 AAAAAAA=\n", "", 1).encode()).signatures) == 100
    for bad in (
        b"t\n\n",
        b"t\n\n\xe2\x80\x94 k AAAA\n",
        b"t\n\n\xe2\x80\x94 k AAAAAAA=",
        b"t\n\xff\n\n\xe2\x80\x94 k AAAAAAA=\n",
        b"t\tx\n\n\xe2\x80\x94 k AAAAAAA=\n",
    ):
        with pytest.raises(VerificationError):
            parse_note(bad)
    # Lines by unknown keys are ignored; with no known key the note does not verify.
    with pytest.raises(VerificationError, match="known key"):
        parse_note(too_many.replace("\u2014 k0 AAAAAAA=\n", "", 1).encode()).verify([parse_verifier_key(LOG_KEY)])


def test_checkpoint_origin_must_match() -> None:
    note = parse_note(NOTE.encode())
    key = parse_verifier_key(LOG_KEY)
    assert verify_checkpoint(note, "veritrail.example/log", key).size == 3
    with pytest.raises(VerificationError):
        verify_checkpoint(note, "veritrail.example/log2", key)


NOTE_VECTORS = [
    ("c2sp.note", "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", True),
    ("c2sp-bad.note", "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", False),
    ("peter.note", "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", True),
    ("sumdb.note", "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8", True),
]


@pytest.mark.skipif(not (VECTORS / "notes").is_dir(), reason="../shared/vectors is not beside the repository")
@pytest.mark.parametrize("name, key, valid", NOTE_VECTORS)
def test_shared_note_vectors(name: str, key: str, valid: bool) -> None:
    data = (VECTORS / "notes" / name).read_bytes()
    note = parse_note(data)
    assert note.to_bytes() == data
    if valid:
        assert note.verify([parse_verifier_key(key)])
    else:
        with pytest.raises(VerificationError):
            note.verify([parse_verifier_key(key)])


@pytest.mark.skipif(not (VECTORS / "notes").is_dir(), reason="../shared/vectors is not beside the repository")
def test_peter_note_is_reproduced_by_signing() -> None:
    data = (VECTORS / "notes" / "peter.note").read_bytes()
    note = parse_note(data)
    seed = decode_base64("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(note.text.encode())
    assert note.signatures[0].signature == signature


def _b64_or_none(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


@pytest.mark.skipif(not (VECTORS / "merkle").is_dir(), reason="../shared/vectors is not beside the repository")
def test_shared_inclusion_vectors() -> None:
    failures = []
    files = sorted((VECTORS / "merkle" / "inclusion").rglob("*.json"))
    assert files
    for path in files:
        case = json.loads(path.read_text())
        proof = [_b64_or_none(h) for h in case["proof"] or []]
        leaf, root = _b64_or_none(case["leafHash"] or ""), _b64_or_none(case["root"] or "")
        try:
            if leaf is None or root is None or any(p is None for p in proof):
                raise VerificationError("undecodable")
            computed = root_from_inclusion_proof(leaf, case["leafIdx"], case["treeSize"], proof)  # type: ignore[arg-type]
            ok = computed == root
        except VerificationError:
            ok = False
        if ok == case["wantErr"]:
            failures.append(path.relative_to(VECTORS))
    assert not failures, f"{len(failures)} of {len(files)} vectors disagree: {failures}"


@pytest.mark.skipif(not (VECTORS / "ct").is_dir(), reason="../shared/vectors is not beside the repository")
def test_real_ct_inclusion_proof() -> None:
    case = json.loads((VECTORS / "ct" / "argon2020.json").read_text())["inclusion"]
    proof = [base64.b64decode(h) for h in case["proof"]]
    leaf, root = base64.b64decode(case["leafHash"]), base64.b64decode(case["root"])
    assert (case["leafIdx"], case["treeSize"]) == (10000, 961984011)
    assert len(proof) == inclusion_proof_len(10000, 961984011)
    assert root_from_inclusion_proof(leaf, 10000, 961984011, proof) == root
    assert root_from_inclusion_proof(leaf, 10001, 961984011, proof) != root
