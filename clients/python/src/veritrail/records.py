"""Agent records: their leaves, payload commitments, and the checks a client applies to the
log's answers (the Python twin of ``veritrail_records::{record,payload}`` and of the Rust
client's ``answers::recorded``).

A record's leaf is ``0x01 || JCS(record)`` (docs/events.md, "The leaf"). A payload is kept
off the tree; the record holds ``HMAC-SHA-256(opening_key, "veritrail/payload/v1" ||
payload)`` and the payload endpoint serves the payload with its opening key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from .errors import VerificationError
from .jcs import canonicalize, loads_strict
from .tlog import decode_base64

__all__ = [
    "LEAF_VERSION",
    "MAX_PAYLOAD_BYTES",
    "MAX_PAYLOADS",
    "OPENING_KEY_BYTES",
    "TEXT_MEDIA_TYPE",
    "BINARY_MEDIA_TYPE",
    "Payload",
    "check_recorded",
    "commitment",
    "encode_payloads",
    "is_payload_name",
    "leaf_of",
    "opens",
    "parse_leaf",
    "stored_commitment",
]

#: First byte of every record leaf (raw entries may not start with it).
LEAF_VERSION = 0x01
#: Bytes of a payload's opening key.
OPENING_KEY_BYTES = 32
#: Most payloads in one record.
MAX_PAYLOADS = 16
#: Largest payload (4 MiB).
MAX_PAYLOAD_BYTES = 4 << 20
#: Media type of a payload given as ``str``.
TEXT_MEDIA_TYPE = "text/plain; charset=utf-8"
#: Media type of a payload given as ``bytes``.
BINARY_MEDIA_TYPE = "application/octet-stream"

_DOMAIN = b"veritrail/payload/v1"
_NAME_RE = re.compile(r"[a-z0-9_][a-z0-9_.\-]{0,63}")
_CLASSIFICATION = {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}


class Payload:
    """A payload with an explicit media type, for ``Client.record(payloads=...)``:
    ``Payload('{"city": "Paris"}', "application/json")``.

    Attributes:
        data: the contents; ``str`` is sent as text, ``bytes`` as base64.
        media_type: its media type (1 to 128 characters with a ``/``).
    """

    __slots__ = ("data", "media_type")

    def __init__(self, data: bytes | str, media_type: str) -> None:
        self.data = data
        self.media_type = media_type

    def __repr__(self) -> str:
        return f"Payload(<{len(self.data)} {'chars' if isinstance(self.data, str) else 'bytes'}>, {self.media_type!r})"


def is_payload_name(name: str) -> bool:
    """Whether ``name`` is a payload name: 1 to 64 of ``a-z 0-9 _ - .``, not starting with
    ``-`` or ``.``."""
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


def encode_payloads(payloads: Mapping[str, bytes | str | Payload]) -> dict[str, dict[str, str]]:
    """The ``payloads`` member of an event, as ``POST /v1/records`` takes it: ``str``
    values become ``{"media_type": "text/plain; charset=utf-8", "text": ...}``, ``bytes``
    ``{"media_type": "application/octet-stream", "base64": ...}``, :class:`Payload` keeps its
    media type.

    Raises:
        ValueError: a bad name, more than 16 payloads, or one larger than 4 MiB.
        TypeError: a value of another type.
    """
    if len(payloads) > MAX_PAYLOADS:
        raise ValueError(f"at most {MAX_PAYLOADS} payloads per record, not {len(payloads)}")
    out: dict[str, dict[str, str]] = {}
    for name, value in payloads.items():
        if not is_payload_name(name):
            raise ValueError(f"payload name {name!r}: 1 to 64 of a-z, 0-9, _, - and . (e.g. prompt, tool_result)")
        media_type = None
        if isinstance(value, Payload):
            media_type, value = value.media_type, value.data
        if isinstance(value, str):
            size = len(value.encode("utf-8"))
            encoded = {"media_type": media_type or TEXT_MEDIA_TYPE, "text": value}
        elif isinstance(value, (bytes, bytearray, memoryview)):
            size = len(value)
            encoded = {
                "media_type": media_type or BINARY_MEDIA_TYPE,
                "base64": base64.b64encode(bytes(value)).decode("ascii"),
            }
        else:
            raise TypeError(f"payload {name!r} must be str, bytes or Payload, not {type(value).__name__}")
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload {name!r} is {size} bytes, more than 4 MiB")
        out[name] = encoded
    return out


def commitment(opening_key: bytes, payload: bytes) -> bytes:
    """``HMAC-SHA-256(opening_key, "veritrail/payload/v1" || payload)``."""
    return hmac.new(opening_key, _DOMAIN + payload, hashlib.sha256).digest()


def opens(commitment_bytes: bytes, opening_key: bytes, payload: bytes) -> bool:
    """Whether ``payload`` with ``opening_key`` (32 bytes) opens ``commitment_bytes``
    (compared in constant time; ``veritrail_records::payload::opens``)."""
    if len(opening_key) != OPENING_KEY_BYTES:
        return False
    return hmac.compare_digest(commitment(opening_key, payload), commitment_bytes)


def stored_commitment(record: Mapping[str, Any], name: str) -> bytes | None:
    """The commitment a stored record holds for payload ``name``, decoded, if any."""
    try:
        text = record["payloads"][name]["commitment"]
        return decode_base64(text) if isinstance(text, str) else None
    except (KeyError, TypeError, VerificationError):
        return None


def leaf_of(record: Mapping[str, Any]) -> bytes:
    """The leaf of a record given as JSON: ``0x01 || JCS(record)``.

    Raises:
        VerificationError: ``record`` is not a JSON object.
    """
    if not isinstance(record, dict):
        raise VerificationError("a record is a JSON object")
    try:
        return bytes([LEAF_VERSION]) + canonicalize(record)
    except (TypeError, ValueError) as e:
        raise VerificationError(f"the record is not JSON: {e}") from e


def parse_leaf(leaf: bytes) -> dict[str, Any]:
    """The record a leaf holds: ``0x01`` then the canonical JSON of an object.

    Raises:
        VerificationError: not a record leaf, not JSON, not an object, or not canonical.
    """
    if not leaf or leaf[0] != LEAF_VERSION:
        raise VerificationError("the leaf is not an agent record (it does not start with 0x01)")
    try:
        value = loads_strict(leaf[1:].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise VerificationError(f"the leaf is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise VerificationError("the leaf is not a JSON object")
    if leaf_of(value) != bytes(leaf):
        raise VerificationError("the leaf is not in canonical form")
    return value


def _redacted_text(sent: str, stored: str, kinds: set[str]) -> bool:
    if sent == stored:
        return True
    fragments = []
    rest = stored
    while (start := rest.find("[REDACTED:")) >= 0:
        kept, marker = rest[:start], rest[start:]
        end = marker.find("]")
        if end < 0:
            break
        if marker[len("[REDACTED:") : end] not in kinds:
            return False
        fragments.append(kept)
        rest = marker[end + 1 :]
    if not fragments:
        return False
    fragments.append(rest)
    first, *middle, last = fragments
    if not sent.startswith(first):
        return False
    left = sent[len(first) :]
    for fragment in middle:
        if left == "":
            return False  # each marker covers at least one character
        at = left[1:].find(fragment)
        if at < 0:
            return False
        left = left[1:][at + len(fragment) :]
    return len(left.encode("utf-8")) > len(last.encode("utf-8")) and left.endswith(last)


def _canonical(value: Any) -> bytes:
    try:
        return canonicalize(value)
    except (TypeError, ValueError):
        return b""


def _redacted(sent: Any, stored: Any, kinds: set[str]) -> bool:
    if isinstance(sent, str) and isinstance(stored, str):
        return _redacted_text(sent, stored, kinds)
    if isinstance(sent, list) and isinstance(stored, list):
        return len(sent) == len(stored) and all(_redacted(a, b, kinds) for a, b in zip(sent, stored, strict=True))
    if isinstance(sent, dict) and isinstance(stored, dict):
        if len(sent) != len(stored):
            return False
        for key, value in sent.items():
            if key in stored:
                if not _redacted(value, stored[key], kinds):
                    return False
            elif not any(
                k not in sent and _redacted_text(key, k, kinds) and _redacted(value, got, kinds)
                for k, got in stored.items()
            ):
                return False
        return True
    return _canonical(sent) == _canonical(stored)


def _same_payloads(sent: Any, stored: Any) -> bool:
    if not isinstance(sent, dict) or not isinstance(stored, dict) or len(sent) != len(stored):
        return False
    for name, payload in sent.items():
        if not isinstance(payload, dict):
            return False
        size = None
        if "text" in payload and "base64" not in payload and isinstance(payload["text"], str):
            size = len(payload["text"].encode("utf-8"))
        elif "base64" in payload and "text" not in payload and isinstance(payload["base64"], str):
            try:
                size = len(base64.b64decode(payload["base64"], validate=True))
            except ValueError:
                return False
        s = stored.get(name)
        if size is None or not isinstance(s, dict):
            return False
        if s.get("media_type") != payload.get("media_type") or s.get("size") != size:
            return False
        if not isinstance(s.get("commitment"), str):
            return False
    return True


def check_recorded(event: Mapping[str, Any], record: Mapping[str, Any]) -> None:
    """Checks that the stored ``record`` holds every field of the ``event`` sent, unchanged
    but for what the server may do: scrub text in ``details`` and ``resource.uri`` (for
    kinds the record lists in ``scrubbed``), raise ``classification``, add ``compliance``
    domains, lower-case ``id``, and store payloads as commitments of the same names, media
    types and sizes.

    Raises:
        VerificationError: naming the first field that changed.
    """
    kinds = (
        {k for k in record.get("scrubbed", []) if isinstance(k, str)}
        if isinstance(record.get("scrubbed"), list)
        else set()
    )
    for field, value in event.items():
        got = record.get(field)
        if field in ("details", "resource"):
            same = got is not None and _redacted(value, got, kinds)
        elif field == "classification":
            same = (
                isinstance(got, str)
                and isinstance(value, str)
                and got in _CLASSIFICATION
                and value in _CLASSIFICATION
                and _CLASSIFICATION[got] >= _CLASSIFICATION[value]
            )
        elif field == "compliance":
            same = (
                isinstance(got, list)
                and isinstance(value, list)
                and {_canonical(v) for v in value} <= {_canonical(v) for v in got}
            )
        elif field == "id":
            same = isinstance(got, str) and isinstance(value, str) and got.lower() == value.lower()
        elif field == "payloads":
            same = _same_payloads(value, got)
        else:
            same = field in record and _canonical(got) == _canonical(value)
        if not same:
            raise VerificationError(f"the log changed field {field!r} of the record")
