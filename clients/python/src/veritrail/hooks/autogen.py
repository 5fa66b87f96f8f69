"""AutoGen (``autogen-core``): an intervention handler that records the messages of an agent
runtime, and a code executor wrapper that records code execution.

::

    from autogen_core import SingleThreadedAgentRuntime
    from veritrail.hooks.autogen import VeritrailCodeExecutor, VeritrailInterventionHandler

    hook = VeritrailInterventionHandler(client, user="alice@example.com", conversation_id="c-42")
    runtime = SingleThreadedAgentRuntime(intervention_handlers=[hook])
    executor = VeritrailCodeExecutor(LocalCommandLineCodeExecutor(work_dir="coding"), hook)

What it records (every record: the ``conversation_id``, ``session_id``, the user principal,
``agent.name`` and ``gen_ai.agent.name`` (the agent's type), ``gen_ai.agent.id``
(``type/key``), and the OpenTelemetry ``trace`` when a span is current):

=====================================  ==================================  ================
message                                action                              payloads
=====================================  ==================================  ================
``FunctionCall`` sent (to a tool       ``tool_invoked`` (execute_tool,     ``tool_arguments``
agent)                                 tool name and call id)
``FunctionExecutionResult`` response   ``tool_result``                     ``tool_result``
sent by the application (no sender)    ``user_message_received``           ``prompt``
                                       (invoke_agent)
sent by an agent to an agent           ``x-veritrail-sdk.agent_invoked``   ``prompt``
                                       (invoke_agent)
any other response                     ``agent_response_generated``        ``response``
published by the application           ``user_message_received``           ``prompt``
published by an agent                  ``agent_response_generated``        ``response``
code run by ``VeritrailCodeExecutor``  ``code_executed`` (or ``error``)    ``code``, ``output``
=====================================  ==================================  ================

Messages are recorded as the runtime submits them, before they are delivered, so a message
an agent never answers is in the log too. A handler that raises (a tool that fails) does not
answer through the runtime's response path, so AutoGen shows no ``FunctionExecutionResult``
to intervention handlers for it: the ``tool_invoked`` record then stands alone (a tool
agent's ``tool_agent_caller_loop`` turns it into an error result the model sees).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

try:
    from autogen_core import (
        AgentId,
        CancellationToken,
        DefaultInterventionHandler,
        FunctionCall,
        MessageContext,
        MessageHandlerContext,
    )
    from autogen_core.code_executor import CodeBlock, CodeExecutor, CodeResult
    from autogen_core.models import FunctionExecutionResult
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("veritrail.hooks.autogen needs autogen-core: pip install 'veritrail[autogen]'") from e

from ..client import Client
from ..records import Payload
from ._core import AGENT_INVOKED, HookRecorder, clip, error_payload, json_payload, json_text_payload, text_payload

__all__ = ["VeritrailCodeExecutor", "VeritrailInterventionHandler"]

_CODE_MEDIA_TYPES = {
    "python": "text/x-python",
    "py": "text/x-python",
    "sh": "text/x-shellscript",
    "bash": "text/x-shellscript",
    "shell": "text/x-shellscript",
    "pwsh": "text/x-powershell",
    "powershell": "text/x-powershell",
    "ps1": "text/x-powershell",
    "javascript": "text/javascript",
    "js": "text/javascript",
}


def _otel_trace() -> dict[str, str] | None:
    """The current OpenTelemetry span's context, if there is a valid one."""
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def _agent(agent_id: AgentId | None) -> str | None:
    return None if agent_id is None else clip(agent_id.type)


class VeritrailInterventionHandler(DefaultInterventionHandler):
    """Records what passes through an AutoGen agent runtime: pass it in
    ``SingleThreadedAgentRuntime(intervention_handlers=[handler])``. Messages are never
    changed or dropped.

    Args:
        client: the :class:`~veritrail.Client` of the log.
        **options: those of :class:`~veritrail.hooks.HookRecorder`: ``user``,
            ``conversation_id``, ``session_id``, ``mode`` (``"background"`` or ``"sync"``:
            synchronous appends run in a worker thread, the runtime waits for each),
            ``strict`` (a failure to record fails the message's delivery), ``on_error``, ...
    """

    def __init__(self, client: Client, **options: Any) -> None:
        self.recorder = HookRecorder(client, framework="autogen", **options)
        self._tools: dict[str, tuple[str | None, AgentId | None]] = {}

    def flush(self, timeout: float | None = None) -> None:
        """Waits until every record so far is in the log (see :meth:`HookRecorder.flush`)."""
        self.recorder.flush(timeout)

    async def _run(self, where: str, record: Callable[[], None]) -> None:
        def guarded() -> None:
            with self.recorder.guard(where):
                record()

        if self.recorder.mode == "sync":
            await asyncio.to_thread(guarded)
        else:
            guarded()

    def _emit(self, action: str, **fields: Any) -> None:
        self.recorder.emit(action, trace=_otel_trace(), **fields)

    # ----------------------------------------------------------------------------------

    async def on_send(self, message: Any, *, message_context: MessageContext, recipient: AgentId) -> Any:
        await self._run("on_send", lambda: self._on_send(message, message_context, recipient))
        return message

    def _on_send(self, message: Any, context: MessageContext, recipient: AgentId) -> None:
        sender = context.sender
        details = {
            "event": "on_send",
            "message_type": type(message).__name__,
            "message_id": context.message_id,
            "sender": str(sender) if sender is not None else None,
            "recipient": str(recipient),
        }
        if isinstance(message, FunctionCall):
            self._tools[message.id] = (message.name, sender)
            self._emit(
                "tool_invoked",
                agent=_agent(sender) or _agent(recipient),
                gen_ai={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": message.name,
                    "gen_ai.tool.call.id": message.id or None,
                    "gen_ai.agent.id": str(sender) if sender is not None else None,
                },
                payloads={"tool_arguments": json_text_payload(message.arguments)},
                details=details,
            )
        elif sender is None:
            self._emit(
                "user_message_received",
                by="user",
                agent=_agent(recipient),
                gen_ai={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": str(recipient)},
                payloads={"prompt": text_payload(message)},
                details=details,
            )
        else:
            self._emit(
                AGENT_INVOKED,
                agent=_agent(recipient),
                gen_ai={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": str(recipient)},
                payloads={"prompt": text_payload(message)},
                details=details,
            )

    async def on_publish(self, message: Any, *, message_context: MessageContext) -> Any:
        await self._run("on_publish", lambda: self._on_publish(message, message_context))
        return message

    def _on_publish(self, message: Any, context: MessageContext) -> None:
        sender = context.sender
        topic = context.topic_id
        details = {
            "event": "on_publish",
            "message_type": type(message).__name__,
            "message_id": context.message_id,
            "sender": str(sender) if sender is not None else None,
            "topic": f"{topic.type}/{topic.source}" if topic is not None else None,
        }
        if sender is None:
            self._emit(
                "user_message_received",
                by="user",
                gen_ai={"gen_ai.operation.name": "invoke_agent"},
                payloads={"prompt": text_payload(message)},
                details=details,
            )
        else:
            self._emit(
                "agent_response_generated",
                agent=_agent(sender),
                gen_ai={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": str(sender)},
                payloads={"response": text_payload(message)},
                details=details,
            )

    async def on_response(self, message: Any, *, sender: AgentId, recipient: AgentId | None) -> Any:
        await self._run("on_response", lambda: self._on_response(message, sender, recipient))
        return message

    def _on_response(self, message: Any, sender: AgentId, recipient: AgentId | None) -> None:
        details = {
            "event": "on_response",
            "message_type": type(message).__name__,
            "sender": str(sender),
            "recipient": str(recipient) if recipient is not None else None,
        }
        if isinstance(message, FunctionExecutionResult):
            name, caller = self._tools.pop(message.call_id, (None, recipient))
            caller = caller or recipient
            self._emit(
                "tool_result",
                agent=_agent(caller) or _agent(sender),
                gen_ai={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": getattr(message, "name", None) or name,
                    "gen_ai.tool.call.id": message.call_id or None,
                    "gen_ai.agent.id": str(caller) if caller is not None else None,
                },
                payloads={"tool_result": message.content},
                details={**details, "is_error": getattr(message, "is_error", None)},
            )
        else:
            self._emit(
                "agent_response_generated",
                agent=_agent(sender),
                gen_ai={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": str(sender)},
                payloads={"response": text_payload(message)},
                details=details,
            )


class VeritrailCodeExecutor(CodeExecutor):
    """A code executor that records every execution (``code_executed``, with the code and its
    output as payloads; ``error`` when the executor raises) and otherwise is ``executor``.

    Args:
        executor: the executor that runs the code (``LocalCommandLineCodeExecutor``,
            ``DockerCommandLineCodeExecutor``, ...).
        hook: the :class:`VeritrailInterventionHandler` whose options (user, conversation,
            delivery) apply, or a :class:`~veritrail.hooks.HookRecorder`.
        agent_name: the agent the executor works for (default: the hook's ``agent_name``,
            else the agent whose message handler runs the code).
    """

    def __init__(
        self,
        executor: CodeExecutor,
        hook: VeritrailInterventionHandler | HookRecorder,
        agent_name: str | None = None,
    ) -> None:
        self.executor = executor
        self.recorder = hook.recorder if isinstance(hook, VeritrailInterventionHandler) else hook
        self.agent_name = agent_name

    async def execute_code_blocks(
        self, code_blocks: list[CodeBlock], cancellation_token: CancellationToken
    ) -> CodeResult:
        try:
            result = await self.executor.execute_code_blocks(code_blocks, cancellation_token)
        except Exception as e:
            await self._record(code_blocks, None, e)
            raise
        await self._record(code_blocks, result, None)
        return result

    async def _record(self, blocks: list[CodeBlock], result: CodeResult | None, error: BaseException | None) -> None:
        def record() -> None:
            with self.recorder.guard("code_executed"):
                self._emit(blocks, result, error)

        if self.recorder.mode == "sync":
            await asyncio.to_thread(record)
        else:
            record()

    def _emit(self, blocks: list[CodeBlock], result: CodeResult | None, error: BaseException | None) -> None:
        try:
            running: AgentId | None = MessageHandlerContext.agent_id()
        except RuntimeError:
            running = None
        payloads: dict[str, Any] = {"code": code_payload(blocks)}
        details: dict[str, Any] = {
            "event": "execute_code_blocks",
            "executor": type(self.executor).__name__,
            "languages": sorted({b.language for b in blocks}),
            "blocks": len(blocks),
        }
        if result is not None:
            payloads["output"] = result.output
            details["exit_code"] = result.exit_code
            extra = {k: v for k, v in vars(result).items() if k not in ("exit_code", "output")}
            if "code_file" in extra and extra["code_file"] is not None:
                details["code_file"] = str(extra["code_file"])
        if error is not None:
            payloads["error"] = error_payload(error)
            details["error_type"] = type(error).__name__
        self.recorder.emit(
            "error" if error is not None else "code_executed",
            agent=self.agent_name or _agent(running),
            gen_ai={"gen_ai.agent.id": str(running) if running is not None else None},
            payloads=payloads,
            details=details,
            trace=_otel_trace(),
        )

    async def start(self) -> None:
        await self.executor.start()

    async def stop(self) -> None:
        await self.executor.stop()

    async def restart(self) -> None:
        await self.executor.restart()

    def __getattr__(self, name: str) -> Any:
        # Only for what this class lacks: work_dir, timeout, ... of the wrapped executor.
        executor = self.__dict__.get("executor")
        if executor is None:
            raise AttributeError(name)
        return getattr(executor, name)


def code_payload(blocks: list[CodeBlock]) -> Payload:
    """The code of one block with its media type (``text/x-python``, ...), or of several as
    JSON ``[{"language", "code"}]``."""
    if len(blocks) == 1:
        media_type = _CODE_MEDIA_TYPES.get(blocks[0].language.lower(), "text/plain; charset=utf-8")
        return Payload(blocks[0].code, media_type)
    return json_payload([{"language": b.language, "code": b.code} for b in blocks])
