"""OpenAI Agents SDK: a tracing processor that records agent runs from their spans.

::

    from agents import add_trace_processor
    from veritrail.hooks.openai_agents import VeritrailTracingProcessor

    add_trace_processor(VeritrailTracingProcessor(client, user="alice@example.com"))
    result = await Runner.run(agent, "Is ibuprofen OK?",
                              run_config=RunConfig(group_id="c-42"))   # the conversation

(``add_trace_processor`` keeps the SDK's own exporter; ``set_trace_processors([...])`` replaces
it.) What it records (every record: the ``conversation_id`` (the processor's, else the
trace's ``group_id``), ``session_id`` (else the trace metadata's ``session_id``), the user
principal (else the trace metadata's ``user_id``), ``gen_ai.agent.name`` of the agent the span
belongs to, the span's start or end time as ``timestamp``, and the ``trace`` from the SDK's
trace and span ids):

==================  ==================================  ==============  ========================
span                action                              operation       payloads
==================  ==================================  ==============  ========================
agent (start)       ``x-veritrail-sdk.agent_invoked``   invoke_agent    (output type in details)
generation / model  ``agent_response_generated``        chat            ``prompt``, ``response``
response (end)
function (end)      ``tool_invoked`` then               execute_tool    ``tool_arguments``;
                    ``tool_result``                                     ``tool_result``
handoff (end)       ``x-veritrail-sdk.agent_handoff``   invoke_agent    (from and to in details)
guardrail (end)     ``policy_decision``                 —               (name, triggered)
any span's error    ``error``                           (of the span)   ``error``
==================  ==================================  ==============  ========================

A function span carries its arguments only once the tool has run, so both of its records are
written when it ends, each with its own time. Payloads are there when the run includes
sensitive data in its traces (``RunConfig.trace_include_sensitive_data``, on by default).

The SDK calls processors synchronously and ignores what they raise (it logs it), so even with
``strict=True`` a failure cannot stop the run from here: ``force_flush()`` (and
``hook.recorder.flush()``) raise it instead.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

try:
    from agents.tracing import (
        AgentSpanData,
        FunctionSpanData,
        GenerationSpanData,
        GuardrailSpanData,
        HandoffSpanData,
        ResponseSpanData,
        Span,
        Trace,
        TracingProcessor,
    )
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "veritrail.hooks.openai_agents needs openai-agents: pip install 'veritrail[openai-agents]'"
    ) from e

from ..client import Client
from ..errors import DeliveryError
from ._core import (
    AGENT_HANDOFF,
    AGENT_INVOKED,
    HookRecorder,
    clip,
    json_payload,
    json_text_payload,
    text_payload,
    to_jsonable,
    trace_context,
)

__all__ = ["VeritrailTracingProcessor"]

_log = logging.getLogger("veritrail.hooks")


class VeritrailTracingProcessor(TracingProcessor):
    """Records OpenAI Agents SDK runs: register with ``agents.add_trace_processor(processor)``.

    Args:
        client: the :class:`~veritrail.Client` of the log.
        **options: those of :class:`~veritrail.hooks.HookRecorder`: ``user``,
            ``conversation_id``, ``session_id``, ``mode`` (``"background"`` or ``"sync"``),
            ``strict``, ``on_error``, ...
        shutdown_timeout: longest :meth:`shutdown` (called by the SDK at exit) waits for the
            queue to drain.
    """

    def __init__(self, client: Client, *, shutdown_timeout: float = 10.0, **options: Any) -> None:
        self.shutdown_timeout = shutdown_timeout
        self.recorder = HookRecorder(client, framework="openai-agents", **options)
        self._lock = threading.Lock()
        self._traces: dict[str, dict[str, Any]] = {}
        self._parents: dict[str, str | None] = {}
        self._agents: dict[str, str] = {}
        self._trace_of: dict[str, str] = {}

    # ----------------------------------------------------------------------------------
    # Traces

    def on_trace_start(self, trace: Trace) -> None:
        with self.recorder.guard("on_trace_start"):
            metadata = getattr(trace, "metadata", None) or {}
            with self._lock:
                self._traces[trace.trace_id] = {
                    "workflow": clip(trace.name),
                    "conversation_id": clip(getattr(trace, "group_id", None)),
                    "session_id": clip(metadata.get("session_id")) if isinstance(metadata, dict) else None,
                    "user": clip(metadata.get("user_id")) if isinstance(metadata, dict) else None,
                }

    def on_trace_end(self, trace: Trace) -> None:
        with self.recorder.guard("on_trace_end"):
            with self._lock:
                self._traces.pop(trace.trace_id, None)
                for span_id in [s for s, t in self._trace_of.items() if t == trace.trace_id]:
                    self._trace_of.pop(span_id, None)
                    self._parents.pop(span_id, None)
                    self._agents.pop(span_id, None)

    def shutdown(self) -> None:
        """Called by the SDK at exit: flushes for at most ``shutdown_timeout`` seconds. What
        is still queued then stays with the client's background queue, whose own exit hook
        delivers (or spools) it."""
        try:
            self.recorder.flush(self.shutdown_timeout)
        except DeliveryError as e:
            _log.warning("veritrail: %d record(s) still queued at shutdown: %s", len(e.events), e)

    def flush(self, timeout: float | None = None) -> None:
        """Waits until every record so far is in the log (see :meth:`HookRecorder.flush`)."""
        self.recorder.flush(timeout)

    def force_flush(self) -> None:
        """Waits until every record so far is in the log (with ``strict``, raises the first
        failure not raised yet)."""
        self.recorder.flush()

    # ----------------------------------------------------------------------------------
    # Spans

    def on_span_start(self, span: Span[Any]) -> None:
        with self.recorder.guard("on_span_start"):
            data = span.span_data
            with self._lock:
                self._parents[span.span_id] = span.parent_id
                self._trace_of[span.span_id] = span.trace_id
                if isinstance(data, AgentSpanData):
                    self._agents[span.span_id] = data.name
            if isinstance(data, AgentSpanData):
                self._emit(
                    span,
                    AGENT_INVOKED,
                    span.started_at,
                    gen_ai={"gen_ai.operation.name": "invoke_agent"},
                    # The SDK fills in the agent's tools and handoffs only later in the turn.
                    details={"output_type": data.output_type},
                )

    def on_span_end(self, span: Span[Any]) -> None:
        with self.recorder.guard("on_span_end"):
            data = span.span_data
            if isinstance(data, FunctionSpanData):
                self._function(span, data)
            elif isinstance(data, GenerationSpanData):
                self._generation(span, data)
            elif isinstance(data, ResponseSpanData):
                self._response(span, data)
            elif isinstance(data, HandoffSpanData):
                self._emit(
                    span,
                    AGENT_HANDOFF,
                    span.ended_at,
                    agent=data.from_agent,
                    gen_ai={"gen_ai.operation.name": "invoke_agent"},
                    details={"from_agent": data.from_agent, "to_agent": data.to_agent},
                )
            elif isinstance(data, GuardrailSpanData):
                self._emit(
                    span,
                    "policy_decision",
                    span.ended_at,
                    details={"guardrail": data.name, "triggered": bool(data.triggered)},
                )
            if span.error is not None and not isinstance(
                data, (FunctionSpanData, GenerationSpanData, ResponseSpanData)
            ):
                self._error(span, {"gen_ai.operation.name": "invoke_agent"} if isinstance(data, AgentSpanData) else {})

    def _function(self, span: Span[Any], data: FunctionSpanData) -> None:
        tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": data.name}
        details = {"mcp": data.mcp_data} if data.mcp_data else None
        self._emit(
            span,
            "tool_invoked",
            span.started_at,
            gen_ai=tool,
            payloads={"tool_arguments": json_text_payload(data.input) if data.input is not None else None},
            details=details,
        )
        if span.error is not None:
            # What the model was told instead of a result (the SDK's failure message), if any.
            self._error(span, tool, tool_result=data.output)
            return
        self._emit(
            span,
            "tool_result",
            span.ended_at,
            gen_ai=tool,
            payloads={"tool_result": text_payload(data.output) if data.output is not None else None},
            details=details,
        )

    def _generation(self, span: Span[Any], data: GenerationSpanData) -> None:
        usage = data.usage or {}
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": data.model,
            "gen_ai.response.model": data.model,
            "gen_ai.usage.input_tokens": usage.get("input_tokens"),
            "gen_ai.usage.output_tokens": usage.get("output_tokens"),
        }
        if span.error is not None:
            self._error(span, attributes, prompt=data.input)
            return
        self._emit(
            span,
            "agent_response_generated",
            span.ended_at,
            gen_ai=attributes,
            payloads={
                "prompt": json_payload(data.input) if data.input is not None else None,
                "response": json_payload(data.output) if data.output is not None else None,
            },
        )

    def _response(self, span: Span[Any], data: ResponseSpanData) -> None:
        response = data.response
        usage = data.usage or {}
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self.recorder.provider or "openai",
            "gen_ai.request.model": getattr(response, "model", None),
            "gen_ai.response.model": getattr(response, "model", None),
            "gen_ai.response.id": getattr(response, "id", None) or getattr(data, "_response_id", None),
            "gen_ai.usage.input_tokens": usage.get("input_tokens"),
            "gen_ai.usage.output_tokens": usage.get("output_tokens"),
        }
        if span.error is not None:
            self._error(span, attributes, prompt=data.input)
            return
        self._emit(
            span,
            "agent_response_generated",
            span.ended_at,
            gen_ai=attributes,
            payloads={
                "prompt": text_payload(data.input) if data.input is not None else None,
                "response": json_payload(getattr(response, "output", None)) if response is not None else None,
            },
        )

    def _error(self, span: Span[Any], attributes: dict[str, Any], prompt: Any = None, tool_result: Any = None) -> None:
        error: dict[str, Any] = dict(span.error or {})
        self._emit(
            span,
            "error",
            span.ended_at,
            gen_ai=attributes,
            payloads={
                "prompt": text_payload(prompt) if prompt is not None else None,
                "tool_result": text_payload(tool_result) if tool_result is not None else None,
                "error": json.dumps(to_jsonable(error), ensure_ascii=False),
            },
            details={"span_type": getattr(span.span_data, "type", None), "error_message": clip(error.get("message"))},
        )

    # ----------------------------------------------------------------------------------

    def _agent_of(self, span: Span[Any]) -> str | None:
        with self._lock:
            at: str | None = span.span_id
            for _ in range(64):
                if at is None:
                    return None
                if at in self._agents:
                    return self._agents[at]
                at = self._parents.get(at)
        return None

    def _emit(
        self,
        span: Span[Any],
        action: str,
        timestamp: str | None,
        *,
        agent: str | None = None,
        gen_ai: dict[str, Any] | None = None,
        payloads: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        with self._lock:
            trace = dict(self._traces.get(span.trace_id) or {})
        self.recorder.emit(
            action,
            agent=agent or self._agent_of(span),
            gen_ai=gen_ai,
            payloads=payloads,
            details={
                "event": f"{getattr(span.span_data, 'type', 'span')}_span",
                "workflow": trace.get("workflow"),
                **(details or {}),
            },
            trace=trace_context(span.trace_id, span.span_id, span.parent_id),
            timestamp=timestamp,
            conversation_id=trace.get("conversation_id"),
            session_id=trace.get("session_id"),
            user=trace.get("user"),
        )
