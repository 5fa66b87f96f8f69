"""Veritrail: the Python SDK of a tamper-evident, append-only audit ledger for AI agents.

Record what an agent does, get receipts that anyone can verify offline with the log's
public key, and read payloads back proven against their commitments::

    import veritrail

    with veritrail.Client("http://127.0.0.1:7800", token=TOKEN, log_key=LOG_KEY) as log:
        done = log.record(
            {"action": "tool_invoked", "actor": {"id": "triage", "type": "agent"}},
            payloads={"tool_arguments": '{"patient": "P-0042"}'},
            wait=True,
        )
        assert veritrail.verify_receipt(LOG_KEY, done.entry, done.receipt) == done.index

The public surface: :class:`Client`, :class:`Recorded`, :class:`BackgroundRecorder`,
:class:`Payload`, :func:`verify_receipt`, and the exceptions :class:`VeritrailError`,
:class:`VerificationError`, :class:`DeliveryError`, :class:`ApiError`,
:class:`QueueFullError`. The offline formats are in :mod:`veritrail.tlog`, RFC 8785 in
:mod:`veritrail.jcs`, record leaves and payload commitments in :mod:`veritrail.records`.
"""

from ._http import RetryPolicy
from ._version import __version__
from .background import BackgroundRecorder
from .client import Client, Recorded, SpoolReplay, new_idempotency_key
from .errors import (
    ApiError,
    DeliveryError,
    QueueFullError,
    VerificationError,
    VeritrailError,
)
from .records import Payload
from .tlog import verify_receipt

__all__ = [
    "ApiError",
    "BackgroundRecorder",
    "Client",
    "DeliveryError",
    "Payload",
    "QueueFullError",
    "Recorded",
    "RetryPolicy",
    "SpoolReplay",
    "VerificationError",
    "VeritrailError",
    "__version__",
    "new_idempotency_key",
    "verify_receipt",
]
