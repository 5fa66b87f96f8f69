"""Seeds for the `otlp` fuzz target: GenAI spans (chat, tool, agent, with events), a plain
HTTP span, a mixed request and GenAI log events, each as OTLP JSON, as protobuf and as
gzip-compressed protobuf.

Run from `fuzz/` with a Python that has `opentelemetry-proto` (the venv `.ci/python.sh`
makes has it: `../target/python-venv/bin/python seeds/otlp.py`). Writes `corpus/otlp/`.
"""

import base64
import gzip
import json
import pathlib

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)


def attr(key, value):
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def span(name, attrs, kind=1, events=None):
    out = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": name,
        "kind": kind,
        "startTimeUnixNano": "1767225600000000000",
        "endTimeUnixNano": "1767225601000000000",
        "attributes": [attr(k, v) for k, v in attrs.items()],
        "status": {},
    }
    if events:
        out["events"] = events
    return out


def traces(spans):
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [attr("service.name", "triage")]},
                "scopeSpans": [{"scope": {"name": "agent"}, "spans": spans}],
            }
        ]
    }


def messages(role, text):
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


chat = span(
    "chat gpt-4o",
    {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 40,
        "gen_ai.agent.name": "triage",
        "gen_ai.conversation.id": "c-1",
        "gen_ai.input.messages": messages("user", "hi"),
        "gen_ai.output.messages": messages("assistant", "hello"),
    },
)
tool = span(
    "execute_tool ehr.read",
    {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "ehr.read",
        "gen_ai.tool.call.id": "call-1",
        "gen_ai.tool.call.arguments": '{"mrn":"1"}',
        "gen_ai.tool.call.result": "ok",
        "gen_ai.conversation.id": "c-1",
    },
)
agent = span(
    "invoke_agent triage",
    {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "triage",
        "gen_ai.agent.id": "a-1",
        "gen_ai.system_instructions": "be careful",
        "gen_ai.conversation.id": "c-1",
    },
)
other = span("GET /health", {"http.request.method": "GET", "url.path": "/health"}, kind=2)
with_events = span(
    "chat",
    {"gen_ai.operation.name": "chat", "gen_ai.system": "openai"},
    events=[
        {
            "timeUnixNano": "1767225600500000000",
            "name": "gen_ai.user.message",
            "attributes": [attr("content", "hi")],
        }
    ],
)
logs = {
    "resourceLogs": [
        {
            "resource": {},
            "scopeLogs": [
                {
                    "scope": {"name": "agent"},
                    "logRecords": [
                        {
                            "timeUnixNano": "1767225600000000000",
                            "eventName": "gen_ai.client.inference.operation.details",
                            "body": {"stringValue": "x"},
                            "attributes": [
                                attr("gen_ai.operation.name", "chat"),
                                attr("gen_ai.request.model", "m"),
                                attr("gen_ai.input.messages", "[]"),
                                attr("gen_ai.conversation.id", "c-2"),
                            ],
                        },
                        {
                            "timeUnixNano": "1767225600000000000",
                            "attributes": [
                                attr("event.name", "gen_ai.tool.message"),
                                attr("gen_ai.tool.name", "t"),
                            ],
                        },
                    ],
                }
            ],
        }
    ]
}
SEEDS = {
    "chat": traces([chat]),
    "tool": traces([tool]),
    "agent": traces([agent]),
    "other": traces([other]),
    "mixed": traces([chat, tool, agent, other]),
    "events": traces([with_events]),
    "logs": logs,
}


def protobuf(otlp_json):
    """OTLP JSON ids are hex; proto3 JSON wants base64."""

    def ids(value):
        if isinstance(value, dict):
            for key, inner in value.items():
                if key in ("traceId", "spanId", "parentSpanId"):
                    value[key] = base64.b64encode(bytes.fromhex(inner)).decode()
                else:
                    ids(inner)
        elif isinstance(value, list):
            for inner in value:
                ids(inner)

    proto_json = json.loads(json.dumps(otlp_json))
    ids(proto_json)
    request = ExportLogsServiceRequest() if "resourceLogs" in proto_json else ExportTraceServiceRequest()
    json_format.ParseDict(proto_json, request)
    return request.SerializeToString()


def main():
    out = pathlib.Path("corpus/otlp")
    out.mkdir(parents=True, exist_ok=True)
    for name, request in SEEDS.items():
        encoded = protobuf(request)
        (out / f"json-{name}").write_text(json.dumps(request))
        (out / f"pb-{name}").write_bytes(encoded)
        (out / f"gz-{name}").write_bytes(gzip.compress(encoded, mtime=0))
    print(f"{3 * len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main()
