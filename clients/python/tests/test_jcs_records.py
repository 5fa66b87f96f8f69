"""RFC 8785 encoding, record leaves and payload commitments, offline."""

from __future__ import annotations

import json

import pytest

from veritrail import VerificationError
from veritrail.jcs import canonicalize, loads_strict
from veritrail.records import (
    Payload,
    check_recorded,
    commitment,
    encode_payloads,
    is_payload_name,
    leaf_of,
    opens,
    parse_leaf,
)


def test_rfc8785_examples() -> None:
    # RFC 8785 section 3.2.2 (the sample) and section 3.2.3 (sorting by UTF-16 code units).
    text = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    want = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonicalize(json.loads(text)).decode() == want
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    encoded = canonicalize({k: k for k in keys}).decode()
    order = [json.loads("[" + part.split(":")[0] + "]")[0] for part in encoded[1:-1].split(",")]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize(
    "value, text",
    [
        (0, "0"), (-0.0, "0"), (1.0, "1"), (-1.5, "-1.5"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
        (1e-6, "0.000001"), (1e-7, "1e-7"), (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"),
        (2**53, "9007199254740992"), (2**53 + 1, "9007199254740992"), (-(2**60), "-1152921504606847000"),
        (123456789012345680000.0, "123456789012345680000"), (0.1 + 0.2, "0.30000000000000004"),
    ],
)  # fmt: skip
def test_numbers_are_ecmascript(value: float, text: str) -> None:
    assert canonicalize(value).decode() == text


def test_nan_is_not_json() -> None:
    with pytest.raises(ValueError):
        canonicalize(float("nan"))
    with pytest.raises(ValueError):
        loads_strict("[NaN]")


def test_leaves_round_trip_and_must_be_canonical() -> None:
    record = {"b": [1, 2.5, "x\u0001"], "a": {"z": None, "y": True}}
    leaf = leaf_of(record)
    assert leaf == b'\x01{"a":{"y":true,"z":null},"b":[1,2.5,"x\\u0001"]}'
    assert parse_leaf(leaf) == record
    for bad in (b"", b"\x00{}", b'\x01{"b":1,"a":2}', b"\x01[1]", b"\x01{ }", b'\x01{"a":1.0}', b"\x01\xff"):
        with pytest.raises(VerificationError):
            parse_leaf(bad)


def test_payload_commitments() -> None:
    key = bytes(range(32))
    c = commitment(key, b"hello")
    assert opens(c, key, b"hello")
    assert not opens(c, key, b"hellO")
    assert not opens(c, key[:31], b"hello")
    assert not opens(c[:31], key, b"hello")
    assert is_payload_name("tool_result") and is_payload_name("a.b-c") and is_payload_name("_x")
    assert not any(is_payload_name(n) for n in ("", "Prompt", "-x", ".x", "a" * 65, "a/b", "é"))
    encoded = encode_payloads({"prompt": "héllo", "blob": b"\x00\xff", "args": Payload('{"a":1}', "application/json")})
    assert encoded == {
        "prompt": {"media_type": "text/plain; charset=utf-8", "text": "héllo"},
        "blob": {"media_type": "application/octet-stream", "base64": "AP8="},
        "args": {"media_type": "application/json", "text": '{"a":1}'},
    }
    with pytest.raises(ValueError):
        encode_payloads({"Bad": "x"})
    with pytest.raises(TypeError):
        encode_payloads({"n": 3})  # type: ignore[dict-item]


def test_answers_must_hold_the_event() -> None:
    event = {
        "id": "0B7C6F1E-2F44-4C7B-9A51-3D4F8F7A1C20",
        "action": "tool_invoked",
        "classification": "internal",
        "compliance": ["hipaa"],
        "details": {"note": "mail jane@x.org now", "n": 1},
        "payloads": {"prompt": {"media_type": "text/plain", "text": "héllo"}},
    }
    stored = {
        "id": "0b7c6f1e-2f44-4c7b-9a51-3d4f8f7a1c20",
        "action": "tool_invoked",
        "classification": "restricted",
        "compliance": ["gdpr", "hipaa"],
        "details": {"note": "mail [REDACTED:email] now", "n": 1},
        "scrubbed": ["email"],
        "payloads": {"prompt": {"media_type": "text/plain", "size": 6, "commitment": "AA=="}},
    }
    check_recorded(event, stored)
    for field, value in [
        ("action", "error"),
        ("classification", "public"),
        ("compliance", ["gdpr"]),
        ("details", {"note": "mail [REDACTED:ssn] now", "n": 1}),
        ("details", {"note": "post [REDACTED:email] now", "n": 1}),
        ("details", {"note": "mail jane@x.org now", "n": 2}),
        ("payloads", {"prompt": {"media_type": "text/plain", "size": 5, "commitment": "AA=="}}),
        ("id", "0b7c6f1e-2f44-4c7b-9a51-3d4f8f7a1c21"),
    ]:
        with pytest.raises(VerificationError, match=field):
            check_recorded(event, {**stored, field: value})
    with pytest.raises(VerificationError):
        check_recorded({**event, "session_id": "s"}, stored)
