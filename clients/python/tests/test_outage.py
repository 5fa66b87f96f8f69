"""The log goes away mid-run: retries with back-off under one idempotency key, the spool,
and crashes (SIGKILL) between an append and its answer. Every record the SDK reported as
sent must be in the log exactly once."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import Server

from veritrail import Client, DeliveryError, Recorded, RetryPolicy


def event(actor: str, n: int) -> dict[str, Any]:
    return {"action": "tool_invoked", "actor": {"id": actor, "type": "agent"}, "details": {"n": n}}


def stored_records(server: Server, actor: str) -> list[dict]:
    """The actor's records, once the latest checkpoint covers the whole log."""
    tip = server.get_json("readyz")["tree_size"]  # type: ignore[index]
    server.wait_published(tip - 1)
    return server.records(actor_id=actor)


def assert_exactly_once(server: Server, actor: str, ids: list[str]) -> list[dict]:
    """Every id is in the log once, and nothing else by this actor."""
    stored = stored_records(server, actor)
    counts = Counter(r["record"]["id"] for r in stored)
    assert counts == Counter(ids), (
        f"missing {set(ids) - set(counts)}, duplicated {[i for i, c in counts.items() if c > 1]}"
    )
    return stored


def test_retries_ride_out_a_restart(own_server: Server) -> None:
    own_server.start()
    actor = f"retry-{uuid.uuid4().hex[:8]}"
    client = Client(own_server.url, own_server.token, own_server.log_key, retries=30, backoff=0.05, max_backoff=0.2)
    first = client.record(event(actor, 0))
    own_server.stop()
    restart = threading.Timer(1.0, own_server.start)
    restart.start()
    started = time.monotonic()
    during = client.record(event(actor, 1), wait=True)  # blocks through the outage
    restart.join()
    assert time.monotonic() - started >= 0.9
    assert during.receipt_verified and during.index == first.index + 1  # type: ignore[operator]
    assert_exactly_once(own_server, actor, [first.id, during.id])


def test_delivery_error_then_resend(own_server: Server) -> None:
    own_server.start()
    actor = f"resend-{uuid.uuid4().hex[:8]}"
    client = Client(own_server.url, own_server.token, own_server.log_key, retries=2, backoff=0.01)
    own_server.stop()
    with pytest.raises(DeliveryError) as down:
        client.record(event(actor, 0))
    assert down.value.attempts == 3 and down.value.idempotency_key
    own_server.start()
    (again,) = client.resend(down.value, wait=True)
    (twice,) = client.resend(down.value)  # the same key: the first outcome, nothing appended
    assert again.index == twice.index and again.receipt_verified
    assert_exactly_once(own_server, actor, [again.id])


def test_backoff_is_exponential_and_bounded(own_server: Server) -> None:
    client = Client(own_server.url, retries=6, backoff=0.2, max_backoff=1.0)
    delays: list[float] = []
    client._transport._sleep = delays.append  # type: ignore[method-assign]
    with pytest.raises(DeliveryError):
        client.record(event("nobody", 0))  # no server at all
    bounds = [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert len(delays) == 6 and all(0.8 * b <= d <= b for d, b in zip(delays, bounds, strict=True)), delays


def test_spool_keeps_records_through_an_outage(own_server: Server, tmp_path: Path) -> None:
    own_server.start()
    actor = f"spool-{uuid.uuid4().hex[:8]}"
    spool = tmp_path / "spool.jsonl"
    client = Client(own_server.url, own_server.token, own_server.log_key, retries=1, backoff=0.01, spool_path=spool)
    sent: list[Recorded] = [client.record(event(actor, 0))]
    own_server.stop()
    started = time.monotonic()
    for n in range(1, 21):
        sent.append(client.record(event(actor, n), payloads={"prompt": f"prompt {n}"}))
    sent.extend(client.record_batch([event(actor, 21), event(actor, 22)]))
    assert time.monotonic() - started < 10
    assert all(r.spooled and r.index is None for r in sent[1:])
    assert client.spool is not None and client.spool.pending() == 21
    lines = [json.loads(line) for line in spool.read_text().splitlines()]
    assert all(line["format"] == "veritrail-spool/v1" and line["idempotency_key"] for line in lines)
    assert (spool.stat().st_mode & 0o777) == 0o600

    own_server.start()
    after = client.record(event(actor, 23))  # the next contact replays the spool first
    assert not after.spooled and client.spool.pending() == 0 and not spool.exists()
    stored = assert_exactly_once(own_server, actor, [r.id for r in sent] + [after.id])
    # In the order they were recorded, the one recorded after the outage last.
    assert [r["record"]["details"]["n"] for r in stored] == list(range(24))
    # Payloads went through the spool as committed payloads and are served.
    index = next(r["index"] for r in stored if r["record"]["details"]["n"] == 5)
    assert client.payload(index, "prompt") == b"prompt 5"


def test_spool_replay_after_a_crash_between_commit_and_answer(own_server: Server, tmp_path: Path) -> None:
    """Appends run continuously while the log is killed (SIGKILL) and restarted twice: some
    requests are committed but never answered; the client spools them with their keys and
    the replay gets their first outcome from the log's idempotency journal."""
    own_server.start()
    actor = f"crash-{uuid.uuid4().hex[:8]}"
    client = Client(
        own_server.url, own_server.token, own_server.log_key,
        retries=1, backoff=0.01, timeout=5, spool_path=tmp_path / "spool.jsonl",
    )  # fmt: skip
    reported: list[Recorded] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            try:
                reported.append(client.record(event(actor, n)))
            except BaseException as e:  # noqa: BLE001 - reported below
                failures.append(e)
                return
            n += 1

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(2):
        time.sleep(0.4)
        own_server.stop(signal.SIGKILL)
        time.sleep(0.3)
        own_server.start()
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not failures, failures
    replay = client.replay_spool()  # what the writers' own later contacts did not replay
    assert replay.remaining == 0 and replay.rejected == 0
    assert any(r.spooled for r in reported), "the outage should have spooled something"
    ids = [r.id for r in reported]
    assert len(set(ids)) == len(ids)
    counts = Counter(r["record"]["id"] for r in stored_records(own_server, actor))
    # Nothing reported as sent is lost, and nothing else appears.
    assert set(counts) == set(ids), f"missing {set(ids) - set(counts)}"
    # Exactly once: a request committed just before a crash and retried (or replayed from the
    # spool) after the restart gets its first outcome from the idempotency journal.
    assert all(c == 1 for c in counts.values()), counts.most_common(3)


def test_record_keys_survive_a_restart(own_server: Server) -> None:
    own_server.start()
    actor = f"keys-{uuid.uuid4().hex[:8]}"
    client = Client(own_server.url, own_server.token, own_server.log_key, retries=0)
    prepared = [client.prepare(event(actor, 0))]
    (first,) = client.append_prepared(prepared, wait=False, idempotency_key=f"k-{actor}")
    own_server.stop()  # graceful; SIGKILL forgets the same way
    own_server.start()
    (retried,) = client.append_prepared(prepared, wait=False, idempotency_key=f"k-{actor}")
    assert retried.index == first.index


def test_torn_spool_lines_are_kept_aside(own_server: Server, tmp_path: Path) -> None:
    own_server.start()
    actor = f"torn-{uuid.uuid4().hex[:8]}"
    spool = tmp_path / "spool.jsonl"
    client = Client(own_server.url, own_server.token, own_server.log_key, retries=0, spool_path=spool)
    own_server.stop()
    first = client.record(event(actor, 0))
    with open(spool, "a") as f:
        f.write('{"format":"veritrail-spool/v1","idempotency_key":"x","bo')  # a crash mid-write
    second = client.record(event(actor, 1))  # starts a fresh line
    assert first.spooled and second.spooled
    own_server.start()
    replay = client.replay_spool(RetryPolicy(retries=3, backoff=0.05))
    assert (len(replay.delivered), replay.rejected, replay.remaining) == (2, 1, 0)
    rejected = [json.loads(line) for line in (tmp_path / "spool.jsonl.rejected").read_text().splitlines()]
    assert rejected[0]["line"].endswith('"bo') and "torn" in rejected[0]["reason"]
    assert_exactly_once(own_server, actor, [first.id, second.id])
