"""OTLP ingest, driven by the OpenTelemetry Python SDK's own OTLP/HTTP exporters (protobuf and
JSON) against the real server: GenAI spans become records, in order, chained by
conversation, with prompts, responses and tool data as committed payloads that read back
proven, never in the records' metadata; and the exporter is told success only once they are
durable (the export call returns after the records are in the log)."""

from __future__ import annotations

import json

import pytest

from conftest import Server
from hookcheck import actions, check_chain, check_payloads, client_for, conversation, records_of, require

require("opentelemetry.sdk.trace")
require("opentelemetry.exporter.otlp.proto.http.trace_exporter")
require("opentelemetry.exporter.otlp.json.http.trace_exporter")

from opentelemetry.exporter.otlp.json.http.trace_exporter import (  # noqa: E402
    OTLPSpanExporter as JsonSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: E402
    OTLPSpanExporter as ProtobufSpanExporter,
)
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult  # noqa: E402

SECRET = "SECRET-DOSE-4471"


class Recording:
    """Wraps an exporter and keeps what each export returned."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.results: list[SpanExportResult] = []

    def export(self, spans):  # type: ignore[no-untyped-def]
        result = self.inner.export(spans)  # type: ignore[attr-defined]
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[attr-defined]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def run_agent(exporter: Recording, conversation_id: str) -> None:
    """A small agent run as GenAI spans: a model call that asks for a tool, the tool, the
    model's answer."""
    provider = TracerProvider(resource=Resource.create({"service.name": "triage-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[arg-type]
    tracer = provider.get_tracer("test")
    common = {"gen_ai.conversation.id": conversation_id, "gen_ai.request.model": "gpt-x"}
    with tracer.start_as_current_span("invoke_agent triage", attributes={**common, "gen_ai.operation.name": "invoke_agent"}):
        with tracer.start_as_current_span(
            "chat gpt-x",
            attributes={
                **common,
                "gen_ai.operation.name": "chat",
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 3,
                "gen_ai.input.messages": json.dumps([{"role": "user", "content": f"dose? {SECRET}"}]),
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "tool_calls": ["ehr_read"]}]),
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool ehr_read",
            attributes={
                "gen_ai.conversation.id": conversation_id,
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "ehr_read",
                "gen_ai.tool.call.id": "call_1",
                "gen_ai.tool.call.arguments": json.dumps({"patient": "P-1"}),
                "gen_ai.tool.call.result": json.dumps({"dose": SECRET}),
            },
        ):
            pass
        with tracer.start_as_current_span("GET /internal"):
            pass  # not GenAI: ignored
    provider.shutdown()


def check_run(server: Server, conversation_id: str, exporter: Recording) -> None:
    assert exporter.results and all(r == SpanExportResult.SUCCESS for r in exporter.results)
    client = client_for(server)
    try:
        records = records_of(server, client, conversation_id)
        # Spans end (and are exported) innermost first: the model call, the tool, the agent.
        assert actions(records) == [
            "agent_response_generated",
            "tool_invoked",
            "tool_result",
            "agent_response_generated",
        ]
        check_chain(records)
        read = check_payloads(client, records, secrets=[SECRET])
        names = sorted(name for _, name in read)
        assert names == ["prompt", "response", "tool_arguments", "tool_result"]
        chat = records[0][1]
        assert chat["actor"]["id"] == "triage-agent"
        assert chat["gen_ai"]["gen_ai.usage.input_tokens"] == 12
        assert SECRET.encode() in read[(records[0][0], "prompt")]
    finally:
        client.close()


@pytest.mark.parametrize("exporter_class", [ProtobufSpanExporter, JsonSpanExporter], ids=["protobuf", "json"])
def test_exporter(server: Server, exporter_class: type) -> None:
    conversation_id = conversation()
    exporter = Recording(
        exporter_class(
            endpoint=f"{server.url}/v1/traces",
            headers={"Authorization": f"Bearer {server.token}"},
        )
    )
    run_agent(exporter, conversation_id)
    check_run(server, conversation_id, exporter)
