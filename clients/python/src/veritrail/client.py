"""The Veritrail client: append agent audit records (``POST /v1/records``), get and verify
their receipts, read payloads proven against their commitments, survive outages.

See the package README for a tour; docs/api.md and docs/events.md in the repository for the
HTTP API and the event fields.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._http import RetryPolicy, Transport
from .errors import ApiError, DeliveryError, VerificationError, VeritrailError
from .jcs import loads_strict
from .records import (
    Payload,
    check_recorded,
    encode_payloads,
    is_payload_name,
    leaf_of,
    opens,
    parse_leaf,
    stored_commitment,
)
from .spool import Spool, SpoolEntry
from .tlog import (
    NoteVerifier,
    Receipt,
    decode_base64,
    hash_from_base64,
    leaf_hash,
    parse_note,
    parse_verifier_key,
    verify_receipt,
)

if TYPE_CHECKING:  # pragma: no cover
    from .background import BackgroundRecorder

__all__ = ["Client", "Recorded", "SpoolReplay", "MAX_RECORDS_PER_REQUEST", "new_idempotency_key"]

#: Most events in one ``POST /v1/records`` (the log's limit).
MAX_RECORDS_PER_REQUEST = 1000

#: Statuses after which a spooled request is refused for good (moved to ``.rejected``): the
#: body itself is at fault, so sending it again cannot succeed.
_PERMANENT_STATUSES = frozenset({400, 409, 413, 422})

_log = logging.getLogger("veritrail")

#: How long ``get_record`` waits for a checkpoint to cover a record appended a moment ago.
_PUBLISH_WAIT = 2.0


def _now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def new_idempotency_key() -> str:
    """A fresh random idempotency key (128 bits, hex), as the Rust client makes them."""
    return secrets.token_hex(16)


@dataclass
class Recorded:
    """What the log answered for one appended record (or, when the log could not be
    reached and a spool is configured, that the record was spooled).

    Attributes:
        id: the record's id (the event's, or the UUID the SDK gave it).
        index: its leaf index; ``None`` while spooled.
        leaf_hash: its RFC 6962 leaf hash (32 bytes), checked against ``entry``.
        entry: the leaf bytes, ``0x01 || JCS(record)``: what a receipt proves.
        record: the stored record (the event plus the server's fields), checked to hold
            the event unchanged.
        receipt: with ``wait=True``, the ``c2sp.org/tlog-proof@v1`` receipt (verified
            before ``record`` returned when the client has a ``log_key``).
        receipt_verified: whether the receipt was verified against the log key.
        idempotency_key: the key of the request that carried it.
        spooled: whether it is waiting in the spool instead (``index`` is then ``None``).
    """

    id: str
    index: int | None
    leaf_hash: bytes | None
    entry: bytes | None
    record: dict[str, Any] | None
    receipt: str | None
    receipt_verified: bool
    idempotency_key: str
    spooled: bool = False

    @property
    def leaf_hash_base64(self) -> str | None:
        """The leaf hash in base64, as the log writes it."""
        return None if self.leaf_hash is None else base64.b64encode(self.leaf_hash).decode("ascii")


@dataclass
class SpoolReplay:
    """The outcome of a spool replay.

    Attributes:
        delivered: the records the log took, in spool order.
        remaining: requests still in the spool (the log could not be reached).
        rejected: requests the log refused for good, moved to ``<spool>.rejected``.
        error: why the replay stopped early, if it did.
    """

    delivered: list[Recorded] = field(default_factory=list)
    remaining: int = 0
    rejected: int = 0
    error: BaseException | None = None


class Client:
    """A client of one Veritrail log.

    Args:
        url: the log's base URL, e.g. ``http://127.0.0.1:7800`` (what ``veritrail serve``
            prints).
        token: a bearer token (role ``append`` to record; ``audit`` to read records and
            payloads).
        log_key: the log's verifier key ``<name>+<key id>+<base64>``. With it, every
            receipt obtained with ``wait=True`` is verified before ``record`` returns, and
            records and payloads read back are proven.
        origin: the log's origin, if it is not the key's name.
        timeout: longest one HTTP request may take, in seconds (an append with ``wait``
            included).
        retries: how many times a failed request is repeated before ``DeliveryError`` (or
            spooling).
        backoff: delay before the first retry (seconds), doubled each time up to
            ``max_backoff``; a ``Retry-After`` header is honoured instead, up to
            ``max_retry_after``.
        max_backoff: largest delay between two attempts.
        max_retry_after: longest ``Retry-After`` honoured.
        spool_path: a JSONL file for appends the log cannot take: they are written there
            (``fsync``-ed) instead of raising ``DeliveryError``, and replayed under their
            idempotency keys at the next successful contact or by :meth:`replay_spool`.
        ssl_context: for ``https`` URLs, the TLS context (default: the system's).
        batch_size: background queue: most events per request.
        flush_interval: background queue: longest an event waits before its batch is sent.
        max_queue: background queue: most events waiting; ``enqueue`` blocks (or raises
            :class:`~veritrail.QueueFullError` after its timeout) when it is full.

    A client is thread-safe. Use it as a context manager, or call :meth:`close`, to flush
    the background queue.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        log_key: str | None = None,
        *,
        origin: str | None = None,
        timeout: float = 30.0,
        retries: int = 6,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        max_retry_after: float = 30.0,
        spool_path: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
    ) -> None:
        self.policy = RetryPolicy(
            retries=retries, backoff=backoff, max_backoff=max_backoff, max_retry_after=max_retry_after
        )
        self._transport = Transport(url, token, timeout, self.policy, ssl_context)
        self.url = url
        self.log_key: NoteVerifier | None = parse_verifier_key(log_key) if log_key is not None else None
        self.origin = origin
        self.spool: Spool | None = Spool(spool_path) if spool_path is not None else None
        self._background_settings = {"batch_size": batch_size, "flush_interval": flush_interval, "max_queue": max_queue}
        self._background: BackgroundRecorder | None = None
        self._background_lock = threading.Lock()

    @classmethod
    def from_env(cls, **kwargs: Any) -> Client:
        """A client configured as the ``veritrail`` CLI is: ``VERITRAIL_URL`` (default
        ``http://127.0.0.1:7800``), ``VERITRAIL_TOKEN``, ``VERITRAIL_LOG_KEY`` and
        ``VERITRAIL_SPOOL``; keyword arguments override them."""
        kwargs.setdefault("url", os.environ.get("VERITRAIL_URL", "http://127.0.0.1:7800"))
        kwargs.setdefault("token", os.environ.get("VERITRAIL_TOKEN"))
        kwargs.setdefault("log_key", os.environ.get("VERITRAIL_LOG_KEY"))
        kwargs.setdefault("spool_path", os.environ.get("VERITRAIL_SPOOL"))
        return cls(**kwargs)

    # ----------------------------------------------------------------------------------
    # Appending

    def prepare(
        self, event: Mapping[str, Any], payloads: Mapping[str, bytes | str | Payload] | None = None
    ) -> dict[str, Any]:
        """The event as it will be sent: a deep copy with ``id`` (a random UUID) and
        ``timestamp`` (now, UTC) filled in when absent, and ``payloads`` encoded as
        committed payloads (``{"media_type", "text"|"base64"}``), merged with any the event
        already holds in that form.

        Raises:
            TypeError: ``event`` is not a mapping or holds a value that is not JSON, or a
                payload has another type.
            ValueError: NaN or an infinity, a payload name or size the log would refuse, or
                a payload name given twice.
        """
        if not isinstance(event, Mapping):
            raise TypeError(f"an event is a dict, not {type(event).__name__}")
        # A deep copy through JSON: what is sent (and resent under the same key) cannot
        # change when the caller later mutates the event, and non-JSON values fail here.
        prepared: dict[str, Any] = json.loads(json.dumps(dict(event), allow_nan=False))
        prepared.setdefault("id", str(uuid.uuid4()))
        prepared.setdefault("timestamp", _now_rfc3339())
        if payloads:
            encoded = encode_payloads(payloads)
            existing = prepared.get("payloads") or {}
            if not isinstance(existing, Mapping):
                raise ValueError("the event's payloads member must be an object")
            clash = set(existing) & set(encoded)
            if clash:
                raise ValueError(f"payload(s) {sorted(clash)} given twice")
            prepared["payloads"] = {**existing, **encoded}
        return prepared

    def record(
        self,
        event: Mapping[str, Any],
        wait: bool = False,
        payloads: Mapping[str, bytes | str | Payload] | None = None,
        idempotency_key: str | None = None,
    ) -> Recorded:
        """Appends one agent record and returns once it is durable.

        Args:
            event: the event (docs/events.md): ``action``, ``actor`` and any other field;
                ``id`` and ``timestamp`` are filled in when absent.
            wait: also wait until a signed checkpoint covers it, and return its receipt
                (verified when the client has a ``log_key``).
            payloads: contents kept off the tree (prompts, responses, code, tool arguments
                and results): ``{"prompt": "..."}``; ``str`` is sent as UTF-8 text,
                ``bytes`` as binary, :class:`~veritrail.Payload` with its media type.
            idempotency_key: the key every attempt is sent with (default: a random one).
                Pass the key of an earlier call, with the same prepared event, to retry it
                without appending twice.

        Returns:
            The :class:`Recorded` answer (``spooled=True`` if the log could not be reached
            and a spool is configured).

        Raises:
            DeliveryError: the log could not be reached within the retry budget (and no
                spool is configured).
            ApiError: the log refused the record (``invalid_record`` names every field).
            VerificationError: the answer does not hold the event, or its receipt does not
                verify.
        """
        return self.record_batch([event], wait=wait, payloads=[payloads], idempotency_key=idempotency_key)[0]

    def record_batch(
        self,
        events: Sequence[Mapping[str, Any]],
        wait: bool = False,
        payloads: Sequence[Mapping[str, bytes | str | Payload] | None] | None = None,
        idempotency_key: str | None = None,
    ) -> list[Recorded]:
        """Appends 1 to 1,000 records in one request, all or nothing (see :meth:`record`).

        Args:
            events: the events.
            wait: wait for a signed checkpoint and return (and verify) receipts.
            payloads: one mapping (or ``None``) per event.
            idempotency_key: the key of the request (default: a random one).

        Raises:
            ValueError: no event, more than 1,000, or ``payloads`` of another length.
            DeliveryError, ApiError, VerificationError: as :meth:`record`.
        """
        if not 1 <= len(events) <= MAX_RECORDS_PER_REQUEST:
            raise ValueError(f"send 1 to {MAX_RECORDS_PER_REQUEST} records, not {len(events)}")
        if payloads is not None and len(payloads) != len(events):
            raise ValueError("give one payloads mapping (or None) per event")
        prepared = [self.prepare(e, payloads[i] if payloads else None) for i, e in enumerate(events)]
        return self.append_prepared(prepared, wait=wait, idempotency_key=idempotency_key or new_idempotency_key())

    def append_prepared(
        self,
        events: list[dict[str, Any]],
        *,
        wait: bool,
        idempotency_key: str,
        policy: RetryPolicy | None = None,
    ) -> list[Recorded]:
        """Sends events already :meth:`prepare`-d under ``idempotency_key`` (retried per
        ``policy``, default the client's, then spooled or :class:`DeliveryError`). The
        building block of :meth:`record_batch` and the background queue."""
        body = _body(events)
        if self.spool is not None and self.spool.has_pending():
            with self.spool.locked():
                if self.spool.has_pending():
                    # Replay first so that records keep their order; if the log is still
                    # unreachable, this request waits behind the others.
                    replay = self._replay_locked(RetryPolicy(retries=0))
                    if replay.remaining and isinstance(replay.error, DeliveryError):
                        return self._spool_request(events, body, idempotency_key)
        try:
            response = self._post_records(body, wait, idempotency_key, retry=True, policy=policy)
        except DeliveryError:
            if self.spool is None:
                raise
            return self._spool_request(events, body, idempotency_key)
        recorded = self._check_answer(response, events, wait, idempotency_key)
        if self.spool is not None and self.spool.has_pending():
            try:
                self.replay_spool(RetryPolicy(retries=0))
            except VeritrailError as e:  # this request succeeded; the spool says why it stays
                _log.warning("veritrail: replaying the spool %s failed: %s", self.spool.path, e)
        return recorded

    def resend(self, error: DeliveryError, wait: bool = False) -> list[Recorded]:
        """Sends again the request a :class:`DeliveryError` gave up on: the same body
        under the same idempotency key, so it is appended at most once.

        Raises:
            ValueError: the error carries no request.
            DeliveryError, ApiError, VerificationError: as :meth:`record`.
        """
        if error.body is None or error.idempotency_key is None:
            raise ValueError("this DeliveryError carries no request to resend")
        events = json.loads(error.body)
        return self.append_prepared(events, wait=wait, idempotency_key=error.idempotency_key)

    def _post_records(
        self, body: bytes, wait: bool, key: str, *, retry: bool, policy: RetryPolicy | None = None
    ) -> Any:
        path = "v1/records?wait=published" if wait else "v1/records"
        response = self._transport.send(
            "POST",
            path,
            body,
            {"Content-Type": "application/json", "Idempotency-Key": key},
            retry=retry,
            idempotency_key=key,
            policy=policy,
        )
        try:
            return loads_strict(response.body)
        except (ValueError, RecursionError) as e:
            raise VerificationError(f"{self._transport.url_for('v1/records')}: the answer is not JSON: {e}") from e

    def _check_answer(self, answer: Any, events: list[dict[str, Any]], wait: bool, key: str) -> list[Recorded]:
        records = answer.get("records") if isinstance(answer, dict) else None
        if not isinstance(records, list) or len(records) != len(events):
            raise VerificationError(
                f"the log answered {len(records) if isinstance(records, list) else 'no'} records for {len(events)}"
            )
        return [self._check_one(item, event, wait, key) for item, event in zip(records, events, strict=True)]

    def _check_one(self, item: Any, event: dict[str, Any], wait: bool, key: str) -> Recorded:
        if not isinstance(item, dict):
            raise VerificationError("a record answer is not an object")
        index, record_id = item.get("index"), item.get("id")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0 or not isinstance(record_id, str):
            raise VerificationError("a record answer lacks its index or id")
        if not isinstance(item.get("leaf"), str) or not isinstance(item.get("leaf_hash"), str):
            raise VerificationError(f"record {index}: the answer lacks its leaf or leaf hash")
        leaf = decode_base64(item["leaf"])
        claimed = hash_from_base64(item["leaf_hash"])
        if leaf_hash(leaf) != claimed:
            raise VerificationError(f"record {index}: the leaf does not hash to the leaf hash the log claims")
        proofs = [item.get(k) for k in ("checkpoint", "inclusion_proof", "receipt")]
        if wait and not all(p is not None for p in proofs):
            raise VerificationError(f"record {index}: expected checkpoint, inclusion_proof and receipt with wait")
        if not wait and any(p is not None for p in proofs):
            raise VerificationError(f"record {index}: a receipt that was not asked for")
        record = parse_leaf(leaf)
        check_recorded(event, record)
        if record.get("id") != record_id:
            raise VerificationError(f"record {index}: the answer's id is not the record's")
        receipt = item.get("receipt")
        if receipt is not None and not isinstance(receipt, str):
            raise VerificationError(f"record {index}: the receipt is not text")
        recorded = Recorded(record_id, index, claimed, leaf, record, receipt, False, key)
        if receipt is not None and self.log_key is not None:
            try:
                proven = verify_receipt(self.log_key, leaf, receipt, origin=self.origin)
            except VerificationError as e:
                raise VerificationError(f"record {index}: the receipt does not verify: {e}", recorded=recorded) from e
            if proven != index:
                raise VerificationError(f"record {index}: the receipt is for index {proven}", recorded=recorded)
            recorded.receipt_verified = True
        return recorded

    # ----------------------------------------------------------------------------------
    # Spool

    def spool_prepared(self, events: list[dict[str, Any]], idempotency_key: str) -> list[Recorded]:
        """Writes prepared events to the spool without trying the log (for a background
        queue that must stop now).

        Raises:
            VeritrailError: the client has no spool.
            OSError: the spool cannot be written.
        """
        if self.spool is None:
            raise VeritrailError("the client has no spool_path")
        return self._spool_request(events, _body(events), idempotency_key)

    def _spool_request(self, events: list[dict[str, Any]], body: bytes, key: str) -> list[Recorded]:
        assert self.spool is not None
        self.spool.append(SpoolEntry(key, body.decode("utf-8"), len(events), _now_rfc3339()))
        return [Recorded(str(e.get("id")), None, None, None, None, None, False, key, spooled=True) for e in events]

    def replay_spool(self, policy: RetryPolicy | None = None) -> SpoolReplay:
        """Sends the spooled requests, oldest first, each under its own idempotency key;
        stops at the first one the log cannot take (it stays, with those after it).

        Raises:
            VerificationError: an answer did not verify (the spool is updated first).
        """
        if self.spool is None:
            return SpoolReplay()
        with self.spool.locked():
            return self._replay_locked(policy)

    def _replay_locked(self, policy: RetryPolicy | None) -> SpoolReplay:
        assert self.spool is not None
        replay = SpoolReplay()
        remaining: list[str] = []
        bad_answer: VerificationError | None = None
        for line, entry in self.spool.read():
            if replay.error is not None:
                remaining.append(line)
                continue
            if entry is None:
                self.spool.reject(line, "the line cannot be read (a write torn by a crash?)")
                replay.rejected += 1
                continue
            try:
                answer = self._post_records(
                    entry.body.encode("utf-8"), False, entry.idempotency_key, retry=True, policy=policy
                )
            except DeliveryError as e:
                replay.error = e
                remaining.append(line)
                continue
            except ApiError as e:
                if e.status in _PERMANENT_STATUSES:
                    self.spool.reject(line, f"{e.status} {e.code}: {e.message}")
                    replay.rejected += 1
                else:
                    replay.error = e
                    remaining.append(line)
                continue
            except VerificationError as e:
                bad_answer = bad_answer or e
                continue
            try:
                events = json.loads(entry.body)
                replay.delivered.extend(self._check_answer(answer, events, False, entry.idempotency_key))
            except VerificationError as e:
                bad_answer = bad_answer or e
        self.spool.rewrite(remaining)
        replay.remaining = len(remaining)
        if bad_answer is not None:
            raise bad_answer
        return replay

    # ----------------------------------------------------------------------------------
    # Background queue

    def background(self, **settings: Any) -> BackgroundRecorder:
        """A new :class:`~veritrail.BackgroundRecorder` on this client (settings default to
        the client's ``batch_size``, ``flush_interval`` and ``max_queue``)."""
        from .background import BackgroundRecorder

        return BackgroundRecorder(self, **{**self._background_settings, **settings})

    def enqueue(
        self,
        event: Mapping[str, Any],
        payloads: Mapping[str, bytes | str | Payload] | None = None,
        *,
        block: bool = True,
        timeout: float | None = None,
    ) -> Future[Recorded]:
        """Queues one record for the client's background recorder (started on first use)
        and returns a future of its :class:`Recorded`. See
        :meth:`BackgroundRecorder.enqueue`."""
        with self._background_lock:
            if self._background is None:
                self._background = self.background()
            recorder = self._background
        return recorder.enqueue(event, payloads, block=block, timeout=timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Waits until every queued record is delivered (or spooled).

        Raises:
            DeliveryError: the timeout passed first (nothing is dropped; they stay queued).
        """
        if self._background is not None:
            self._background.flush(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flushes and stops the background recorder.

        Raises:
            DeliveryError: records could not be delivered before ``timeout`` (their futures
                fail with it; ``events`` holds them).
        """
        with self._background_lock:
            recorder, self._background = self._background, None
        if recorder is not None:
            recorder.close(timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------
    # Reading back, proven

    def _require_key(self) -> NoteVerifier:
        if self.log_key is None:
            raise VeritrailError("reading records back verified needs the client's log_key")
        return self.log_key

    def _get_json(self, path: str) -> Any:
        response = self._transport.send("GET", path)
        try:
            return loads_strict(response.body)
        except (ValueError, RecursionError) as e:
            raise VerificationError(f"{self._transport.url_for(path)}: the answer is not JSON: {e}") from e

    def _prove(self, index: int, record: Any, proof: Any, checkpoint: Any) -> bytes:
        key = self._require_key()
        if not isinstance(proof, list) or not all(isinstance(h, str) for h in proof) or not isinstance(checkpoint, str):
            raise VerificationError(f"record {index}: the answer lacks its proof or checkpoint")
        leaf = leaf_of(record)
        receipt = Receipt(
            None, index, tuple(hash_from_base64(h) for h in proof), parse_note(checkpoint.encode("utf-8"))
        )
        try:
            verify_receipt(key, leaf, receipt.to_bytes(), origin=self.origin)
        except VerificationError as e:
            raise VerificationError(f"record {index} is not proven in the log: {e}") from e
        return leaf

    def get_record(self, index: int) -> dict[str, Any]:
        """The record at ``index`` (``GET /v1/records/{index}``, role ``audit``), proven: its
        leaf is recomputed from the JSON and its inclusion proof must lead to a checkpoint
        signed by the log key.

        Raises:
            VeritrailError: the client has no ``log_key``.
            VerificationError: the record is not proven.
            ApiError, DeliveryError: the log refused or could not be reached.
        """
        path = f"v1/records/{int(index)}"
        deadline = time.monotonic() + _PUBLISH_WAIT
        while True:
            try:
                answer = self._get_json(path)
                break
            except ApiError as e:
                # A record appended a moment ago is 404 until a checkpoint covers it (the log
                # signs one within --checkpoint-interval, 20 ms by default). The code is the
                # same as for a missing record, so only the message tells them apart.
                if e.code != "not_found" or "not covered" not in e.message or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        if not isinstance(answer, dict) or answer.get("index") != index:
            raise VerificationError(f"the log answered for another record than {index}")
        record = answer.get("record")
        if not isinstance(record, dict):
            raise VerificationError(f"record {index}: the answer holds no record")
        self._prove(index, record, answer.get("proof"), answer.get("checkpoint"))
        return record

    def payload(self, index: int, name: str) -> bytes:
        """Payload ``name`` of the record at ``index``, proven: the record is proven in the
        log (:meth:`get_record`), the payload is served with the media type the record
        states, and with its opening key it opens the record's commitment
        ``HMAC-SHA-256(opening_key, "veritrail/payload/v1" || payload)``.

        Raises:
            ValueError: ``name`` is not a payload name.
            VeritrailError: the client has no ``log_key``.
            VerificationError: the record or the payload does not verify.
            ApiError: e.g. ``payload_erased`` (410) after an erasure, ``not_found``.
        """
        if not is_payload_name(name):
            raise ValueError(f"{name!r} is not a payload name")
        record = self.get_record(index)
        commitment = stored_commitment(record, name)
        if commitment is None:
            raise VerificationError(f"record {index} commits to no payload {name!r}")
        stated = record["payloads"][name].get("media_type")
        answer = self._get_json(f"v1/records/{int(index)}/payloads/{urllib.parse.quote(name, safe='')}")
        if not isinstance(answer, dict) or not all(
            isinstance(answer.get(k), str) for k in ("media_type", "payload", "opening_key")
        ):
            raise VerificationError(f"record {index}: the payload answer is malformed")
        if answer["media_type"] != stated:
            raise VerificationError(
                f"payload {name!r} is served as {answer['media_type']!r}, the record says {stated!r}"
            )
        content = decode_base64(answer["payload"])
        if not opens(commitment, decode_base64(answer["opening_key"]), content):
            raise VerificationError(f"payload {name!r} of record {index} does not open the record's commitment")
        return content

    def query(self, **filters: str | int | Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Runs a record query (``GET /v1/records``, role ``audit``) to its end and yields
        ``(index, record)``, every record proven against its page's signed checkpoint and
        the indices strictly increasing. Filters are the query parameters of docs/api.md
        (``conversation_id``, ``actor_id``, ``action`` (a list for alternatives), ...).
        That the log left no matching record out cannot be shown from the answer alone.

        Raises:
            VeritrailError: the client has no ``log_key``.
            VerificationError: a record is not proven, or the pages are inconsistent.
        """
        self._require_key()
        pairs: list[tuple[str, str]] = []
        for name, value in filters.items():
            if name in ("cursor", "limit"):
                raise ValueError("cursor and limit are managed by query()")
            values = value if isinstance(value, (list, tuple)) else [value]
            pairs.extend((name, str(v)) for v in values)
        cursor, last = 0, -1
        while True:
            query = urllib.parse.urlencode([*pairs, ("cursor", str(cursor)), ("limit", "1000")])
            page = self._get_json(f"v1/records?{query}")
            if (
                not isinstance(page, dict)
                or not isinstance(page.get("records"), list)
                or not isinstance(page.get("size"), int)
            ):
                raise VerificationError("a query page is malformed")
            for item in page["records"]:
                index = item.get("index") if isinstance(item, dict) else None
                if not isinstance(index, int) or index < cursor or index >= page["size"] or index <= last:
                    raise VerificationError(f"a query page answered record {index!r} out of order or range")
                self._prove(index, item.get("record"), item.get("proof"), page.get("checkpoint"))
                last = index
                yield index, item["record"]
            following = page.get("next_cursor")
            if following is None:
                return
            if not isinstance(following, int) or not cursor < following <= page["size"]:
                raise VerificationError(f"a next cursor that does not advance from {cursor}")
            cursor = following


def _body(events: list[dict[str, Any]]) -> bytes:
    try:
        return json.dumps(events, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except ValueError as e:
        raise ValueError(f"the event is not JSON: {e}") from e
