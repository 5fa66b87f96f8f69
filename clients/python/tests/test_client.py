"""The SDK against a real ``veritrail serve``: appends, receipts (checked by the SDK and by
the Rust CLI, both ways), payloads, errors, idempotency and back-pressure."""

from __future__ import annotations

import http.client
import http.server
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ORIGIN, Server, run_cli

import veritrail
from veritrail import (
    ApiError,
    Client,
    DeliveryError,
    Payload,
    VerificationError,
    verify_receipt,
)
from veritrail.records import leaf_of
from veritrail.tlog import parse_receipt


def event(actor: str, action: str = "tool_invoked", **more: Any) -> dict[str, Any]:
    return {"action": action, "actor": {"id": actor, "type": "agent"}, **more}


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, server.token, server.log_key, retries=2, backoff=0.05) as c:
        yield c


@pytest.fixture
def actor() -> str:
    return f"sdk-{uuid.uuid4().hex[:12]}"


def test_record_wait_returns_a_verified_receipt(client: Client, server: Server, actor: str) -> None:
    client.record(event(actor), wait=False)  # a tree of more than one leaf: real proofs
    done = client.record(
        event(actor, conversation_id=f"c-{actor}", agent={"name": "triage", "version": "1.0"}),
        wait=True,
        payloads={"prompt": "What does my lab result mean?"},
    )
    assert done.receipt_verified and done.receipt and done.entry and done.index is not None
    assert verify_receipt(server.log_key, done.entry, done.receipt) == done.index
    assert done.leaf_hash == veritrail.tlog.leaf_hash(done.entry)
    assert done.entry[0] == 1 and done.entry == leaf_of(done.record)  # type: ignore[arg-type]
    # The stored record holds the payload as a commitment only.
    assert set(done.record["payloads"]["prompt"]) == {"commitment", "media_type", "size"}  # type: ignore[index]
    assert "What does" not in done.entry.decode()
    # The leaf the SDK holds is the one the log serves.
    assert server.get_bytes(f"v1/entries/{done.index}") == done.entry
    without_wait = client.record(event(actor))
    assert without_wait.receipt is None and not without_wait.receipt_verified and without_wait.entry


def test_receipts_from_the_live_log_fail_when_tampered(
    client: Client, server: Server, actor: str, tmp_path: Path
) -> None:
    for _ in range(3):
        client.record(event(actor))
    done = client.record(event(actor), wait=True)
    assert done.receipt and done.entry and done.index is not None
    receipt, entry = done.receipt, done.entry
    parsed = parse_receipt(receipt)
    assert parsed.proof, "the tree has more than one leaf"
    first = veritrail.tlog.encode_base64(parsed.proof[0])
    flipped = veritrail.tlog.encode_base64(bytes([parsed.proof[0][0] ^ 1]) + parsed.proof[0][1:])
    signature = receipt.rsplit(" ", 1)[1]
    bad_signature = ("A" if signature[0] != "A" else "B") + signature[1:]
    other_key_file = tmp_path / "other.key"
    other_key = run_cli("keygen", "--name", ORIGIN, "--out", str(other_key_file)).stdout.decode().split()[0]
    cases = {
        "flipped proof hash": (server.log_key, entry, receipt.replace(first, flipped)),
        "wrong index": (server.log_key, entry, receipt.replace(f"index {done.index}\n", f"index {done.index + 1}\n")),
        "bad signature": (server.log_key, entry, receipt.replace(signature, bad_signature)),
        "wrong key": (other_key, entry, receipt),
        "truncated": (server.log_key, entry, receipt[: len(receipt) // 2]),
        "garbage": (server.log_key, entry, "\u2014\n\n\x00garbage"),
        "other entry": (server.log_key, entry + b" ", receipt),
    }
    for why, (key, e, r) in cases.items():
        with pytest.raises(VerificationError):
            verify_receipt(key, e, r)
            pytest.fail(why)
        # The Rust CLI agrees.
        (tmp_path / "entry").write_bytes(e)
        (tmp_path / "receipt").write_text(r)
        out = run_cli(
            "verify-receipt",
            "--log-key",
            key,
            "--entry",
            str(tmp_path / "entry"),
            str(tmp_path / "receipt"),
            check=False,
        )
        assert out.returncode == 1, (why, out.stdout, out.stderr)
        assert out.stdout.startswith(b"invalid:"), why


def test_python_receipt_verifies_with_the_cli(client: Client, server: Server, actor: str, tmp_path: Path) -> None:
    done = client.record(event(actor), wait=True, payloads={"response": "fine"})
    assert done.entry and done.receipt
    (tmp_path / "entry").write_bytes(done.entry)
    (tmp_path / "receipt").write_text(done.receipt)
    out = run_cli(
        "verify-receipt", "--log-key", server.log_key, "--entry", str(tmp_path / "entry"), str(tmp_path / "receipt")
    )
    assert out.stdout.decode().startswith(f"valid: entry {done.index} is in {ORIGIN}")


def test_cli_receipts_verify_in_python(client: Client, server: Server, actor: str, tmp_path: Path) -> None:
    # An agent record appended by `veritrail record --receipt`.
    (tmp_path / "event.json").write_text(json.dumps(event(actor, timestamp="2026-03-01T12:00:00Z")))
    out = run_cli(
        "record", "--url", server.url, "--token", server.token, "--log-key", server.log_key,
        "--receipt", str(tmp_path / "record.tlog-proof"), str(tmp_path / "event.json"),
    )  # fmt: skip
    index = int(re.match(rb"index (\d+) ", out.stdout).group(1))  # type: ignore[union-attr]
    receipt = (tmp_path / "record.tlog-proof").read_bytes()
    # The CLI does not save the leaf; the SDK rebuilds it from the proven record (RFC 8785),
    # and it is byte for byte what the log stores.
    leaf = leaf_of(client.get_record(index))
    assert leaf == server.get_bytes(f"v1/entries/{index}")
    assert verify_receipt(server.log_key, leaf, receipt) == index
    # A raw entry appended by `veritrail append --receipt`.
    (tmp_path / "entry").write_bytes(b"prompt changed: v12")
    out = run_cli(
        "append", "--url", server.url, "--token", server.token, "--log-key", server.log_key,
        "--receipt", str(tmp_path / "entry.tlog-proof"), str(tmp_path / "entry"),
    )  # fmt: skip
    index = int(re.search(rb"(\d+)", out.stdout).group(1))  # type: ignore[union-attr]
    assert verify_receipt(server.log_key, b"prompt changed: v12", (tmp_path / "entry.tlog-proof").read_text()) == index


def test_payloads_are_committed_and_verified(client: Client, actor: str) -> None:
    blob = bytes(range(256)) * 3
    done = client.record(
        event(actor, "tool_result", subject=f"patient-{actor}"),
        payloads={"tool_result": blob, "prompt": "héllo", "tool_arguments": Payload('{"x": 1}', "application/json")},
    )
    assert done.index is not None
    assert client.payload(done.index, "tool_result") == blob
    assert client.payload(done.index, "prompt") == "héllo".encode()
    assert client.payload(done.index, "tool_arguments") == b'{"x": 1}'
    stored = client.get_record(done.index)
    assert stored["payloads"]["tool_arguments"]["media_type"] == "application/json"
    with pytest.raises(VerificationError, match="commits to no payload"):
        client.payload(done.index, "code")  # as the Rust client: the proven record says so


def test_payload_that_does_not_open_the_commitment_is_refused(
    client: Client, actor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = client.record(event(actor), payloads={"prompt": "the real prompt"})
    real = client._get_json

    def lying(path: str) -> Any:
        answer = real(path)
        if path.endswith("/payloads/prompt"):
            answer["payload"] = veritrail.tlog.encode_base64(b"another prompt")
        return answer

    monkeypatch.setattr(client, "_get_json", lying)
    with pytest.raises(VerificationError, match="does not open"):
        client.payload(done.index, "prompt")  # type: ignore[arg-type]

    def lying_record(path: str) -> Any:
        answer = real(path)
        if re.fullmatch(r"v1/records/\d+", path):
            answer["record"]["action"] = "error"
        return answer

    monkeypatch.setattr(client, "_get_json", lying_record)
    with pytest.raises(VerificationError, match="not proven"):
        client.get_record(done.index)  # type: ignore[arg-type]


def test_reading_back_needs_the_log_key(server: Server, actor: str) -> None:
    with Client(server.url, server.token) as keyless:
        done = keyless.record(event(actor), wait=True)
        assert done.receipt and not done.receipt_verified
        with pytest.raises(veritrail.VeritrailError, match="log_key"):
            keyless.payload(done.index, "prompt")  # type: ignore[arg-type]


def test_api_errors_carry_the_stable_code(client: Client, server: Server, actor: str) -> None:
    with pytest.raises(ApiError) as refused:
        client.record(event(actor, "not_an_action", classification="secret"))
    assert refused.value.status == 422 and refused.value.code == "invalid_record"
    fields = {p["field"] for p in refused.value.problems}
    assert {"[0].action", "[0].classification"} <= fields
    with Client(server.url, "vt_wrong_token") as stranger:
        with pytest.raises(ApiError) as unauthorized:
            stranger.record(event(actor))
    assert (unauthorized.value.status, unauthorized.value.code) == (401, "unauthorized")
    conversation = f"closed-{actor}"
    client.record(event(actor, "conversation_ended", conversation_id=conversation))
    with pytest.raises(ApiError) as closed:
        client.record(event(actor, conversation_id=conversation))
    assert closed.value.code == "conversation_closed"


def test_same_idempotency_key_appends_once(client: Client, server: Server, actor: str) -> None:
    prepared = [client.prepare(event(actor), {"prompt": "p"})]
    first = client.append_prepared(prepared, wait=False, idempotency_key=f"key-{actor}")
    again = client.append_prepared(prepared, wait=True, idempotency_key=f"key-{actor}")
    assert first[0].index == again[0].index and again[0].receipt_verified
    server.wait_published(first[0].index)  # type: ignore[arg-type]
    assert len(server.records(actor_id=actor)) == 1
    with pytest.raises(ApiError) as conflict:
        client.append_prepared([client.prepare(event(actor))], wait=False, idempotency_key=f"key-{actor}")
    assert conflict.value.code == "idempotency_conflict"


class _DroppingProxy:
    """An HTTP proxy that forwards every request but, for the first ``drops`` POSTs, hangs
    up instead of relaying the answer: the append is durable, the client never hears."""

    def __init__(self, upstream_port: int, drops: int) -> None:
        self.drops = drops
        self.posts = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                upstream.close()
                if self.command == "POST":
                    proxy.posts += 1
                    if proxy.drops > 0:
                        proxy.drops -= 1
                        self.close_connection = True
                        return
                self.send_response(response.status)
                for k, v in response.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "date", "server"):
                        self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_lost_answers_are_retried_without_duplicates(server: Server, actor: str) -> None:
    proxy = _DroppingProxy(server.port, drops=2)
    try:
        with Client(proxy.url, server.token, server.log_key, retries=4, backoff=0.05) as c:
            done = c.record(event(actor), wait=True)
            batch = c.record_batch([event(actor), event(actor)])
    finally:
        proxy.close()
    server.wait_published(batch[1].index)  # type: ignore[arg-type]
    assert proxy.posts == 4  # two answers lost, each retried once
    stored = server.records(actor_id=actor)
    assert sorted(r["index"] for r in stored) == sorted([done.index, batch[0].index, batch[1].index])
    assert done.receipt_verified


def test_back_pressure_honours_retry_after(tmp_path: Path, actor: str) -> None:
    # A queue of one entry that an append holds for up to a second (it waits for others to
    # share its commit): a second append meanwhile is 503 overloaded with Retry-After: 1.
    tight = Server(tmp_path, "--queue-max-entries", "1", "--batch-max-delay", "1s")
    tight.start()
    try:

        def hold_the_queue() -> threading.Thread:
            def post() -> None:
                connection = http.client.HTTPConnection("127.0.0.1", tight.port, timeout=10)
                connection.request("POST", "/v1/entries", b"x", {"Authorization": f"Bearer {tight.token}"})
                assert connection.getresponse().status == 200
                connection.close()

            thread = threading.Thread(target=post)
            thread.start()
            time.sleep(0.3)
            return thread

        holder = hold_the_queue()
        impatient = Client(tight.url, tight.token, tight.log_key, retries=0)
        with pytest.raises(DeliveryError) as gave_up:
            impatient.record(event(actor))
        error = gave_up.value
        assert error.attempts == 1 and isinstance(error.last_error, ApiError)
        assert error.last_error.code == "overloaded" and error.last_error.retry_after == 1
        assert error.idempotency_key and error.body
        holder.join()

        holder = hold_the_queue()
        patient = Client(tight.url, tight.token, tight.log_key, retries=3, backoff=0.01)
        delays: list[float] = []

        def sleep(seconds: float) -> None:
            delays.append(seconds)
            time.sleep(seconds)

        patient._transport._sleep = sleep  # type: ignore[method-assign]
        done = patient.record(event(actor))
        holder.join()
        tight.wait_published(done.index)  # type: ignore[arg-type]
        assert delays and all(1.0 <= d <= 1.2 for d in delays), delays  # Retry-After, not 0.01
        assert [r["index"] for r in tight.records(actor_id=actor)] == [done.index]
    finally:
        tight.stop()


def test_sdk_query_proves_every_record(client: Client, actor: str) -> None:
    sent = [client.record(event(actor, "error"), wait=i == 2) for i in range(3)]  # queries answer as of a checkpoint
    found = list(client.query(actor_id=actor, action=["error", "tool_invoked"]))
    assert [i for i, _ in found] == [r.index for r in sent]
    assert [r["id"] for _, r in found] == [r.id for r in sent]


def test_from_env(server: Server, monkeypatch: pytest.MonkeyPatch, actor: str) -> None:
    monkeypatch.setenv("VERITRAIL_URL", server.url)
    monkeypatch.setenv("VERITRAIL_TOKEN", server.token)
    monkeypatch.setenv("VERITRAIL_LOG_KEY", server.log_key)
    with Client.from_env() as c:
        assert c.record(event(actor), wait=True).receipt_verified
