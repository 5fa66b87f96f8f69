"""LangChain: a callback handler that records a run in a Veritrail log.

::

    from veritrail.hooks.langchain import VeritrailCallbackHandler

    handler = VeritrailCallbackHandler(client, user="alice@example.com", conversation_id="c-42")
    agent.invoke({"messages": [("user", "Is ibuprofen OK with my prescription?")]},
                 config={"callbacks": [handler], "run_name": "triage"})

What it records (every record: the ``conversation_id``, ``session_id``, the user principal,
``agent.name`` and ``gen_ai.agent.name``, and a ``trace`` made of LangChain's run ids: the root
run's id as ``trace_id``, each run's last 16 hex digits as ``span_id``):

============================  ===========================  ===============  =====================
callback                      action                       operation        payloads
============================  ===========================  ===============  =====================
chain start (the root run)    ``user_message_received``    invoke_agent     ``prompt``
chain end (the root run)      ``agent_response_generated`` invoke_agent     ``response``
chat model / LLM end          ``agent_response_generated`` chat            ``prompt``, ``response``
tool start                    ``tool_invoked``             execute_tool     ``tool_arguments``
tool end                      ``tool_result``              execute_tool     ``tool_result``
agent action                  ``agent_response_generated`` invoke_agent     ``response``, ``tool_arguments``
agent finish                  ``agent_response_generated`` invoke_agent     ``response``
retriever end                 ``data_accessed``            retrieval        ``query``, ``documents``
any error (chain: root only)  ``error``                    (of the run)     ``error`` (+ ``prompt``/``query``)
============================  ===========================  ===============  =====================

Nested chains (the steps of a sequence, graph nodes) are not recorded on their own: what they
do reaches the log through their model calls, tools and retrievers. Where the handler has no
``conversation_id``/``session_id``/``user``, it takes them from the run's metadata
(``conversation_id`` or ``thread_id``, ``session_id``, ``user_id``); the agent's name is the
handler's ``agent_name``, else the root run's name (``config={"run_name": ...}``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

try:
    from langchain_core.callbacks import BaseCallbackHandler
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("veritrail.hooks.langchain needs langchain-core: pip install 'veritrail[langchain]'") from e

from ..client import Client
from ._core import (
    HookRecorder,
    clip,
    error_payload,
    json_payload,
    text_payload,
    trace_context,
)

__all__ = ["VeritrailCallbackHandler"]


@dataclass
class _Run:
    kind: str
    name: str | None
    root: UUID
    parent: UUID | None
    context: dict[str, str] = field(default_factory=dict)
    prompt: Any = None
    operation: str | None = None
    model: str | None = None
    provider: str | None = None
    tool_call_id: str | None = None


class VeritrailCallbackHandler(BaseCallbackHandler):
    """Records a LangChain run: attach with ``config={"callbacks": [handler]}``.

    Args:
        client: the :class:`~veritrail.Client` of the log.
        **options: those of :class:`~veritrail.hooks.HookRecorder`: ``user``,
            ``conversation_id``, ``session_id``, ``agent_name``, ``mode`` (``"background"``
            or ``"sync"``), ``strict``, ``on_error``, ...

    One handler may serve many runs, concurrently too. With ``strict=True`` a failure to
    record is raised into the run (``raise_error``); otherwise it is logged and counted
    (``handler.recorder.error_count``) and the run goes on.
    """

    def __init__(self, client: Client, **options: Any) -> None:
        super().__init__()
        self.recorder = HookRecorder(client, framework="langchain", **options)
        self.raise_error = self.recorder.strict
        # Queueing takes no time: run in the event loop, in order. Synchronous appends run in
        # LangChain's executor instead, so an async agent's loop is not blocked (each event is
        # still awaited before the run goes on).
        self.run_inline = self.recorder.mode == "background"
        self._runs: dict[UUID, _Run] = {}
        self._lock = threading.Lock()

    def flush(self, timeout: float | None = None) -> None:
        """Waits until every record so far is in the log (see :meth:`HookRecorder.flush`)."""
        self.recorder.flush(timeout)

    # ----------------------------------------------------------------------------------
    # Bookkeeping

    def _start(
        self,
        kind: str,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> _Run:
        with self._lock:
            parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
            root = parent.root if parent is not None else (parent_run_id or run_id)
            context: dict[str, str] = dict(parent.context) if parent is not None else {}
            for key, names in (
                ("conversation_id", ("conversation_id", "thread_id")),
                ("session_id", ("session_id",)),
                ("user", ("user_id",)),
            ):
                for source in names:
                    value = clip((metadata or {}).get(source))
                    if value and key not in context:
                        context[key] = value
            if parent is None:
                context.setdefault("agent", clip(name) or "")
            run = _Run(kind, clip(name), root, parent_run_id, context)
            self._runs[run_id] = run
            return run

    def _finish(self, run_id: UUID) -> _Run | None:
        with self._lock:
            return self._runs.pop(run_id, None)

    def _emit(self, run: _Run | None, run_id: UUID, action: str, event: str, **fields: Any) -> None:
        context = run.context if run is not None else {}
        details = {"event": event, "name": run.name if run is not None else None, **fields.pop("details", {})}
        trace = None
        if run is not None:
            # The last 16 hex digits: LangChain's run ids are UUIDv7, whose first ones are a clock.
            trace = trace_context(run.root.hex, run_id.hex[-16:], run.parent.hex[-16:] if run.parent else None)
        self.recorder.emit(
            action,
            agent=context.get("agent") or None,
            conversation_id=context.get("conversation_id"),
            session_id=context.get("session_id"),
            user=context.get("user"),
            trace=trace,
            details=details,
            **fields,
        )

    # ----------------------------------------------------------------------------------
    # Chains: the root run is the agent's turn

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with self.recorder.guard("on_chain_start"):
            run = self._start("chain", run_id, parent_run_id, kwargs.get("name") or _name(serialized), metadata)
            if parent_run_id is None:
                self._emit(
                    run,
                    run_id,
                    "user_message_received",
                    "on_chain_start",
                    by="user",
                    gen_ai={"gen_ai.operation.name": "invoke_agent"},
                    payloads={"prompt": text_payload(inputs)},
                )

    def on_chain_end(
        self, outputs: dict[str, Any] | Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        with self.recorder.guard("on_chain_end"):
            run = self._finish(run_id)
            if run is not None and run.parent is None:
                self._emit(
                    run,
                    run_id,
                    "agent_response_generated",
                    "on_chain_end",
                    gen_ai={"gen_ai.operation.name": "invoke_agent"},
                    payloads={"response": text_payload(outputs)},
                )
                self._forget_tree(run_id)

    def on_chain_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        with self.recorder.guard("on_chain_error"):
            run = self._finish(run_id)
            if run is not None and run.parent is None:
                self._emit(
                    run,
                    run_id,
                    "error",
                    "on_chain_error",
                    gen_ai={"gen_ai.operation.name": "invoke_agent"},
                    payloads={"error": error_payload(error)},
                    details={"error_type": type(error).__name__},
                )
                self._forget_tree(run_id)

    def _forget_tree(self, root: UUID) -> None:
        with self._lock:
            for key in [k for k, r in self._runs.items() if r.root == root]:
                del self._runs[key]

    # ----------------------------------------------------------------------------------
    # Model calls: one record when the call ends, with the prompt and the response

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with self.recorder.guard("on_chat_model_start"):
            self._model_start("chat", serialized, messages[0] if len(messages) == 1 else messages, run_id,
                              parent_run_id, metadata, kwargs)  # fmt: skip

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with self.recorder.guard("on_llm_start"):
            prompt = prompts[0] if len(prompts) == 1 else prompts
            self._model_start("text_completion", serialized, prompt, run_id, parent_run_id, metadata, kwargs)

    def _model_start(
        self,
        operation: str,
        serialized: dict[str, Any] | None,
        prompt: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        run = self._start("llm", run_id, parent_run_id, kwargs.get("name") or _name(serialized), metadata)
        params = kwargs.get("invocation_params") or {}
        run.prompt = prompt
        run.operation = operation
        run.model = clip(params.get("model") or params.get("model_name") or (metadata or {}).get("ls_model_name"))
        run.provider = clip((metadata or {}).get("ls_provider"))

    def on_llm_end(self, response: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        with self.recorder.guard("on_llm_end"):
            run = self._finish(run_id)
            generations = [g for batch in getattr(response, "generations", None) or [] for g in batch]
            outputs = [getattr(g, "message", None) or getattr(g, "text", None) for g in generations]
            llm_output = getattr(response, "llm_output", None) or {}
            message = outputs[0] if len(outputs) == 1 else None
            usage = _usage(llm_output, message)
            response_meta = getattr(message, "response_metadata", None) or {}
            self._emit(
                run,
                run_id,
                "agent_response_generated",
                "on_llm_end",
                gen_ai={
                    "gen_ai.operation.name": run.operation if run else "chat",
                    "gen_ai.provider.name": run.provider if run else None,
                    "gen_ai.request.model": run.model if run else None,
                    "gen_ai.response.model": llm_output.get("model_name")
                    or response_meta.get("model_name")
                    or response_meta.get("model"),
                    "gen_ai.response.id": response_meta.get("id") or llm_output.get("id"),
                    "gen_ai.usage.input_tokens": usage[0],
                    "gen_ai.usage.output_tokens": usage[1],
                },
                payloads={
                    "prompt": text_payload(run.prompt) if run is not None and run.prompt is not None else None,
                    "response": text_payload(outputs[0] if len(outputs) == 1 else outputs),
                },
                details={"tool_calls": len(getattr(message, "tool_calls", None) or []) or None},
            )

    def on_llm_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        with self.recorder.guard("on_llm_error"):
            run = self._finish(run_id)
            self._emit(
                run,
                run_id,
                "error",
                "on_llm_error",
                gen_ai={
                    "gen_ai.operation.name": run.operation if run else "chat",
                    "gen_ai.provider.name": run.provider if run else None,
                    "gen_ai.request.model": run.model if run else None,
                },
                payloads={
                    "prompt": text_payload(run.prompt) if run is not None and run.prompt is not None else None,
                    "error": error_payload(error),
                },
                details={"error_type": type(error).__name__},
            )

    # ----------------------------------------------------------------------------------
    # Tools: a record when the call starts (before its effect), another when it ends

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with self.recorder.guard("on_tool_start"):
            run = self._start("tool", run_id, parent_run_id, _name(serialized) or kwargs.get("name"), metadata)
            run.tool_call_id = clip(kwargs.get("tool_call_id"))
            self._emit(
                run,
                run_id,
                "tool_invoked",
                "on_tool_start",
                gen_ai=self._tool_attributes(run),
                payloads={"tool_arguments": json_payload(inputs) if inputs is not None else input_str},
            )

    def on_tool_end(self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        with self.recorder.guard("on_tool_end"):
            run = self._finish(run_id)
            content = output
            status = None
            if hasattr(output, "tool_call_id") and hasattr(output, "content"):  # a ToolMessage
                content, status = output.content, getattr(output, "status", None)
            self._emit(
                run,
                run_id,
                "tool_result",
                "on_tool_end",
                gen_ai=self._tool_attributes(run),
                payloads={"tool_result": text_payload(content)},
                details={"status": status},
            )

    def on_tool_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        with self.recorder.guard("on_tool_error"):
            run = self._finish(run_id)
            self._emit(
                run,
                run_id,
                "error",
                "on_tool_error",
                gen_ai=self._tool_attributes(run),
                payloads={"error": error_payload(error)},
                details={"error_type": type(error).__name__},
            )

    @staticmethod
    def _tool_attributes(run: _Run | None) -> dict[str, Any]:
        return {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": run.name if run else None,
            "gen_ai.tool.call.id": run.tool_call_id if run else None,
        }

    # ----------------------------------------------------------------------------------
    # Agents (AgentExecutor-style agents)

    def on_agent_action(self, action: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        with self.recorder.guard("on_agent_action"):
            with self._lock:
                run = self._runs.get(run_id)
            log = getattr(action, "log", None)
            tool_input = getattr(action, "tool_input", None)
            self._emit(
                run,
                run_id,
                "agent_response_generated",
                "on_agent_action",
                gen_ai={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.tool.name": getattr(action, "tool", None),
                    "gen_ai.tool.call.id": getattr(action, "tool_call_id", None),
                },
                payloads={
                    "response": log or None,
                    "tool_arguments": text_payload(tool_input) if tool_input is not None else None,
                },
            )

    def on_agent_finish(self, finish: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        with self.recorder.guard("on_agent_finish"):
            with self._lock:
                run = self._runs.get(run_id)
            values = getattr(finish, "return_values", None)
            self._emit(
                run,
                run_id,
                "agent_response_generated",
                "on_agent_finish",
                gen_ai={"gen_ai.operation.name": "invoke_agent"},
                payloads={"response": text_payload(values if values is not None else getattr(finish, "log", ""))},
            )

    # ----------------------------------------------------------------------------------
    # Retrievers

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        with self.recorder.guard("on_retriever_start"):
            run = self._start("retriever", run_id, parent_run_id, kwargs.get("name") or _name(serialized), metadata)
            run.prompt = query

    def on_retriever_end(
        self, documents: Sequence[Any], *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        with self.recorder.guard("on_retriever_end"):
            run = self._finish(run_id)
            self._emit(
                run,
                run_id,
                "data_accessed",
                "on_retriever_end",
                gen_ai={"gen_ai.operation.name": "retrieval"},
                resource={"type": "retriever", "id": (run.name if run else None) or "retriever"},
                payloads={
                    "query": text_payload(run.prompt) if run is not None and run.prompt is not None else None,
                    "documents": json_payload(list(documents)),
                },
                details={"documents": len(documents)},
            )

    def on_retriever_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        with self.recorder.guard("on_retriever_error"):
            run = self._finish(run_id)
            self._emit(
                run,
                run_id,
                "error",
                "on_retriever_error",
                gen_ai={"gen_ai.operation.name": "retrieval"},
                payloads={
                    "query": text_payload(run.prompt) if run is not None and run.prompt is not None else None,
                    "error": error_payload(error),
                },
                details={"error_type": type(error).__name__},
            )


def _name(serialized: Mapping[str, Any] | None) -> str | None:
    if not serialized:
        return None
    name = serialized.get("name")
    if name:
        return str(name)
    ident = serialized.get("id")
    return str(ident[-1]) if isinstance(ident, list) and ident else None


def _usage(llm_output: Mapping[str, Any], message: Any) -> tuple[int | None, int | None]:
    meta = getattr(message, "usage_metadata", None)
    if isinstance(meta, Mapping) and ("input_tokens" in meta or "output_tokens" in meta):
        return meta.get("input_tokens"), meta.get("output_tokens")
    usage = llm_output.get("token_usage") or llm_output.get("usage") or {}
    if isinstance(usage, Mapping):
        return (
            usage.get("prompt_tokens", usage.get("input_tokens")),
            usage.get("completion_tokens", usage.get("output_tokens")),
        )
    return None, None
