"""Schemathesis hooks for Veritrail's own binary formats (loaded by .ci/schemathesis.sh).

OpenAPI describes these bodies as `format: binary`; a JSON Schema cannot state their framing,
so the framing is generated and checked here, after docs/api.md and C2SP tlog-tiles:

- requests with `Content-Type: application/x-veritrail-entries` get real batches: 1 to 8
  entries of 1 to 64 bytes, each prefixed by its length as a big-endian u16 (the server
  takes up to 4096 entries of up to 65535 bytes; small batches keep the run short);
- `application/octet-stream` answers are checked against the request: a hash tile holds
  exactly W hashes of 32 bytes, an entry bundle exactly W length-prefixed entries, an entry
  1 to 65535 bytes. A mismatch is reported as a failure. The body is then handed to the
  response schema check as text (one character per byte), so its length limits apply.
"""

from urllib.parse import unquote, urlsplit

import schemathesis
from hypothesis import strategies as st

BATCH = "application/x-veritrail-entries"
HASH_SIZE = 32
FULL_WIDTH = 256
MAX_ENTRY_SIZE = 65535


def frame(entries):
    """A batch body: each entry prefixed by its length as a big-endian u16."""
    return b"".join(len(entry).to_bytes(2, "big") + entry for entry in entries)


# OTLP/HTTP protobuf bodies (POST /v1/traces, /v1/logs): an empty export request is a valid
# message of either kind (random bytes would not be); the JSON form is generated from the
# schema like any other body.
PROTOBUF = "application/x-protobuf"
schemathesis.openapi.media_type(PROTOBUF, st.just(b""))


@schemathesis.deserializer(PROTOBUF)
def protobuf(ctx, response):
    """An OTLP export response: handed to the schema check as text, one character per byte."""
    return response.content.decode("latin-1")


schemathesis.openapi.media_type(
    BATCH,
    st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=8).map(frame),
)


def tile_width(path):
    """W of a tile path (`.../N.p/W`), or 256 for a full tile."""
    _, partial, width = path.partition(".p/")
    return int(width) if partial else FULL_WIDTH


def bundle_entries(body):
    """The entries of an entry bundle; ValueError if the framing is broken."""
    entries, at = [], 0
    while at < len(body):
        if at + 2 > len(body):
            raise ValueError(f"entry bundle: a length prefix is cut off at byte {at}")
        size = int.from_bytes(body[at : at + 2], "big")
        if size == 0 or at + 2 + size > len(body):
            raise ValueError(f"entry bundle: entry at byte {at} announces {size} bytes")
        entries.append(body[at + 2 : at + 2 + size])
        at += 2 + size
    return entries


@schemathesis.deserializer("application/octet-stream")
def octet_stream(ctx, response):
    body = response.content
    path = unquote(urlsplit(response.request.url).path)
    if response.status_code == 200:
        if path.startswith("/tile/entries/"):
            got, want = len(bundle_entries(body)), tile_width(path)
            if got != want:
                raise ValueError(f"{path}: {got} entries, want {want}")
        elif path.startswith("/tile/"):
            want = tile_width(path) * HASH_SIZE
            if len(body) != want:
                raise ValueError(f"{path}: {len(body)} bytes, want {want}")
        elif path.startswith("/v1/entries/") and not 1 <= len(body) <= MAX_ENTRY_SIZE:
            raise ValueError(f"{path}: an entry of {len(body)} bytes")
    return body.decode("latin-1")
