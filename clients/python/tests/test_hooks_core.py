"""What every hook shares (veritrail.hooks.HookRecorder), without any framework: the package
imports none, events map to valid records, nothing is dropped in silence, strictness."""

from __future__ import annotations

import dataclasses
import datetime
import json
import subprocess
import sys
import uuid

import pytest
from conftest import Server, wait_for
from hookcheck import actions, check_payloads, client_for, conversation, payload, records_of

from veritrail import ApiError, Payload
from veritrail.hooks import AGENT_INVOKED, HookError, HookRecorder, to_jsonable
from veritrail.hooks._core import principal, rfc3339, trace_context
from veritrail.records import MAX_PAYLOAD_BYTES


def test_importing_the_sdk_and_the_hooks_package_needs_no_framework() -> None:
    code = (
        "import sys, veritrail, veritrail.hooks\n"
        "loaded = [m for m in ('langchain_core', 'autogen_core', 'agents', 'openai') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_helpers() -> None:
    @dataclasses.dataclass
    class Call:
        name: str
        at: datetime.date

    assert to_jsonable({"c": Call("x", datetime.date(2026, 3, 1)), "b": b"\x00", "n": float("nan")}) == {
        "c": {"name": "x", "at": "2026-03-01"},
        "b": {"base64": "AA=="},
        "n": "nan",
    }
    assert rfc3339("2026-03-01T12:00:00.123456+00:00") == "2026-03-01T12:00:00.123Z"
    assert rfc3339("2026-03-01T13:00:00+01:00") == "2026-03-01T12:00:00.000Z"
    assert rfc3339("yesterday") is None
    trace = "trace_" + "ab" * 16
    assert trace_context(trace, "span_" + "cd" * 12, None) == {"trace_id": "ab" * 16, "span_id": "cd" * 8}
    assert trace_context("0" * 32, "cd" * 8) is None
    assert principal("alice") == {"id": "alice", "type": "user"}
    assert principal({"id": "cron", "type": "system"}) == {"id": "cron", "type": "system"}
    with pytest.raises(ValueError):
        principal({"id": "x", "type": "robot"})
    with pytest.raises(ValueError):
        HookRecorder(None, wait=True)  # type: ignore[arg-type]


def test_an_event_is_a_valid_record_with_committed_payloads(server: Server) -> None:
    cid = conversation()
    client = client_for(server)
    hook = HookRecorder(
        client, user="alice", conversation_id=cid, session_id="s\x07-1", agent_name="bot", agent_version="1.2",
        subject="patient-42", classification="confidential", compliance=["hipaa"], provider="acme",
        framework="custom",
    )  # fmt: skip
    hook.emit(
        AGENT_INVOKED,
        gen_ai={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": -1,
                "gen_ai.request.model": "m" * 300, "gen_ai.response.id": None},
        payloads={"prompt": "hello", "data": {"k": [1, 2]}, "raw": b"\x00\x01", "none": None,
                  "code": Payload("print(1)", "text/x-python")},
        details={"event": "test", "skip": None},
        trace={"trace_id": "ab" * 16, "span_id": "cd" * 8},
        timestamp="2026-03-01T12:00:00+00:00",
    )  # fmt: skip
    hook.flush(timeout=30)
    assert hook.error_count == 0 and hook.emitted == 1
    [(index, record)] = records_of(server, client, cid)
    assert record["actor"] == {"id": "alice", "type": "user"}
    assert record["agent"] == {"name": "bot", "version": "1.2"}
    assert record["session_id"] == "s -1"  # control characters replaced
    assert record["subject"] == "patient-42" and record["classification"] == "confidential"
    assert record["compliance"] == ["hipaa"]
    assert record["timestamp"] == "2026-03-01T12:00:00.000Z"
    assert record["gen_ai"] == {
        "gen_ai.agent.name": "bot",
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "acme",
        "gen_ai.request.model": "m" * 256,
        "gen_ai.usage.input_tokens": 3,
    }
    assert record["details"] == {"hook": "custom", "event": "test"}
    assert set(record["payloads"]) == {"prompt", "data", "raw", "code"}
    check_payloads(client, [(index, record)], secrets=["hello", "print(1)"])
    assert json.loads(client.payload(index, "data")) == {"k": [1, 2]}
    assert record["payloads"]["code"]["media_type"] == "text/x-python"
    client.close()


def test_an_oversized_payload_is_left_out_loudly_and_the_record_kept(server: Server) -> None:
    cid = conversation()
    client = client_for(server)
    seen: list[BaseException] = []
    hook = HookRecorder(client, conversation_id=cid, on_error=lambda e, event: seen.append(e))
    hook.emit("tool_result", payloads={"tool_result": "x" * (MAX_PAYLOAD_BYTES + 1), "note": "kept"})
    hook.flush(timeout=30)
    assert hook.error_count == 1 and "left out" in str(seen[0])
    [(index, record)] = records_of(server, client, cid)
    assert record["details"]["payloads_omitted"] == {"tool_result": MAX_PAYLOAD_BYTES + 1}
    assert payload(client, index, "note") == "kept"
    client.close()


def test_a_record_the_log_refuses_is_reported_and_raised_when_strict(server: Server) -> None:
    """A conversation closed by the application: the log refuses later records (409), the
    background recorder fails their futures, the hook reports them, strict raises them."""
    cid = conversation()
    client = client_for(server)
    client.record({"action": "conversation_ended", "actor": {"id": "app", "type": "system"}, "conversation_id": cid})
    seen: list[tuple[BaseException, dict]] = []  # type: ignore[type-arg]
    lenient = HookRecorder(client, conversation_id=cid, on_error=lambda e, event: seen.append((e, event)))
    lenient.emit("tool_invoked", payloads={"tool_arguments": "{}"})
    lenient.flush(timeout=30)
    assert lenient.error_count == 1
    [(error, event)] = seen
    assert isinstance(error, ApiError) and error.code == "conversation_closed"
    assert event["action"] == "tool_invoked" and "payloads" not in event

    strict = HookRecorder(client, conversation_id=cid, strict=True)
    strict.emit("tool_invoked")  # queued: the refusal comes later
    with pytest.raises(HookError) as raised:
        strict.flush(timeout=30)
    assert raised.value.action == "tool_invoked" and isinstance(raised.value.cause, ApiError)
    strict.flush(timeout=30)  # raised once
    strict.emit("tool_result")  # refused in the background, too
    wait_for(lambda: strict.error_count == 2)
    with pytest.raises(HookError):
        strict.emit("error")  # the next event raises it, once handed over itself
    with pytest.raises(HookError):
        strict.flush(timeout=30)  # that event's own refusal
    assert strict.error_count == 3
    assert actions(records_of(server, client, cid)) == ["conversation_ended"]
    client.close()


def test_synchronous_mode_appends_before_returning_with_receipts(server: Server) -> None:
    cid = conversation()
    client = client_for(server)
    hook = HookRecorder(client, conversation_id=cid, mode="sync", wait=True, user=f"u-{uuid.uuid4().hex[:6]}")
    for n in range(3):
        hook.emit("user_message_received", by="user", payloads={"prompt": f"p{n}"})
    # No flush: each was appended, with a verified receipt, before emit returned.
    records = records_of(server, client, cid)
    assert [payload(client, i, "prompt") for i, _ in records] == ["p0", "p1", "p2"]

    dead = type(client)("http://127.0.0.1:9", server.token, server.log_key, retries=0)
    with pytest.raises(HookError):
        HookRecorder(dead, mode="sync", strict=True).emit("error")
    lenient = HookRecorder(dead, mode="sync")
    lenient.emit("error")  # reported, not raised
    assert lenient.error_count == 1 and isinstance(lenient.errors[0].cause, Exception)
    client.close()
