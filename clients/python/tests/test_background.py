"""The background queue: size and time triggers, flush on close and at exit, a full queue
blocks or raises (never drops), outages, and events the log refuses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import Server, wait_for

from veritrail import ApiError, Client, DeliveryError, QueueFullError, VeritrailError


def event(actor: str, n: int, action: str = "tool_invoked") -> dict[str, Any]:
    return {"action": action, "actor": {"id": actor, "type": "agent"}, "details": {"n": n}}


def actor() -> str:
    return f"bg-{uuid.uuid4().hex[:10]}"


def in_log(server: Server, who: str) -> Counter[int]:
    tip = server.get_json("readyz")["tree_size"]  # type: ignore[index]
    server.wait_published(tip - 1)
    return Counter(r["record"]["details"]["n"] for r in server.records(actor_id=who))


def test_close_flushes_everything(server: Server) -> None:
    who = actor()
    client = Client(server.url, server.token, server.log_key, batch_size=100, flush_interval=60)
    futures = [client.enqueue(event(who, n), payloads={"prompt": f"p{n}"} if n % 50 == 0 else None) for n in range(250)]
    assert not any(f.done() for f in futures[200:])  # 50 wait for a size or time trigger
    client.close()
    results = [f.result(timeout=0) for f in futures]
    assert len({r.index for r in results}) == 250 and not any(r.spooled for r in results)
    assert in_log(server, who) == Counter(range(250))
    assert client.payload(results[100].index, "prompt") == b"p100"  # type: ignore[arg-type]
    closed = client.background()
    closed.close()
    with pytest.raises(VeritrailError, match="closed"):
        closed.enqueue(event(who, 0))


def test_time_and_size_triggers(server: Server) -> None:
    who = actor()
    client = Client(server.url, server.token, server.log_key)
    with client.background(batch_size=5, flush_interval=0.3) as recorder:
        timed = recorder.enqueue(event(who, 0))
        started = time.monotonic()
        assert timed.result(timeout=10).index is not None  # alone: sent when it is due
        assert 0.25 <= time.monotonic() - started
    with client.background(batch_size=5, flush_interval=600) as recorder:
        sized = [recorder.enqueue(event(who, n)) for n in range(1, 6)]
        assert sized[-1].result(timeout=10).index is not None  # five: sent at once
        assert recorder.enqueue(event(who, 6)).done() is False  # the sixth waits
    assert in_log(server, who) == Counter(range(7))


def test_full_queue_blocks_or_raises_and_drops_nothing(own_server: Server) -> None:
    own_server.start()
    who = actor()
    client = Client(own_server.url, own_server.token, own_server.log_key, retries=0, max_backoff=0.1)
    recorder = client.background(batch_size=2, flush_interval=0.05, max_queue=3)
    own_server.stop()
    futures = [recorder.enqueue(event(who, n)) for n in range(2)]  # taken as one batch, stuck
    wait_for(lambda: recorder.pending() == 2 and recorder.last_error is not None)
    futures += [recorder.enqueue(event(who, n)) for n in range(2, 5)]  # the queue holds 3
    with pytest.raises(QueueFullError):
        recorder.enqueue(event(who, 5), block=False)
    started = time.monotonic()
    with pytest.raises(QueueFullError):
        recorder.enqueue(event(who, 5), timeout=0.3)
    assert time.monotonic() - started >= 0.3
    with pytest.raises(DeliveryError) as not_yet:
        recorder.flush(timeout=0.2)
    assert len(not_yet.value.events) == 5
    own_server.start()
    futures.append(recorder.enqueue(event(who, 5), timeout=10))  # blocks until there is room
    recorder.close(timeout=20)
    assert all(f.result(timeout=0).index is not None for f in futures)
    assert in_log(own_server, who) == Counter(range(6))  # the stuck batch went in once


def test_close_during_an_outage_spools_or_raises(own_server: Server, tmp_path: Path) -> None:
    own_server.start()
    who = actor()
    spooling = Client(
        own_server.url, own_server.token, own_server.log_key, retries=2, backoff=0.05, spool_path=tmp_path / "spool"
    )
    bare = Client(own_server.url, own_server.token, own_server.log_key, retries=0, max_backoff=0.1)
    spooled = [spooling.enqueue(event(who, n)) for n in range(3)]
    lost = [bare.enqueue(event(who, n)) for n in range(10, 12)]
    own_server.stop()
    spooling.close(timeout=10)  # closing: one attempt, then the spool
    assert all(f.result(timeout=0).spooled for f in spooled)
    with pytest.raises(DeliveryError) as undelivered:
        bare.close(timeout=0.5)
    assert [e["details"]["n"] for e in undelivered.value.events] == [10, 11]
    assert all(isinstance(f.exception(timeout=0), DeliveryError) for f in lost)
    own_server.start()
    assert len(spooling.replay_spool().delivered) == 3
    assert in_log(own_server, who) == Counter(range(3))


def test_refused_events_fail_alone(server: Server) -> None:
    who = actor()
    errors: list[tuple[BaseException, list[dict[str, Any]]]] = []
    client = Client(server.url, server.token, server.log_key)
    with client.background(
        batch_size=10, flush_interval=0.05, on_error=lambda e, evs: errors.append((e, evs))
    ) as recorder:
        futures = [recorder.enqueue(event(who, n, "not_an_action" if n == 2 else "error")) for n in range(5)]
    bad = futures[2].exception(timeout=0)
    assert isinstance(bad, ApiError) and bad.code == "invalid_record"
    assert all(f.result(timeout=0).index is not None for i, f in enumerate(futures) if i != 2)
    assert in_log(server, who) == Counter([0, 1, 3, 4])
    assert errors and errors[-1][1][0]["details"]["n"] == 2


def test_pending_records_are_flushed_at_exit(server: Server, tmp_path: Path) -> None:
    who = actor()
    script = textwrap.dedent(
        f"""
        import veritrail
        client = veritrail.Client({server.url!r}, {server.token!r}, batch_size=100, flush_interval=60)
        for n in range(7):
            client.enqueue({{"action": "error", "actor": {{"id": {who!r}, "type": "agent"}}, "details": {{"n": n}}}})
        # no close(): the atexit hook sends them
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, env=env)
    assert in_log(server, who) == Counter(range(7))


def test_an_event_is_sent_as_it_was_when_queued(server: Server) -> None:
    who = actor()
    client = Client(server.url, server.token, server.log_key, flush_interval=60)
    mutable = event(who, 0)
    future = client.enqueue(mutable)
    mutable["details"]["n"] = 99  # the caller reuses its dict
    client.close()
    assert future.result(timeout=0).record["details"] == {"n": 0}  # type: ignore[index]
