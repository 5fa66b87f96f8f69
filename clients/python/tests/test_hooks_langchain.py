"""The LangChain hook, driven by langchain-core itself: a fake chat model from its testing
utilities asks for one tool call, a real tool runs, the answer comes back; the records are read
back from the real server, proven, in order, chained, with their payloads committed."""

from __future__ import annotations

import asyncio
import json
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

require("langchain_core")

from langchain_core.agents import AgentAction, AgentFinish  # noqa: E402
from langchain_core.callbacks import CallbackManager, CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.runnables import chain  # noqa: E402
from langchain_core.tools import tool  # noqa: E402

from veritrail.hooks import HookError  # noqa: E402
from veritrail.hooks.langchain import VeritrailCallbackHandler  # noqa: E402

SECRET = "SECRET-PATIENT-7731"


@tool
def ehr_read(patient: str) -> str:
    """Reads a patient's record."""
    return f"{patient}: allergies none; {SECRET}"


@tool
def ehr_write(patient: str) -> str:
    """Writes a patient's record (always fails here)."""
    raise ValueError(f"read-only record {patient}")


class Notes(BaseRetriever):
    """A retriever over two fixed notes."""

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [Document(page_content=f"note on {query}", metadata={"n": 1}), Document(page_content="second note")]


def fake_model(*responses: AIMessage) -> FakeMessagesListChatModel:
    return FakeMessagesListChatModel(responses=list(responses))


def tool_calling_agent(model: FakeMessagesListChatModel, tools: dict[str, Any]) -> Any:
    """A small agent loop: the model, every tool it asks for, the model again."""

    @chain
    def agent(question: str) -> str:
        messages: list[Any] = [HumanMessage(question)]
        while True:
            reply = model.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                return str(reply.content)
            for call in reply.tool_calls:
                messages.append(tools[call["name"]].invoke(call))

    return agent


def test_agent_run_with_one_tool_call(server: Server) -> None:
    cid = conversation()
    client = client_for(server)
    handler = VeritrailCallbackHandler(client, user="alice@example.com", conversation_id=cid, session_id="s-1")
    model = fake_model(
        AIMessage("", tool_calls=[{"name": "ehr_read", "args": {"patient": "P-0042"}, "id": "call_1"}]),
        AIMessage("No allergies on file."),
    )
    agent = tool_calling_agent(model, {"ehr_read": ehr_read})

    answer = agent.invoke(f"Any allergies? {SECRET}", config={"callbacks": [handler], "run_name": "triage"})
    assert answer == "No allergies on file."
    handler.flush(timeout=30)
    assert handler.recorder.error_count == 0

    records = records_of(server, client, cid)
    assert actions(records) == [
        "user_message_received",
        "agent_response_generated",
        "tool_invoked",
        "tool_result",
        "agent_response_generated",
        "agent_response_generated",
    ]
    check_chain(records)
    read = check_payloads(client, records, secrets=[SECRET, "P-0042", "No allergies"])
    assert len(read) == 8

    (i0, start), (i1, chat1), (i2, invoked), (i3, result), (i4, chat2), (i5, end) = records
    for _, record in records:
        assert record["conversation_id"] == cid and record["session_id"] == "s-1"
        assert record["actor"] == {"id": "alice@example.com", "type": "user"}
        assert record["agent"] == {"name": "triage"}
        assert record["gen_ai"]["gen_ai.agent.name"] == "triage"
        assert record["details"]["hook"] == "langchain"
        assert record["trace"]["trace_id"] == start["trace"]["trace_id"]
    assert start["gen_ai"]["gen_ai.operation.name"] == "invoke_agent"
    assert payload(client, i0, "prompt") == f"Any allergies? {SECRET}"

    assert chat1["gen_ai"]["gen_ai.operation.name"] == "chat"
    assert chat1["trace"]["parent_span_id"] == start["trace"]["span_id"]
    prompt = payload_json(client, i1, "prompt")
    assert [m["type"] for m in prompt] == ["human"]
    assert payload_json(client, i1, "response")["tool_calls"][0]["args"] == {"patient": "P-0042"}
    assert chat1["payloads"]["response"]["media_type"] == "application/json"

    for record in (invoked, result):
        assert record["gen_ai"]["gen_ai.operation.name"] == "execute_tool"
        assert record["gen_ai"]["gen_ai.tool.name"] == "ehr_read"
        assert record["gen_ai"]["gen_ai.tool.call.id"] == "call_1"
    assert payload_json(client, i2, "tool_arguments") == {"patient": "P-0042"}
    assert payload(client, i3, "tool_result") == f"P-0042: allergies none; {SECRET}"
    assert result["details"]["status"] == "success"

    assert [m["type"] for m in payload_json(client, i4, "prompt")] == ["human", "ai", "tool"]
    assert payload_json(client, i4, "response")["content"] == "No allergies on file."
    assert end["gen_ai"]["gen_ai.operation.name"] == "invoke_agent"
    assert payload(client, i5, "response") == "No allergies on file."
    client.close()


def test_async_run_errors_retriever_and_synchronous_receipts(server: Server) -> None:
    """ainvoke (the callbacks run inline in the event loop), a tool that fails, a retriever,
    and synchronous delivery with receipts: every record is in the log before the run goes on."""
    cid = conversation()
    client = client_for(server)
    handler = VeritrailCallbackHandler(
        client, user={"id": "svc-nightly", "type": "system"}, conversation_id=cid, mode="sync", wait=True,
        attribute_to="agent", agent_name="records-bot",
    )  # fmt: skip
    model = fake_model(
        AIMessage("", tool_calls=[{"name": "ehr_write", "args": {"patient": "P-7"}, "id": "call_9"}]),
        AIMessage("Could not write."),
    )
    notes = Notes()

    @chain
    async def agent(question: str) -> str:
        documents = await notes.ainvoke(question)
        reply = await model.ainvoke([HumanMessage(question), HumanMessage(documents[0].page_content)])
        try:
            await ehr_write.ainvoke(reply.tool_calls[0])
        except ValueError:
            pass
        return str((await model.ainvoke([HumanMessage(question)])).content)

    assert asyncio.run(agent.ainvoke("update P-7", config={"callbacks": [handler]})) == "Could not write."
    assert handler.recorder.error_count == 0

    records = records_of(server, client, cid)
    assert actions(records) == [
        "user_message_received",
        "data_accessed",
        "agent_response_generated",
        "tool_invoked",
        "error",
        "agent_response_generated",
        "agent_response_generated",
    ]
    check_chain(records)
    check_payloads(client, records, secrets=["P-7", "read-only"])
    by_action = {r["action"]: (i, r) for i, r in records}
    assert records[0][1]["actor"] == {"id": "svc-nightly", "type": "system"}
    assert all(r["actor"] == {"id": "records-bot", "type": "agent"} for _, r in records[1:])
    i, accessed = by_action["data_accessed"]
    assert accessed["gen_ai"]["gen_ai.operation.name"] == "retrieval"
    assert accessed["resource"] == {"type": "retriever", "id": "Notes"}
    assert payload(client, i, "query") == "update P-7"
    assert [d["page_content"] for d in payload_json(client, i, "documents")] == ["note on update P-7", "second note"]
    i, error = by_action["error"]
    assert error["gen_ai"]["gen_ai.tool.name"] == "ehr_write" and error["details"]["error_type"] == "ValueError"
    assert payload(client, i, "error") == "ValueError: read-only record P-7"
    client.close()


def test_agent_action_and_finish(server: Server) -> None:
    """AgentExecutor-style events, through langchain-core's own callback manager."""
    cid = conversation()
    client = client_for(server)
    handler = VeritrailCallbackHandler(client, user="bob", conversation_id=cid)
    manager = CallbackManager(handlers=[handler], inheritable_handlers=[handler])
    run = manager.on_chain_start({"name": "AgentExecutor"}, {"input": "is P-1 ok?"})
    run.on_agent_action(AgentAction(tool="ehr_read", tool_input={"patient": "P-1"}, log="Look up P-1."))
    tool_run = run.get_child().on_tool_start({"name": "ehr_read"}, "{'patient': 'P-1'}", inputs={"patient": "P-1"})
    tool_run.on_tool_end("P-1 is ok")
    run.on_agent_finish(AgentFinish(return_values={"output": "P-1 is ok."}, log="Final answer"))
    run.on_chain_end({"output": "P-1 is ok."})
    handler.flush(timeout=30)

    records = records_of(server, client, cid)
    assert actions(records) == [
        "user_message_received",
        "agent_response_generated",
        "tool_invoked",
        "tool_result",
        "agent_response_generated",
        "agent_response_generated",
    ]
    check_chain(records)
    check_payloads(client, records)
    (i0, _), (i1, action), _, _, (i4, finish), (i5, _) = records
    assert json.loads(payload(client, i0, "prompt")) == {"input": "is P-1 ok?"}
    assert action["details"]["event"] == "on_agent_action" and action["gen_ai"]["gen_ai.tool.name"] == "ehr_read"
    assert payload(client, i1, "response") == "Look up P-1."
    assert payload_json(client, i1, "tool_arguments") == {"patient": "P-1"}
    assert finish["details"]["event"] == "on_agent_finish"
    assert payload_json(client, i4, "response") == {"output": "P-1 is ok."}
    assert payload_json(client, i5, "response") == {"output": "P-1 is ok."}
    client.close()


def test_a_failing_log_does_not_stop_the_run_unless_strict(server: Server) -> None:
    dead = client_for(server)
    dead = type(dead)("http://127.0.0.1:9", server.token, server.log_key, retries=0)
    model = fake_model(AIMessage("fine"))
    errors: list[BaseException] = []
    lenient = VeritrailCallbackHandler(dead, mode="sync", on_error=lambda e, event: errors.append(e))
    assert model.invoke("hi", config={"callbacks": [lenient]}).content == "fine"
    assert lenient.recorder.error_count == 1 and len(errors) == 1

    strict = VeritrailCallbackHandler(dead, mode="sync", strict=True)
    with pytest.raises(HookError) as raised:
        model.invoke("hi", config={"callbacks": [strict]})
    assert raised.value.action == "agent_response_generated"
