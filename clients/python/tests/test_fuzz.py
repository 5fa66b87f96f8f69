"""Hostile input, without a fuzzing library: random bytes and strings, and random mutations
of a valid receipt, into every parser. Nothing may raise anything but VerificationError."""

from __future__ import annotations

import random

from test_tlog import ENTRIES, LOG_KEY, RECEIPT_2

from veritrail import VerificationError, verify_receipt
from veritrail.tlog import (
    parse_checkpoint,
    parse_note,
    parse_receipt,
    parse_verifier_key,
)

ALPHABET = "c2sp.org/tlog-proof@v1\nindex 0123456789+/=ABCabc\u2014 \n\n\r\t\x00\u0085\ud800é"


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 300)))


def _mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        kind = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if kind == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[at:at] = bytes([rng.randrange(256)])
        elif kind == 2:
            del data[at : at + rng.randrange(1, 8)]
        elif kind == 3:
            lines = bytes(data).split(b"\n")
            rng.shuffle(lines)
            data = bytearray(b"\n".join(lines))
        else:
            data[at:at] = rng.choice([b"\n", b"\n\n", b"index 1\n", b"extra \n", "\u2014 ".encode(), b"="])
    return bytes(data)


def _only_verification_errors(call, *args) -> object:  # type: ignore[no-untyped-def]
    try:
        return call(*args)
    except VerificationError:
        return None


def test_random_input_never_raises_anything_else() -> None:
    rng = random.Random(6962)
    for _ in range(1500):
        raw = rng.randbytes(rng.randrange(0, 400))
        text = _random_text(rng)
        for receipt in (raw, text):
            _only_verification_errors(verify_receipt, LOG_KEY, ENTRIES[2], receipt)
            _only_verification_errors(parse_receipt, receipt)
        _only_verification_errors(parse_note, raw)
        _only_verification_errors(parse_note, text.encode("utf-8", "surrogatepass"))
        _only_verification_errors(parse_checkpoint, text)
        _only_verification_errors(parse_verifier_key, text)
        _only_verification_errors(verify_receipt, text, ENTRIES[2], RECEIPT_2)


def test_mutated_receipts_fail_cleanly() -> None:
    rng = random.Random(9162)
    valid = 0
    for _ in range(3000):
        mutated = _mutate(rng, RECEIPT_2.encode())
        index = _only_verification_errors(verify_receipt, LOG_KEY, ENTRIES[2], mutated)
        if index is not None:
            # Only mutations of the witness line (ignored without a witness key) survive:
            # what the log signed, the index, the proof and the log's signature are intact.
            parsed, original = parse_receipt(mutated), parse_receipt(RECEIPT_2)
            assert index == parsed.index == 2
            assert parsed.proof == original.proof
            assert parsed.checkpoint.text == original.checkpoint.text
            assert original.checkpoint.signatures[0] in parsed.checkpoint.signatures
            valid += 1
    assert valid < 300


def test_wrong_types_are_verification_errors() -> None:
    for args in [(None, ENTRIES[2], RECEIPT_2), (LOG_KEY, None, RECEIPT_2), (LOG_KEY, ENTRIES[2], None),
                 (LOG_KEY, "text", RECEIPT_2), (LOG_KEY, ENTRIES[2], 42), (LOG_KEY, ENTRIES[2], "\ud800")]:  # fmt: skip
        try:
            verify_receipt(*args)  # type: ignore[arg-type]
        except VerificationError:
            continue
        raise AssertionError(f"{args!r} verified")
