"""Fixtures: the real ``veritrail`` binary, servers on loopback, the shared vectors.

The binary is ``$VERITRAIL_BIN``, else ``<repo>/target/debug/veritrail`` (CI builds it
first). Every server gets a temporary data directory, a key made with ``veritrail keygen``
and a port of its own; it is killed at teardown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO.parent / "shared" / "vectors"
ORIGIN = "sdk.test/log"
START_TIMEOUT = 30.0


def binary() -> Path:
    """The ``veritrail`` binary under test."""
    path = Path(os.environ.get("VERITRAIL_BIN") or REPO / "target" / "debug" / "veritrail")
    if not path.is_file():
        pytest.fail(f"no veritrail binary at {path}: build it (cargo build --bin veritrail) or set VERITRAIL_BIN")
    return path


def run_cli(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Runs the CLI with a bounded time."""
    return subprocess.run([str(binary()), *args], input=input, capture_output=True, timeout=60, check=check)


def free_port() -> int:
    """A port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``veritrail serve`` process on a data directory that outlives its restarts."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.key_file = workdir / "log.key"
        out = run_cli("keygen", "--name", ORIGIN, "--out", str(self.key_file))
        self.log_key = out.stdout.decode().strip().splitlines()[0]
        self.extra = list(extra)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def token(self) -> str:
        """The admin token the server wrote on its first start."""
        return (self.data / "admin.token").read_text().strip()

    def start(self) -> None:
        """Starts the server on its port and waits (bounded) until ``/readyz`` says ready."""
        assert self.process is None
        self.starts += 1
        out = open(self.workdir / f"serve-{self.starts}.out", "wb")
        err = open(self.workdir / f"serve-{self.starts}.err", "wb")
        command = [
            str(binary()), "serve", "--data", str(self.data), "--key", str(self.key_file),
            "--origin", ORIGIN, "--listen", f"127.0.0.1:{self.port}", *self.extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=out, stderr=err, env={**os.environ, "RUST_LOG": "warn"})
        out.close()
        err.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"veritrail serve exited: {(self.workdir / f'serve-{self.starts}.err').read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as r:
                    if json.load(r).get("status") == "ready":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise RuntimeError(f"veritrail serve was not ready within {START_TIMEOUT} s")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stops the server (SIGTERM: graceful; SIGKILL: a crash) and reaps it."""
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None

    def get_json(self, path: str) -> object:
        """An authenticated GET, unverified (for assertions)."""
        request = urllib.request.Request(f"{self.url}/{path}", headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.load(r)

    def get_bytes(self, path: str) -> bytes:
        """An authenticated GET of raw bytes."""
        request = urllib.request.Request(f"{self.url}/{path}", headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.read()

    def wait_published(self, index: int, timeout: float = 10.0) -> None:
        """Waits (bounded) until the latest checkpoint covers ``index``: record queries
        answer as of it."""

        def covered() -> bool:
            with urllib.request.urlopen(f"{self.url}/checkpoint", timeout=5) as r:
                return int(r.read().decode().split("\n")[1]) > index

        wait_for(covered, timeout)

    def records(self, **params: str) -> list[dict]:
        """Every record matching the query, straight from ``GET /v1/records`` (what the test
        asserts against; the SDK's own query is tested separately)."""
        out, cursor = [], 0
        while True:
            query = urllib.parse.urlencode({**params, "cursor": cursor, "limit": 1000})
            for _ in range(50):
                try:
                    page = self.get_json(f"v1/records?{query}")
                    break
                except urllib.error.HTTPError as e:
                    if e.code != 503:
                        raise
                    time.sleep(0.1)
            out.extend(page["records"])
            if page["next_cursor"] is None:
                return out
            cursor = page["next_cursor"]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that do not stop it."""
    s = Server(tmp_path_factory.mktemp("server"))
    s.start()
    yield s
    s.stop(signal.SIGKILL)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, which the test may stop and restart (not started)."""
    s = Server(tmp_path)
    yield s
    s.stop(signal.SIGKILL)


def wait_for(condition, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Polls ``condition`` until it is truthy (bounded); returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
