"""What the hook tests share: a client on the test server, the records of a conversation read
back proven, and checks that payloads are committed (never in the tree) and open."""

from __future__ import annotations

import base64
import json
import os
import uuid
from typing import Any

import pytest
from conftest import Server

from veritrail import Client
from veritrail.records import leaf_of
from veritrail.tlog import leaf_hash


def require(module: str) -> Any:
    """Imports a framework, or skips the test without it; with ``VERITRAIL_HOOKS_REQUIRED``
    set (CI) a missing framework fails instead."""
    if os.environ.get("VERITRAIL_HOOKS_REQUIRED"):
        return __import__(module, fromlist=["_"])
    return pytest.importorskip(module)


def conversation() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


def client_for(server: Server, **settings: Any) -> Client:
    """A client of the test server with a short flush interval."""
    settings.setdefault("flush_interval", 0.05)
    return Client(server.url, server.token, server.log_key, **settings)


def records_of(server: Server, client: Client, conversation_id: str) -> list[tuple[int, dict[str, Any]]]:
    """Every record of the conversation, each proven by the SDK, once the log published them."""
    tip = server.get_json("readyz")["tree_size"]  # type: ignore[index]
    server.wait_published(tip - 1)
    return list(client.query(conversation_id=conversation_id))


def actions(records: list[tuple[int, dict[str, Any]]]) -> list[str]:
    return [r["action"] for _, r in records]


def check_chain(records: list[tuple[int, dict[str, Any]]]) -> None:
    """The records form the conversation's chain: each links the one before, by index and
    leaf hash, and the first links none."""
    previous: tuple[int, dict[str, Any]] | None = None
    for index, record in records:
        link = record.get("prev")
        if previous is None:
            assert link is None, f"record {index} is the conversation's first but links {link}"
        else:
            assert link is not None and link["index"] == previous[0], f"record {index} links {link}"
            assert base64.b64decode(link["leaf_hash"]) == leaf_hash(leaf_of(previous[1]))
        previous = (index, record)


def check_payloads(
    client: Client,
    records: list[tuple[int, dict[str, Any]]],
    secrets: list[str] = (),  # type: ignore[assignment]
) -> dict[tuple[int, str], bytes]:
    """Every payload of every record is a commitment in the record (media type, size,
    commitment; no contents), and reads back proven. ``secrets`` must not appear in any
    record. Returns the payloads read, by (index, name)."""
    read: dict[tuple[int, str], bytes] = {}
    for index, record in records:
        text = json.dumps(record, ensure_ascii=False)
        for secret in secrets:
            assert secret not in text, f"record {index} holds {secret!r} in its metadata"
        for name, stored in (record.get("payloads") or {}).items():
            assert set(stored) == {"media_type", "size", "commitment"}, stored
            content = client.payload(index, name)  # proven: record, media type, commitment
            assert len(content) == stored["size"]
            read[(index, name)] = content
    return read


def payload(client: Client, index: int, name: str) -> str:
    return client.payload(index, name).decode("utf-8")


def payload_json(client: Client, index: int, name: str) -> Any:
    return json.loads(client.payload(index, name))
