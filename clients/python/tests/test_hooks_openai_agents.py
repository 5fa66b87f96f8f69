"""The OpenAI Agents SDK hook, driven by the SDK's own Runner with tracing on and only our
processor registered: fake models built on the SDK's ScriptedModel (its testing utility) report
their calls as the SDK's chat-completions model (generation spans) and responses model
(response spans) do; a triage agent with an input guardrail hands off to a specialist that
calls one tool. No network. The records are read back from the real server, proven, in order,
chained, with their payloads committed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

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

require("agents")

from agents import (  # noqa: E402
    Agent,
    GuardrailFunctionOutput,
    RunConfig,
    Runner,
    function_tool,
    input_guardrail,
    set_trace_processors,
    set_tracing_disabled,
)
from agents.models.interface import Model  # noqa: E402
from agents.testing import ScriptedModel, assistant_message, function_call  # noqa: E402
from agents.tracing import generation_span, response_span  # noqa: E402
from openai.types.responses import Response  # noqa: E402

from veritrail.hooks import AGENT_HANDOFF, AGENT_INVOKED  # noqa: E402
from veritrail.hooks.openai_agents import VeritrailTracingProcessor  # noqa: E402

SECRET = "SECRET-CHART-9047"


class ChatStyleModel(Model):
    """A scripted model that traces its calls as the SDK's chat-completions model does: a
    generation span with the model, the input and output messages and the usage."""

    def __init__(self, steps: list[Any]) -> None:
        self.scripted = ScriptedModel(steps)

    async def get_response(  # type: ignore[override]
        self, system_instructions: str | None, input: Any, model_settings: Any, tools: Any, output_schema: Any,
        handoffs: Any, tracing: Any, **kwargs: Any,
    ) -> Any:  # fmt: skip
        with generation_span(model="fake-chat", disabled=tracing.is_disabled()) as span:
            response = await self.scripted.get_response(
                system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **kwargs
            )
            if tracing.include_data():
                messages = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
                span.span_data.input = [{"role": "system", "content": system_instructions}, *messages]
                span.span_data.output = [item.model_dump() for item in response.output]
            span.span_data.usage = {"input_tokens": 21, "output_tokens": 8}
            return response

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


class ResponsesStyleModel(ChatStyleModel):
    """... and as the SDK's responses model does: a response span with the input and the
    Response."""

    async def get_response(  # type: ignore[override]
        self, system_instructions: str | None, input: Any, model_settings: Any, tools: Any, output_schema: Any,
        handoffs: Any, tracing: Any, **kwargs: Any,
    ) -> Any:  # fmt: skip
        with response_span(disabled=tracing.is_disabled()) as span:
            result = await self.scripted.get_response(
                system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **kwargs
            )
            span.span_data.usage = {"input_tokens": 34, "output_tokens": 5}
            if tracing.include_data():
                span.span_data.input = input
                span.span_data.response = Response(
                    id=result.response_id, created_at=0, model="fake-responses", object="response",
                    output=result.output, tool_choice="auto", tools=[], top_p=None,
                    parallel_tool_calls=False, status="completed",
                )  # fmt: skip
            return result


@function_tool
def read_chart(patient: str) -> str:
    """Reads a patient's chart."""
    return f"{patient}: stable. {SECRET}"


@input_guardrail(run_in_parallel=False)
async def no_prompt_injection(ctx: Any, agent: Any, input: Any) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info={"checked": True}, tripwire_triggered=False)


@pytest.fixture
def processors() -> Iterator[list[Any]]:
    """Tracing on, with only the processors the test registers (no exporter, no network)."""
    registered: list[Any] = []
    set_tracing_disabled(False)
    yield registered
    set_trace_processors([])


def agents_for_one_tool_call() -> Agent[Any]:
    specialist: Agent[Any] = Agent(
        name="specialist",
        instructions="Answer from the chart.",
        tools=[read_chart],
        model=ResponsesStyleModel(
            [
                [function_call("read_chart", {"patient": "P-0042"}, call_id="call_1")],
                [assistant_message("The patient is stable.")],
            ]
        ),
    )
    return Agent(
        name="triage",
        instructions="Route to the specialist.",
        handoffs=[specialist],
        input_guardrails=[no_prompt_injection],
        model=ChatStyleModel([[function_call("transfer_to_specialist", {}, call_id="call_0")]]),
    )


def test_agent_run_with_handoff_guardrail_and_one_tool_call(server: Server, processors: list[Any]) -> None:
    cid = conversation()
    client = client_for(server)
    processor = VeritrailTracingProcessor(client, user="alice@example.com", session_id="s-4")
    set_trace_processors([processor])

    result = asyncio.run(
        Runner.run(
            agents_for_one_tool_call(),
            f"How is P-0042? {SECRET}",
            run_config=RunConfig(group_id=cid, workflow_name="clinic"),
        )
    )
    assert result.final_output == "The patient is stable."
    processor.force_flush()
    assert processor.recorder.error_count == 0

    records = records_of(server, client, cid)
    assert actions(records) == [
        AGENT_INVOKED,  # triage
        "policy_decision",  # its input guardrail
        "agent_response_generated",  # triage's model call: hand off
        AGENT_HANDOFF,
        AGENT_INVOKED,  # specialist
        "agent_response_generated",  # specialist's model call: the tool
        "tool_invoked",
        "tool_result",
        "agent_response_generated",  # the answer
    ]
    check_chain(records)
    check_payloads(client, records, secrets=[SECRET, "P-0042", "stable"])
    trace_ids = {r["trace"]["trace_id"] for _, r in records}
    assert len(trace_ids) == 1
    for _, record in records:
        assert record["conversation_id"] == cid and record["session_id"] == "s-4"
        assert record["actor"] == {"id": "alice@example.com", "type": "user"}
        assert record["details"]["hook"] == "openai-agents" and record["details"]["workflow"] == "clinic"
    names = [r["gen_ai"]["gen_ai.agent.name"] for _, r in records]
    assert names == ["triage"] * 4 + ["specialist"] * 5

    (_, triage), (_, guard), (i2, chat), (_, handoff), _, (i5, call), (i6, invoked), (i7, result_), (i8, final) = (
        records
    )
    assert triage["gen_ai"]["gen_ai.operation.name"] == "invoke_agent"
    assert triage["details"]["output_type"] == "str"
    assert guard["details"]["guardrail"] == "no_prompt_injection" and guard["details"]["triggered"] is False
    assert chat["gen_ai"]["gen_ai.request.model"] == "fake-chat"
    assert chat["gen_ai"]["gen_ai.usage.input_tokens"] == 21 and chat["gen_ai"]["gen_ai.usage.output_tokens"] == 8
    assert payload_json(client, i2, "prompt")[1] == {"role": "user", "content": f"How is P-0042? {SECRET}"}
    assert payload_json(client, i2, "response")[0]["name"] == "transfer_to_specialist"
    assert handoff["details"]["from_agent"] == "triage" and handoff["details"]["to_agent"] == "specialist"

    assert call["gen_ai"]["gen_ai.provider.name"] == "openai"
    assert call["gen_ai"]["gen_ai.response.model"] == "fake-responses"
    assert call["gen_ai"]["gen_ai.usage.input_tokens"] == 34
    assert payload_json(client, i5, "response")[0]["arguments"] == '{"patient":"P-0042"}'
    assert invoked["gen_ai"]["gen_ai.tool.name"] == "read_chart" == result_["gen_ai"]["gen_ai.tool.name"]
    assert invoked["payloads"]["tool_arguments"]["media_type"] == "application/json"
    assert payload(client, i6, "tool_arguments") == '{"patient":"P-0042"}'
    assert payload(client, i7, "tool_result") == f"P-0042: stable. {SECRET}"
    assert invoked["timestamp"] <= result_["timestamp"]
    assert payload_json(client, i8, "response")[0]["content"][0]["text"] == "The patient is stable."
    client.close()


def test_tool_error_synchronously_and_trace_metadata(server: Server, processors: list[Any]) -> None:
    """A failing tool is an error record; the conversation and user come from the trace
    (group_id, metadata) when the processor has none; synchronous delivery."""

    @function_tool
    def broken(patient: str) -> str:
        """Always fails."""
        raise RuntimeError(f"chart service down for {patient}")

    cid = conversation()
    client = client_for(server)
    processor = VeritrailTracingProcessor(client, mode="sync", wait=True)
    set_trace_processors([processor])
    agent: Agent[Any] = Agent(
        name="solo",
        tools=[broken],
        model=ChatStyleModel(
            [[function_call("broken", {"patient": "P-9"}, call_id="call_2")], [assistant_message("Sorry.")]]
        ),
    )
    config = RunConfig(group_id=cid, trace_metadata={"user_id": "bob", "session_id": "s-5"})
    assert asyncio.run(Runner.run(agent, "chart P-9", run_config=config)).final_output == "Sorry."
    assert processor.recorder.error_count == 0

    records = records_of(server, client, cid)
    assert actions(records) == [AGENT_INVOKED, "agent_response_generated", "tool_invoked", "error",
                                "agent_response_generated"]  # fmt: skip
    check_chain(records)
    check_payloads(client, records, secrets=["P-9", "chart service"])
    for _, record in records:
        assert record["actor"] == {"id": "bob", "type": "user"} and record["session_id"] == "s-5"
    i, error = records[3]
    assert error["gen_ai"]["gen_ai.tool.name"] == "broken" and error["details"]["span_type"] == "function"
    # The SDK redacts a tool's error in its spans; the model is told the tool failed.
    assert payload_json(client, i, "error")["data"]["tool_name"] == "broken"
    assert payload(client, i, "tool_result").startswith("An error occurred while running the tool")
    client.close()
