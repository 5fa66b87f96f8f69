"""SDK overhead on the agent's thread: the time `Client.enqueue` takes per record (the
background queue; the records are appended durably by the background thread), against, in the
same run, the usual forensic approach it replaces: the same event written as a JSON line by a
`logging.FileHandler`. Prints p50 and p99 in microseconds, and the rate at which the
background thread got the records durable.

    python benches/overhead.py --url http://127.0.0.1:7800 --records 20000
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time

from veritrail import Client


def event(i: int) -> dict:
    return {
        "action": "tool_invoked",
        "actor": {"id": "bench-agent", "type": "agent"},
        "conversation_id": f"bench-{i % 64}",
        "gen_ai": {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "ehr_read"},
    }


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:7800")
    parser.add_argument("--token")
    parser.add_argument("--records", type=int, default=20000)
    args = parser.parse_args()

    # Baseline: a JSON line per event through a logging.FileHandler (flushed, not fsynced).
    with tempfile.TemporaryDirectory() as work:
        log = logging.getLogger("forensic")
        log.propagate = False
        handler = logging.FileHandler(f"{work}/audit.log")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        baseline = []
        for i in range(args.records):
            started = time.perf_counter()
            log.info(json.dumps(event(i)))
            baseline.append((time.perf_counter() - started) * 1e6)
        handler.close()

    client = Client(args.url, args.token, batch_size=500, flush_interval=0.05, max_queue=args.records * 2)
    samples = []
    started_all = time.perf_counter()
    for i in range(args.records):
        started = time.perf_counter()
        client.enqueue(event(i))
        samples.append((time.perf_counter() - started) * 1e6)
    client.flush()
    durable_s = time.perf_counter() - started_all
    client.close()

    p50, p99 = percentiles(samples)
    b50, b99 = percentiles(baseline)
    print(f"{args.records} records; enqueue mean {statistics.mean(samples):.1f} us; all durable after {durable_s:.2f} s ({args.records / durable_s:.0f} records/s)")
    print(f"enqueue_p50_us={p50:.1f} enqueue_p99_us={p99:.1f} filehandler_p50_us={b50:.1f} filehandler_p99_us={b99:.1f} ratio_p50={p50 / b50:.2f}")


if __name__ == "__main__":
    main()
