"""What the framework hooks share: turning one framework event into one record, and delivering
it without losing it and without crashing the agent (unless asked to).

A hook builds events with :meth:`HookRecorder.emit`. Delivery is either through a background
queue (the client's own, or a :class:`~veritrail.BackgroundRecorder` given as ``recorder``):
``enqueue`` returns at once, batches go out in order, nothing is dropped (a full queue blocks,
an unreachable log is retried or spooled, at exit the queue is flushed); or synchronous
(``mode="sync"``): every event is a ``Client.record`` call that returns once the record is
durable (``wait=True``: once a signed checkpoint covers it, receipt verified).

An event that cannot be recorded is never dropped in silence: the failure is logged on the
``veritrail.hooks`` logger, counted in :attr:`HookRecorder.error_count`, kept in
:attr:`HookRecorder.errors` and passed to ``on_error``. With ``strict=True`` it is also raised
as :class:`HookError` into the agent run: at once for a synchronous failure, and for a record
the log refused in the background, at the next hook call or at :meth:`HookRecorder.flush`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import enum
import functools
import json
import logging
import math
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from ..errors import VeritrailError
from ..records import MAX_PAYLOAD_BYTES, Payload

if TYPE_CHECKING:  # pragma: no cover
    from ..background import BackgroundRecorder
    from ..client import Client, Recorded

__all__ = [
    "AGENT_HANDOFF",
    "AGENT_INVOKED",
    "HookError",
    "HookRecorder",
    "json_payload",
    "text_payload",
    "to_jsonable",
]

_log = logging.getLogger("veritrail.hooks")

#: An agent was invoked by another agent (or a run of an agent began): the record schema has no
#: core action for it (docs/events.md), so the hooks use this namespaced one.
AGENT_INVOKED = "x-veritrail-sdk.agent_invoked"
#: One agent handed the conversation over to another.
AGENT_HANDOFF = "x-veritrail-sdk.agent_handoff"

JSON_MEDIA_TYPE = "application/json"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_ACTOR_TYPES = ("user", "agent", "admin", "system")
_MAX_ERRORS_KEPT = 100


class HookError(VeritrailError):
    """A hook could not record an event. Raised into the agent run only with ``strict=True``.

    Attributes:
        action: the action of the event that was not recorded (or not recorded whole).
        cause: the underlying exception (``ApiError``, ``DeliveryError``, ``QueueFullError``,
            ``ValueError`` for an oversized payload, or a bug in the mapping).
    """

    def __init__(self, message: str, *, action: str | None = None, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.action = action
        self.cause = cause


def clip(value: Any, limit: int = 256) -> str | None:
    """``value`` as a record string: text without control characters, at most ``limit``
    characters; ``None`` when nothing is left."""
    if value is None:
        return None
    text = _CONTROL.sub(" ", str(value)).strip()
    return text[:limit] or None


def principal(user: str | Mapping[str, Any] | None) -> dict[str, str] | None:
    """The record ``actor`` of a user principal: ``"alice"`` is ``{"id": "alice", "type":
    "user"}``; a mapping keeps its ``type`` (``user``, ``agent``, ``admin`` or ``system``)."""
    if user is None:
        return None
    if isinstance(user, Mapping):
        ident, kind = clip(user.get("id")), str(user.get("type", "user"))
    else:
        ident, kind = clip(user), "user"
    if ident is None:
        raise ValueError("the user principal needs a non-empty id")
    if kind not in _ACTOR_TYPES:
        raise ValueError(f"actor type {kind!r}: one of {', '.join(_ACTOR_TYPES)}")
    return {"id": ident, "type": kind}


def rfc3339(value: str | _dt.datetime | None) -> str | None:
    """A timestamp as the log takes it (RFC 3339, UTC, ``Z``, milliseconds), or ``None``
    when ``value`` is not one."""
    if value is None:
        return None
    try:
        moment = value if isinstance(value, _dt.datetime) else _dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    moment = moment.astimezone(_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def trace_context(
    trace_id: str | None, span_id: str | None, parent_span_id: str | None = None
) -> dict[str, str] | None:
    """The record ``trace`` from identifiers made of hex digits (prefixes such as ``trace_``
    and dashes are dropped; span ids are cut to 16 digits), or ``None`` if they do not fit."""

    def hexdigits(value: str | None, size: int) -> str | None:
        if not value:
            return None
        digits = re.sub(r"^[a-z]+_", "", str(value).lower()).replace("-", "")[:size]
        pattern = _TRACE_ID if size == 32 else _SPAN_ID
        return digits if pattern.fullmatch(digits) and digits.strip("0") else None

    trace, span = hexdigits(trace_id, 32), hexdigits(span_id, 16)
    if trace is None or span is None:
        return None
    out = {"trace_id": trace, "span_id": span}
    parent = hexdigits(parent_span_id, 16)
    if parent is not None and parent != span:
        out["parent_span_id"] = parent
    return out


def to_jsonable(value: Any, _depth: int = 0) -> Any:
    """A JSON value for a framework object: pydantic models (``model_dump``), dataclasses,
    mappings, sequences, UUIDs, dates and enums are converted; anything else becomes its
    ``str``. Used for payloads, which must carry what the framework saw, whole."""
    if _depth > 40:
        return repr(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, _depth + 1)
    if isinstance(value, (uuid.UUID, _dt.date, _dt.time, _dt.timedelta)):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, deque)):
        return [to_jsonable(v, _depth + 1) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return to_jsonable(dump(mode="json"), _depth + 1)
        except Exception:  # noqa: BLE001 - fall back to the other forms
            try:
                return to_jsonable(dump(), _depth + 1)
            except Exception:  # noqa: BLE001
                pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name, None), _depth + 1) for f in dataclasses.fields(value)}
    to_json = getattr(value, "to_json", None)
    if callable(to_json) and not isinstance(value, type):
        try:
            return to_jsonable(to_json(), _depth + 1)
        except Exception:  # noqa: BLE001
            pass
    return str(value)


def json_payload(value: Any) -> Payload:
    """``value`` as an ``application/json`` payload."""
    return Payload(json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":")), JSON_MEDIA_TYPE)


def text_payload(value: Any) -> Payload | str:
    """A string as a text payload; anything else as JSON."""
    return value if isinstance(value, str) else json_payload(value)


def json_text_payload(text: str) -> Payload | str:
    """A string the framework says is JSON (tool arguments): kept byte for byte, labelled
    ``application/json`` when it parses, plain text otherwise."""
    try:
        json.loads(text)
    except (TypeError, ValueError):
        return text
    return Payload(text, JSON_MEDIA_TYPE)


def error_payload(error: BaseException | Any) -> str:
    """An exception (or an error object) as text: its type and message."""
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return error if isinstance(error, str) else json.dumps(to_jsonable(error), ensure_ascii=False)


def _payload_size(value: bytes | str | Payload) -> int:
    data = value.data if isinstance(value, Payload) else value
    return len(data.encode("utf-8")) if isinstance(data, str) else len(data)


class HookRecorder:
    """Turns framework events into records of one log and delivers them. Every hook has one
    (``hook.recorder``); its keyword arguments are the hooks' options.

    Args:
        client: the :class:`~veritrail.Client` of the log (token role ``append``).
        user: the user principal the application authenticated, on whose behalf the agent
            acts: ``"alice@example.com"`` or ``{"id": ..., "type": "user" | "agent" | "admin" |
            "system"}``. It is the ``actor`` of the records of the user's input and, with
            ``attribute_to="user"`` (the default), of every record.
        conversation_id: the record ``conversation_id`` (the log chains a conversation's
            records); some hooks fall back on the framework's (see each hook).
        session_id: the record ``session_id``.
        agent_name: the agent's name (record ``agent.name``, ``gen_ai.agent.name``); default:
            what the framework says, else the framework's name.
        agent_version: the record ``agent.version``.
        subject: the record ``subject``: the data subject whose data key encrypts the
            payloads (erasing the subject destroys them).
        provider: ``gen_ai.provider.name`` of model calls when the framework does not say.
        classification, compliance: the record fields of those names, on every record.
        attribute_to: ``"user"``: every record's actor is the user principal (when one is
            given), the agent being named in ``agent``; ``"agent"``: only the user's input is
            the user's, the rest is the agent's.
        mode: ``"background"`` (default): records go through a bounded background queue and
            the agent never waits for the log; ``"sync"``: every record is appended before the
            framework goes on.
        wait: with ``mode="sync"``, also wait for each record's receipt (and verify it).
        strict: raise :class:`HookError` into the agent run when an event cannot be recorded
            (default: log it, count it, call ``on_error``, and let the run go on).
        on_error: called with ``(error, event)`` for every event not recorded (the event
            without its payloads).
        recorder: a :class:`~veritrail.BackgroundRecorder` to queue records on (default: the
            client's own queue, ``client.enqueue``).
        enqueue_timeout: longest to wait for room in a full queue (default: no limit; the
            agent is slowed down, nothing is dropped). Past it the event fails with
            :class:`~veritrail.QueueFullError`, reported as above.
        framework: the framework's name (set by each hook).
    """

    def __init__(
        self,
        client: Client,
        *,
        user: str | Mapping[str, Any] | None = None,
        conversation_id: str | None = None,
        session_id: str | None = None,
        agent_name: str | None = None,
        agent_version: str | None = None,
        subject: str | None = None,
        provider: str | None = None,
        classification: str | None = None,
        compliance: list[str] | None = None,
        attribute_to: Literal["user", "agent"] = "user",
        mode: Literal["background", "sync"] = "background",
        wait: bool = False,
        strict: bool = False,
        on_error: Callable[[BaseException, dict[str, Any]], None] | None = None,
        recorder: BackgroundRecorder | None = None,
        enqueue_timeout: float | None = None,
        framework: str = "agent",
    ) -> None:
        if mode not in ("background", "sync"):
            raise ValueError("mode is 'background' or 'sync'")
        if attribute_to not in ("user", "agent"):
            raise ValueError("attribute_to is 'user' or 'agent'")
        if wait and mode != "sync":
            raise ValueError("wait=True needs mode='sync'")
        self.client = client
        self.user = principal(user)
        self.conversation_id = clip(conversation_id)
        self.session_id = clip(session_id)
        self.agent_name = clip(agent_name)
        self.agent_version = clip(agent_version, 128)
        self.subject = clip(subject)
        self.provider = clip(provider)
        self.classification = classification
        self.compliance = list(compliance) if compliance else None
        self.attribute_to = attribute_to
        self.mode = mode
        self.wait = wait
        self.strict = strict
        self.on_error = on_error
        self.recorder = recorder
        self.enqueue_timeout = enqueue_timeout
        self.framework = framework
        #: How many events could not be recorded (or not whole).
        self.error_count = 0
        #: The last failures (at most 100), oldest first.
        self.errors: deque[HookError] = deque(maxlen=_MAX_ERRORS_KEPT)
        #: How many events were handed to the log (queued or appended).
        self.emitted = 0
        self._lock = threading.Lock()
        self._unraised: list[HookError] = []

    # ----------------------------------------------------------------------------------

    def emit(
        self,
        action: str,
        *,
        by: Literal["user", "agent"] = "agent",
        agent: str | None = None,
        gen_ai: Mapping[str, Any] | None = None,
        payloads: Mapping[str, bytes | str | Payload | None] | None = None,
        details: Mapping[str, Any] | None = None,
        trace: Mapping[str, str] | None = None,
        timestamp: str | _dt.datetime | None = None,
        resource: Mapping[str, str] | None = None,
        conversation_id: str | None = None,
        session_id: str | None = None,
        user: str | Mapping[str, Any] | None = None,
    ) -> None:
        """Records one event (queued or appended, by ``mode``); never raises unless
        ``strict`` (then: this event's failure, else an earlier one found in the background,
        after this event was handed over).

        Args:
            action: the record action.
            by: ``"user"`` for the user's input (its actor is the user principal), else
                ``"agent"``.
            agent: the agent's name (default: the recorder's ``agent_name``, else the
                framework's name).
            gen_ai: ``gen_ai.*`` attributes (``None`` values are left out, strings clipped).
            payloads: the contents, committed off the tree (``None`` values are left out).
            details: small metadata (no contents: it enters the tree).
            trace: the record ``trace``.
            timestamp: when it happened (default: now).
            resource: the record ``resource``.
            conversation_id, session_id, user: per-event values where the recorder has none.
        """
        event: dict[str, Any] = {"action": action}
        try:
            event = self._event(
                action, by, agent, gen_ai, details, trace, timestamp, resource, conversation_id, session_id, user
            )
            kept, omitted = self._payloads(payloads)
            if omitted:
                event.setdefault("details", {})["payloads_omitted"] = omitted
        except Exception as e:  # noqa: BLE001 - a mapping bug must not stop the agent
            self._failed(e, event)
            return
        self._deliver(event, kept)
        if omitted:
            self._failed(
                ValueError(f"payload(s) {sorted(omitted)} larger than {MAX_PAYLOAD_BYTES} bytes were left out"),
                event,
                recorded=True,
            )
        # This event is on its way first: a strict run stops with everything it did recorded.
        self.raise_pending()

    def _event(
        self,
        action: str,
        by: str,
        agent: str | None,
        gen_ai: Mapping[str, Any] | None,
        details: Mapping[str, Any] | None,
        trace: Mapping[str, str] | None,
        timestamp: str | _dt.datetime | None,
        resource: Mapping[str, str] | None,
        conversation_id: str | None,
        session_id: str | None,
        user: str | Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        agent_name = self.agent_name or clip(agent) or self.framework
        person = self.user or principal(user)
        if by == "user":
            actor = person or {"id": "unknown", "type": "user"}
        elif person is not None and self.attribute_to == "user":
            actor = person
        else:
            actor = {"id": agent_name, "type": "agent"}
        event: dict[str, Any] = {"action": action, "actor": actor, "agent": {"name": agent_name}}
        if self.agent_version:
            event["agent"]["version"] = self.agent_version
        stamp = rfc3339(timestamp)
        if stamp is not None:
            event["timestamp"] = stamp
        conversation = self.conversation_id or clip(conversation_id)
        if conversation:
            event["conversation_id"] = conversation
        session = self.session_id or clip(session_id)
        if session:
            event["session_id"] = session
        if self.subject:
            event["subject"] = self.subject
        if self.classification:
            event["classification"] = self.classification
        if self.compliance:
            event["compliance"] = list(self.compliance)
        attributes: dict[str, Any] = {"gen_ai.agent.name": agent_name}
        for key, value in (gen_ai or {}).items():
            if value is None:
                continue
            if key.startswith("gen_ai.usage."):
                if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53:
                    attributes[key] = value
            elif key == "gen_ai.operation.name":
                attributes[key] = value
            else:
                text = clip(value)
                if text is not None:
                    attributes[key] = text
        if (
            self.provider
            and "gen_ai.provider.name" not in attributes
            and attributes.get("gen_ai.operation.name") in ("chat", "text_completion", "generate_content")
        ):
            attributes["gen_ai.provider.name"] = self.provider
        event["gen_ai"] = attributes
        if trace:
            event["trace"] = dict(trace)
        if resource:
            event["resource"] = dict(resource)
        metadata: dict[str, Any] = {"hook": self.framework}
        for key, value in (details or {}).items():
            if value is not None:
                metadata[key] = to_jsonable(value)
        event["details"] = metadata
        return event

    @staticmethod
    def _payloads(
        payloads: Mapping[str, bytes | str | Payload | None] | None,
    ) -> tuple[dict[str, bytes | str | Payload], dict[str, int]]:
        kept: dict[str, bytes | str | Payload] = {}
        omitted: dict[str, int] = {}
        for name, value in (payloads or {}).items():
            if value is None:
                continue
            if not isinstance(value, (bytes, str, Payload)):
                value = json_payload(value)
            size = _payload_size(value)
            if size > MAX_PAYLOAD_BYTES:
                omitted[name] = size
            else:
                kept[name] = value
        return kept, omitted

    def _deliver(self, event: dict[str, Any], payloads: dict[str, bytes | str | Payload]) -> None:
        try:
            if self.mode == "sync":
                self.client.record(event, payloads=payloads or None, wait=self.wait)
            else:
                target = self.recorder if self.recorder is not None else self.client
                future = target.enqueue(event, payloads or None, timeout=self.enqueue_timeout)
                future.add_done_callback(functools.partial(self._settled, event=event))
        except Exception as e:  # noqa: BLE001 - reported, raised only when strict
            self._failed(e, event)
            return
        with self._lock:
            self.emitted += 1

    def _settled(self, future: Future[Recorded], *, event: dict[str, Any]) -> None:
        error = future.exception()
        if error is not None:
            self._failed(error, event, deferred=True)

    def _failed(
        self, error: BaseException, event: dict[str, Any], *, deferred: bool = False, recorded: bool = False
    ) -> None:
        action = event.get("action")
        what = "was recorded incompletely" if recorded else "was not recorded"
        wrapped = HookError(
            f"veritrail {self.framework} hook: a {action} event {what}: {error}", action=action, cause=error
        )
        wrapped.__cause__ = error
        with self._lock:
            self.error_count += 1
            self.errors.append(wrapped)
            if self.strict and deferred:
                self._unraised.append(wrapped)
        _log.error("%s", wrapped, exc_info=(type(error), error, error.__traceback__) if not deferred else None)
        if self.on_error is not None:
            try:
                self.on_error(error, event)
            except Exception:  # noqa: BLE001 - a failing callback must not stop the agent
                _log.exception("veritrail hook: on_error raised")
        if self.strict and not deferred:
            raise wrapped

    def raise_pending(self) -> None:
        """With ``strict``, raises the first background failure not raised yet."""
        if not self.strict:
            return
        with self._lock:
            if not self._unraised:
                return
            first, self._unraised = self._unraised[0], []
        raise first

    def flush(self, timeout: float | None = None) -> None:
        """Waits until every record queued so far is in the log (or spooled). With
        ``strict``, then raises the first failure not raised yet.

        Raises:
            DeliveryError: the timeout passed first (nothing is dropped).
            HookError: with ``strict``, an event was not recorded.
        """
        if self.mode == "background":
            if self.recorder is not None:
                self.recorder.flush(timeout)
            else:
                self.client.flush(timeout)
        self.raise_pending()

    @contextmanager
    def guard(self, where: str) -> Iterator[None]:
        """Runs a hook callback: any exception (a bug, an unexpected framework object) is
        reported like a failed record, and re-raised only with ``strict``."""
        try:
            yield
        except HookError:
            raise
        except Exception as e:  # noqa: BLE001 - the agent run must go on
            self._failed(e, {"action": where})
