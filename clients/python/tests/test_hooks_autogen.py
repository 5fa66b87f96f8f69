"""The AutoGen hook, driven by autogen-core's SingleThreadedAgentRuntime: an assistant agent
whose replayed model (autogen-ext's ReplayChatCompletionClient) asks for one tool call, run by
autogen-core's ToolAgent, then runs code through a real local code executor; the records are
read back from the real server, proven, in order, chained, with their payloads committed."""

from __future__ import annotations

import asyncio
import tempfile
import warnings
from dataclasses import dataclass

import pytest
from conftest import Server
from hookcheck import (
    actions,
    check_chain,
    check_payloads,
    client_for,
    conversation,
    payload,
    payload_json,
    records_of,
    require,
)

require("autogen_core")
require("autogen_ext")

from autogen_core import (  # noqa: E402
    AgentId,
    CancellationToken,
    DefaultTopicId,
    FunctionCall,
    MessageContext,
    RoutedAgent,
    SingleThreadedAgentRuntime,
    default_subscription,
    message_handler,
)
from autogen_core.code_executor import CodeBlock  # noqa: E402
from autogen_core.models import CreateResult, RequestUsage, UserMessage  # noqa: E402
from autogen_core.tool_agent import ToolAgent, tool_agent_caller_loop  # noqa: E402
from autogen_core.tools import FunctionTool  # noqa: E402
from autogen_ext.code_executors.local import LocalCommandLineCodeExecutor  # noqa: E402
from autogen_ext.models.replay import ReplayChatCompletionClient  # noqa: E402

from veritrail.hooks import AGENT_INVOKED, HookError  # noqa: E402
from veritrail.hooks.autogen import VeritrailCodeExecutor, VeritrailInterventionHandler  # noqa: E402

SECRET = "SECRET-LAB-5521"


@dataclass
class Ask:
    content: str


@dataclass
class Answer:
    content: str


def lab_result(patient: str) -> str:
    """Reads a patient's latest lab result."""
    return f"{patient}: HbA1c 5.4% {SECRET}"


class Assistant(RoutedAgent):
    def __init__(self, model: ReplayChatCompletionClient, tools: list[FunctionTool], executor: VeritrailCodeExecutor):
        super().__init__("an assistant with a lab tool and a code executor")
        self.model, self.tools, self.executor = model, tools, executor

    @message_handler
    async def handle(self, message: Ask, ctx: MessageContext) -> Answer:
        messages = await tool_agent_caller_loop(
            self, AgentId("tools", self.id.key), self.model, [UserMessage(content=message.content, source="user")],
            self.tools, ctx.cancellation_token,
        )  # fmt: skip
        code = "print(round(5.4 * 1.1, 2))"
        result = await self.executor.execute_code_blocks([CodeBlock(code=code, language="python")], CancellationToken())
        return Answer(f"{messages[-1].content} ({result.output.strip()})")


def replayed_model() -> ReplayChatCompletionClient:
    call = FunctionCall(id="call_1", name="lab_result", arguments='{"patient": "P-0042"}')
    return ReplayChatCompletionClient(
        [
            CreateResult(finish_reason="function_calls", content=[call], usage=RequestUsage(5, 3), cached=False),
            "Your HbA1c is normal.",
        ]
    )


async def run_assistant(hook: VeritrailInterventionHandler, question: str) -> Answer:
    runtime = SingleThreadedAgentRuntime(intervention_handlers=[hook])
    tools = [FunctionTool(lab_result, description="Reads a patient's latest lab result")]
    with tempfile.TemporaryDirectory() as work_dir, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LocalCommandLineCodeExecutor warns it is not a sandbox
        executor = VeritrailCodeExecutor(LocalCommandLineCodeExecutor(work_dir=work_dir, timeout=30), hook)
        await ToolAgent.register(runtime, "tools", lambda: ToolAgent("the lab tool", tools))
        await Assistant.register(runtime, "assistant", lambda: Assistant(replayed_model(), tools, executor))
        runtime.start()
        try:
            answer = await runtime.send_message(Ask(question), AgentId("assistant", "default"))
        except BaseException:
            # Not stop_when_idle(): autogen-core does not mark a message whose intervention
            # handler raised as done in its queue, so the runtime never becomes idle.
            await runtime.stop()
            raise
        await runtime.stop_when_idle()
    return answer  # type: ignore[no-any-return]


def test_agent_run_with_one_tool_call_and_code(server: Server) -> None:
    cid = conversation()
    client = client_for(server)
    hook = VeritrailInterventionHandler(client, user="alice@example.com", conversation_id=cid, session_id="s-9")

    answer = asyncio.run(run_assistant(hook, f"Is my HbA1c fine? {SECRET}"))
    assert answer == Answer("Your HbA1c is normal. (5.94)")
    hook.flush(timeout=30)
    assert hook.recorder.error_count == 0

    records = records_of(server, client, cid)
    assert actions(records) == [
        "user_message_received",
        "tool_invoked",
        "tool_result",
        "code_executed",
        "agent_response_generated",
    ]
    check_chain(records)
    check_payloads(client, records, secrets=[SECRET, "P-0042", "HbA1c", "print("])
    (i0, asked), (i1, invoked), (i2, result), (i3, code), (i4, answered) = records
    for _, record in records:
        assert record["conversation_id"] == cid and record["session_id"] == "s-9"
        assert record["actor"] == {"id": "alice@example.com", "type": "user"}
        assert record["details"]["hook"] == "autogen"
        assert record["agent"] == {"name": "assistant"}

    assert asked["gen_ai"] == {
        "gen_ai.agent.name": "assistant",
        "gen_ai.agent.id": "assistant/default",
        "gen_ai.operation.name": "invoke_agent",
    }
    assert payload_json(client, i0, "prompt") == {"content": f"Is my HbA1c fine? {SECRET}"}

    for record in (invoked, result):
        assert record["gen_ai"]["gen_ai.operation.name"] == "execute_tool"
        assert record["gen_ai"]["gen_ai.tool.name"] == "lab_result"
        assert record["gen_ai"]["gen_ai.tool.call.id"] == "call_1"
    assert invoked["details"]["recipient"] == "tools/default"
    assert invoked["payloads"]["tool_arguments"]["media_type"] == "application/json"
    assert payload(client, i1, "tool_arguments") == '{"patient": "P-0042"}'  # byte for byte
    assert payload(client, i2, "tool_result") == f"P-0042: HbA1c 5.4% {SECRET}"
    assert result["details"]["is_error"] is False

    assert code["payloads"]["code"]["media_type"] == "text/x-python"
    assert payload(client, i3, "code") == "print(round(5.4 * 1.1, 2))"
    assert payload(client, i3, "output").strip() == "5.94"
    assert code["details"]["exit_code"] == 0 and code["details"]["executor"] == "LocalCommandLineCodeExecutor"

    assert answered["gen_ai"]["gen_ai.agent.id"] == "assistant/default"
    assert payload_json(client, i4, "response") == {"content": "Your HbA1c is normal. (5.94)"}
    client.close()


@default_subscription
class Relay(RoutedAgent):
    """Published questions go to the summarizer (agent to agent); its answer is published."""

    def __init__(self) -> None:
        super().__init__("relay")

    @message_handler
    async def on_ask(self, message: Ask, ctx: MessageContext) -> None:
        summary = await self.send_message(message, AgentId("summarizer", "default"))
        await self.publish_message(Answer(summary.content), DefaultTopicId())

    @message_handler
    async def on_answer(self, message: Answer, ctx: MessageContext) -> None:
        pass


class Summarizer(RoutedAgent):
    def __init__(self) -> None:
        super().__init__("summarizer")

    @message_handler
    async def on_ask(self, message: Ask, ctx: MessageContext) -> Answer:
        return Answer(message.content.upper())


async def run_relay(hook: VeritrailInterventionHandler) -> None:
    runtime = SingleThreadedAgentRuntime(intervention_handlers=[hook])
    await Relay.register(runtime, "relay", Relay)
    await Summarizer.register(runtime, "summarizer", Summarizer)
    runtime.start()
    await runtime.publish_message(Ask("summarize"), DefaultTopicId())
    await runtime.stop_when_idle()


def test_publish_and_agent_to_agent_synchronously(server: Server) -> None:
    cid = conversation()
    client = client_for(server)
    hook = VeritrailInterventionHandler(client, conversation_id=cid, mode="sync", attribute_to="agent")
    asyncio.run(run_relay(hook))
    assert hook.recorder.error_count == 0

    records = records_of(server, client, cid)
    assert actions(records) == [
        "user_message_received",  # published by the application
        AGENT_INVOKED,  # relay -> summarizer
        "agent_response_generated",  # summarizer's answer
        "agent_response_generated",  # published by relay
    ]
    check_chain(records)
    check_payloads(client, records)
    (i0, published), (i1, invoked), (i2, answered), (i3, relayed) = records
    assert published["actor"] == {"id": "unknown", "type": "user"}  # no user principal given
    assert published["details"]["topic"] == "default/default"
    assert invoked["actor"] == {"id": "summarizer", "type": "agent"}
    assert invoked["details"]["sender"] == "relay/default"
    assert payload_json(client, i1, "prompt") == {"content": "summarize"}
    assert answered["actor"] == {"id": "summarizer", "type": "agent"}
    assert payload_json(client, i2, "response") == {"content": "SUMMARIZE"}
    assert relayed["actor"] == {"id": "relay", "type": "agent"}
    assert payload_json(client, i3, "response") == {"content": "SUMMARIZE"}
    client.close()


def test_strict_fails_the_message_lenient_does_not(server: Server) -> None:
    dead = type(client_for(server))("http://127.0.0.1:9", server.token, server.log_key, retries=0)

    lenient = VeritrailInterventionHandler(dead, mode="sync")
    answer = asyncio.run(run_assistant(lenient, "lenient"))
    assert answer.content.startswith("Your HbA1c is normal.")
    assert lenient.recorder.error_count == 5

    strict = VeritrailInterventionHandler(dead, mode="sync", strict=True)
    with pytest.raises(HookError):
        asyncio.run(run_assistant(strict, "strict"))
