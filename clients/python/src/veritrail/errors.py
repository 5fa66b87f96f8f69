"""The exceptions the SDK raises.

Every exception is a :class:`VeritrailError`; catch the subclasses to tell apart a proof that
does not hold (:class:`VerificationError`), a log that could not be reached in time
(:class:`DeliveryError`) and a log that answered with an error (:class:`ApiError`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - imports for type checkers only
    from .client import Recorded

__all__ = [
    "ApiError",
    "DeliveryError",
    "QueueFullError",
    "VerificationError",
    "VeritrailError",
]


class VeritrailError(Exception):
    """Base class of every exception the SDK raises on purpose."""


class VerificationError(VeritrailError):
    """A receipt, signature, proof, record or payload does not verify.

    Raised for malformed input too: the parsers never raise anything else on bad bytes.

    Attributes:
        recorded: when an append succeeded but its answer did not verify, what the log
            answered (the record *is* in the log under that index; its proof is what failed).
    """

    def __init__(self, message: str, *, recorded: Recorded | None = None) -> None:
        super().__init__(message)
        self.recorded = recorded


class ApiError(VeritrailError):
    """The log answered with an error status.

    Attributes:
        status: the HTTP status code.
        code: the stable error code of the JSON error body (``"invalid_record"``,
            ``"overloaded"``, ...; see docs/api.md), or ``""`` for a body that is not the
            log's JSON error (a proxy's page).
        message: the human-readable message (for ``invalid_record``, every problem).
        problems: for ``invalid_record``, the ``{"field", "problem"}`` objects.
        retry_after: the ``Retry-After`` header in seconds, if the answer had one.
        url: the URL that answered.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        problems: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
        url: str = "",
    ) -> None:
        super().__init__(f"{url}: {status} {code or 'error'}: {message}" if url else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems or []
        self.retry_after = retry_after
        self.url = url


class DeliveryError(VeritrailError):
    """An append could not be delivered within the retry budget (the log is down, overloaded
    or unreachable).

    Nothing is known to have been appended, but the last attempt may have reached the log:
    retry with the same :attr:`idempotency_key` and :attr:`body` (``Client.resend``) and the
    log appends it at most once.

    Attributes:
        idempotency_key: the key every attempt was sent with.
        body: the exact request body (JSON bytes) every attempt sent.
        attempts: how many requests were made.
        last_error: the last failure (an ``OSError``, a timeout or an :class:`ApiError`).
        events: for a background flush, the events that were not delivered.
    """

    def __init__(
        self,
        message: str,
        *,
        idempotency_key: str | None = None,
        body: bytes | None = None,
        attempts: int = 0,
        last_error: BaseException | None = None,
        events: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key
        self.body = body
        self.attempts = attempts
        self.last_error = last_error
        self.events = events or []


class QueueFullError(VeritrailError):
    """The background queue stayed full for the whole timeout of ``enqueue`` (nothing was
    queued, nothing was dropped)."""
