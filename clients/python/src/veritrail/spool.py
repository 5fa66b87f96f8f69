"""The local spool: appends that could not be delivered, kept on disk until the log takes
them.

The spool is a JSONL file; each line is one request, exactly as it was (to be) sent::

    {"format": "veritrail-spool/v1", "idempotency_key": "...", "body": "<JSON text>",
     "events": 3, "spooled_at": "2026-03-01T12:00:00.000Z"}

A line is written with one ``write``, then flushed and ``fsync``-ed before ``record()``
returns, so a spooled record survives a crash of the process or the machine. Replaying
sends the same body under the same ``Idempotency-Key``: if an earlier attempt did reach
the log, the log answers with the first outcome instead of appending again (for the
log's ``--idempotency-window``, 24 h by default). Lines the log refuses for good (a 4xx
such as ``invalid_record``) and lines that cannot be read (a write torn by a crash) are
moved to ``<spool>.rejected`` with the reason, never dropped.

Several threads and processes may share one spool: every change holds a thread lock and,
where the platform has ``fcntl``, an exclusive ``flock`` on ``<spool>.lock``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

try:  # pragma: no cover - platform dependent
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Spool", "SpoolEntry", "SPOOL_FORMAT"]

#: The ``format`` of every spool line.
SPOOL_FORMAT = "veritrail-spool/v1"


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled request.

    Attributes:
        idempotency_key: the key every attempt used and the replay will use.
        body: the request body (the JSON array of events), exactly as sent.
        events: how many events it holds.
        spooled_at: when it was spooled (RFC 3339, UTC).
    """

    idempotency_key: str
    body: str
    events: int
    spooled_at: str

    def to_line(self) -> str:
        """The entry as one JSONL line, with its newline."""
        return (
            json.dumps(
                {
                    "format": SPOOL_FORMAT,
                    "idempotency_key": self.idempotency_key,
                    "body": self.body,
                    "events": self.events,
                    "spooled_at": self.spooled_at,
                },
                ensure_ascii=True,
                separators=(",", ":"),
            )
            + "\n"
        )

    @staticmethod
    def from_line(line: str) -> SpoolEntry:
        """Parses one line.

        Raises:
            ValueError: not a spool line of this format.
        """
        value = json.loads(line)
        if not isinstance(value, dict) or value.get("format") != SPOOL_FORMAT:
            raise ValueError("not a veritrail-spool/v1 line")
        key, body, events, at = (value.get(k) for k in ("idempotency_key", "body", "events", "spooled_at"))
        if not isinstance(key, str) or not isinstance(body, str) or not isinstance(events, int):
            raise ValueError("a spool line needs idempotency_key, body and events")
        return SpoolEntry(key, body, events, at if isinstance(at, str) else "")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class Spool:
    """A spool file at ``path`` (created on first use, mode 0600)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.rejected_path = self.path + ".rejected"
        self._lock = threading.RLock()
        self._depth = 0  # how deep this process holds the lock (under _lock)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Holds the spool exclusively (this process's threads and, with ``fcntl``, other
        processes)."""
        with self._lock:
            if fcntl is None or self._depth > 0:  # pragma: no cover - re-entered: held
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            # flock belongs to the open file: taking it again through another descriptor
            # would wait for ourselves, hence the depth count above.
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
            finally:
                os.close(fd)  # closing releases the lock

    def _append_line(self, path: str, line: str) -> None:
        created = not os.path.exists(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = os.fstat(fd).st_size
            data = line.encode("utf-8")
            if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # end a line torn by a crash, so this one stays whole
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(path)

    def append(self, entry: SpoolEntry) -> None:
        """Appends ``entry`` durably (written and ``fsync``-ed when this returns).

        Raises:
            OSError: the spool cannot be written.
        """
        with self.locked():
            self._append_line(self.path, entry.to_line())

    def reject(self, line: str, reason: str) -> None:
        """Moves a line the log refused (or that cannot be read) to ``<spool>.rejected``."""
        record = json.dumps({"rejected_at": _now(), "reason": reason, "line": line.rstrip("\n")}, ensure_ascii=True)
        self._append_line(self.rejected_path, record + "\n")

    def read(self) -> list[tuple[str, SpoolEntry | None]]:
        """Every line, in order, with its entry (``None`` for a line that does not parse).
        Call it holding :meth:`locked`."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        out: list[tuple[str, SpoolEntry | None]] = []
        for line in text.split("\n"):
            if line.strip() == "":
                continue
            try:
                out.append((line, SpoolEntry.from_line(line)))
            except ValueError:
                out.append((line, None))
        return out

    def rewrite(self, lines: list[str]) -> None:
        """Replaces the spool with ``lines`` atomically (temporary file, ``fsync``,
        rename, directory ``fsync``). Call it holding :meth:`locked`."""
        if not lines:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            _fsync_dir(self.path)
            return
        tmp = f"{self.path}.tmp.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, "".join(line + "\n" for line in lines).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path)

    def has_pending(self) -> bool:
        """Whether the spool file holds anything (a cheap check, without the lock)."""
        try:
            return os.path.getsize(self.path) > 0
        except OSError:
            return False

    def pending(self) -> int:
        """How many requests the spool holds."""
        with self.locked():
            return len(self.read())
