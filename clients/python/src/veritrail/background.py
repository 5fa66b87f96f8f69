"""Batched, non-blocking recording: a bounded queue drained by one background thread.

:meth:`BackgroundRecorder.enqueue` returns at once with a future; the thread sends the
queued events in batches (one ``POST /v1/records`` of up to ``batch_size`` events under one
idempotency key) when ``batch_size`` events wait, when the oldest has waited
``flush_interval`` seconds, on :meth:`~BackgroundRecorder.flush`, on
:meth:`~BackgroundRecorder.close` and at interpreter exit.

Nothing is dropped. When the queue is full, ``enqueue`` blocks (or raises
:class:`~veritrail.QueueFullError` after its timeout). When the log cannot be reached, the
batch is spooled if the client has a spool; otherwise it is sent again, same body and same
idempotency key, until it goes through or the recorder is closed, and the queue fills up
behind it. A batch the log refuses for good (``invalid_record``, ``conversation_closed``)
is split so that every valid event still goes in; an event the log refuses fails its future
(and ``on_error`` is called).
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ApiError, DeliveryError, QueueFullError, VeritrailError

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client, Recorded
    from .records import Payload

__all__ = ["BackgroundRecorder"]

_log = logging.getLogger("veritrail")
_PERMANENT_STATUSES = frozenset({400, 409, 413, 422})


@dataclass
class _Item:
    event: dict[str, Any]
    size: int
    future: Future[Recorded]
    queued_at: float


class BackgroundRecorder:
    """A bounded background queue of records for one :class:`~veritrail.Client`.

    Args:
        client: the client that sends (its retry policy and spool apply).
        batch_size: most events per request (at most 1,000).
        max_batch_bytes: most JSON bytes per request (the log takes 16 MiB by default).
        flush_interval: longest an event waits for its batch to fill, in seconds.
        max_queue: most events waiting (sent ones excluded).
        max_queue_bytes: most JSON bytes waiting.
        on_error: called with the error and the events when the log refuses events for
            good, and when a batch cannot be delivered (it is then retried).
        close_timeout_at_exit: how long the ``atexit`` hook waits to deliver what is left.

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        client: Client,
        *,
        batch_size: int = 100,
        max_batch_bytes: int = 8 << 20,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        max_queue_bytes: int = 64 << 20,
        on_error: Callable[[BaseException, list[dict[str, Any]]], None] | None = None,
        close_timeout_at_exit: float = 10.0,
    ) -> None:
        if not 1 <= batch_size <= 1000:
            raise ValueError("batch_size is 1 to 1,000")
        if max_queue < 1 or flush_interval <= 0:
            raise ValueError("max_queue must be at least 1 and flush_interval positive")
        self.client = client
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.on_error = on_error
        self.close_timeout_at_exit = close_timeout_at_exit
        #: The last delivery failure, if the log is unreachable now.
        self.last_error: BaseException | None = None
        self._queue: deque[_Item] = deque()
        self._queued_bytes = 0
        self._in_flight: list[_Item] = []
        self._in_flight_key: str | None = None
        self._cond = threading.Condition()
        self._flushing = 0
        self._closing = False
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name="veritrail-recorder", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    # ----------------------------------------------------------------------------------
    # Producer side

    def enqueue(
        self,
        event: Mapping[str, Any],
        payloads: Mapping[str, bytes | str | Payload] | None = None,
        *,
        block: bool = True,
        timeout: float | None = None,
    ) -> Future[Recorded]:
        """Queues one record (prepared at once: ``id`` and ``timestamp`` filled in,
        payloads encoded) and returns a future of its :class:`~veritrail.Recorded`.

        Args:
            event: the event, as for :meth:`Client.record`.
            payloads: its payloads, as for :meth:`Client.record`.
            block: wait for room when the queue is full (else raise at once).
            timeout: longest to wait for room (``None``: no limit).

        Raises:
            QueueFullError: no room within the timeout.
            VeritrailError: the recorder is closed.
            TypeError, ValueError: an event or payload the log would refuse.
        """
        prepared = self.client.prepare(event, payloads)
        size = len(json.dumps(prepared, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8"))
        future: Future[Recorded] = Future()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closing:
                    raise VeritrailError("the background recorder is closed")
                if not self._queue or (
                    len(self._queue) < self.max_queue and self._queued_bytes + size <= self.max_queue_bytes
                ):
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if not block or (left is not None and left <= 0):
                    raise QueueFullError(f"the queue holds {len(self._queue)} events")
                self._cond.wait(left)
            self._queue.append(_Item(prepared, size, future, time.monotonic()))
            self._queued_bytes += size
            self._cond.notify_all()
        return future

    def pending(self) -> int:
        """Events queued or being sent."""
        with self._cond:
            return len(self._queue) + len(self._in_flight)

    def flush(self, timeout: float | None = None) -> None:
        """Sends everything queued now and waits until it is delivered (or spooled).

        Raises:
            DeliveryError: ``timeout`` passed first; the events stay queued (``events``
                lists them).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._queue or self._in_flight:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        waiting = [i.event for i in (*self._in_flight, *self._queue)]
                        raise DeliveryError(
                            f"{len(waiting)} record(s) not delivered within {timeout} s: {self.last_error}",
                            last_error=self.last_error,
                            events=waiting,
                        )
                    self._cond.wait(left)
            finally:
                self._flushing -= 1

    def close(self, timeout: float | None = 30.0) -> None:
        """Flushes, then stops the thread. With a spool, once closing starts a batch the log
        cannot take is spooled at once, and whatever is still undelivered at ``timeout`` is
        spooled too. Without one, events not delivered within ``timeout`` fail their futures
        with the :class:`~veritrail.DeliveryError` raised here.

        Raises:
            DeliveryError: records could not be delivered in time and there is no spool
                (``events`` lists them).
        """
        atexit.unregister(self._at_exit)
        with self._cond:
            if self._closing and not self._thread.is_alive():
                return
            self._closing = True
            self._cond.notify_all()
        try:
            self.flush(timeout)
        except DeliveryError as error:
            self._abandon.set()
            with self._cond:
                left = [(self._in_flight_key, list(self._in_flight))] if self._in_flight else []
                left.extend((None, [item]) for item in self._queue)
                self._queue.clear()
                self._queued_bytes = 0
                self._cond.notify_all()
            if self.client.spool is not None:
                self._spool_left(left)
            else:
                for _, items in left:
                    for item in items:
                        _resolve(item.future, error=error)
                self._thread.join(timeout=1.0)
                raise
        self._thread.join(timeout)

    def _spool_left(self, left: list[tuple[str | None, list[_Item]]]) -> None:
        from .client import new_idempotency_key

        for key, items in left:
            # The batch being sent keeps its key: if that attempt lands too, the replay
            # gets its outcome instead of appending again.
            results = self.client.spool_prepared([i.event for i in items], key or new_idempotency_key())
            for item, result in zip(items, results, strict=True):
                _resolve(item.future, result=result)

    def __enter__(self) -> BackgroundRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _at_exit(self) -> None:
        try:
            self.close(self.close_timeout_at_exit)
        except DeliveryError as e:
            _log.error(
                "veritrail: %d record(s) could not be delivered at exit and are lost "
                "(configure spool_path to keep them): %s",
                len(e.events),
                e,
            )

    # ----------------------------------------------------------------------------------
    # The thread

    def _take_batch(self) -> list[_Item] | None:
        with self._cond:
            while True:
                if self._queue:
                    waited = time.monotonic() - self._queue[0].queued_at
                    full = len(self._queue) >= self.batch_size
                    if full or waited >= self.flush_interval or self._flushing or self._closing:
                        break
                    self._cond.wait(self.flush_interval - waited)
                elif self._closing:
                    return None
                else:
                    self._cond.wait()
            batch: list[_Item] = []
            size = 0
            while self._queue and len(batch) < self.batch_size:
                item = self._queue[0]
                if batch and size + item.size > self.max_batch_bytes:
                    break
                batch.append(self._queue.popleft())
                size += item.size
                self._queued_bytes -= item.size
            self._in_flight = batch
            self._cond.notify_all()  # room for producers
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            try:
                self._deliver(batch, key=None)
            except Exception as e:  # noqa: BLE001 - the thread must survive anything
                _log.exception("veritrail: the background recorder failed on a batch")
                for item in batch:
                    _resolve(item.future, error=e)
            with self._cond:
                self._in_flight = []
                self._in_flight_key = None
                self._cond.notify_all()
            if self._abandon.is_set():
                return

    def _deliver(self, batch: list[_Item], key: str | None) -> None:
        """Sends one batch until it is delivered, refused for good, or abandoned."""
        from ._http import RetryPolicy
        from .client import new_idempotency_key

        key = key or new_idempotency_key()
        with self._cond:
            self._in_flight_key = key
        events = [item.event for item in batch]
        while True:
            # Closing with a spool: one attempt, then the spool (the process may be exiting).
            policy = RetryPolicy(retries=0) if self._closing and self.client.spool is not None else None
            try:
                results = self.client.append_prepared(events, wait=False, idempotency_key=key, policy=policy)
            except DeliveryError as e:
                self.last_error = e
                self._report(e, events)
                if self._abandon.wait(self.client.policy.max_backoff):
                    return  # close() settles the futures
                continue  # same body, same key: appended at most once
            except ApiError as e:
                if e.status in _PERMANENT_STATUSES and len(batch) > 1:
                    # All or nothing: nothing of the batch was appended; send each alone.
                    for item in batch:
                        self._deliver([item], key=None)
                    return
                if e.status in _PERMANENT_STATUSES:
                    self._report(e, events)
                    _resolve(batch[0].future, error=e)
                    return
                self.last_error = e
                self._report(e, events)
                if self._abandon.wait(self.client.policy.max_backoff):
                    return
                continue
            except VeritrailError as e:  # appended, but the answer does not verify
                self._report(e, events)
                for item in batch:
                    _resolve(item.future, error=e)
                return
            self.last_error = None
            for item, result in zip(batch, results, strict=True):
                _resolve(item.future, result=result)
            return

    def _report(self, error: BaseException, events: list[dict[str, Any]]) -> None:
        if self.on_error is None:
            _log.warning("veritrail: %s (%d record(s))", error, len(events))
            return
        try:
            self.on_error(error, events)
        except Exception:  # noqa: BLE001 - a failing callback must not stop delivery
            _log.exception("veritrail: on_error raised")


def _resolve(future: Future[Recorded], result: Recorded | None = None, error: BaseException | None = None) -> None:
    """Settles a future once; a later outcome (a batch that landed after ``close`` gave up
    on it) is ignored."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]
    except InvalidStateError:
        pass
