"""The HTTP transport to one log (standard library only): base URL, bearer token,
timeouts, capped body reads, and the retry policy with exponential back-off that honours
``Retry-After``."""

from __future__ import annotations

import http.client
import json
import random
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ._version import __version__
from .errors import ApiError, DeliveryError

#: Largest JSON answer read (``veritrail_api::limits::MAX_JSON_RESPONSE``).
MAX_JSON_RESPONSE = 16 << 20
#: Largest error body read (``MAX_ERROR_RESPONSE``).
MAX_ERROR_RESPONSE = 64 << 10
#: Statuses after which the same request may succeed: the log said nothing was appended
#: (``overloaded``, ``shutting_down``, ``store_unavailable``, ``insufficient_storage``) or
#: the outcome is unknown (``timeout``, a proxy's 502/504). With the same idempotency key a
#: retry appends at most once.
RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504, 507})


@dataclass(frozen=True)
class RetryPolicy:
    """How appends and reads are retried.

    Attributes:
        retries: how many times a failed request is repeated (0: never).
        backoff: delay before the first retry, in seconds; doubled each time.
        max_backoff: largest delay between two attempts.
        max_retry_after: longest ``Retry-After`` honoured (a longer one is cut to this).
        jitter: each delay is multiplied by a random factor in ``[1 - jitter, 1]``
            (``Retry-After`` delays by one in ``[1, 1 + jitter]``).
    """

    retries: int = 6
    backoff: float = 0.2
    max_backoff: float = 5.0
    max_retry_after: float = 30.0
    jitter: float = 0.2

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after) * (1 + random.uniform(0, self.jitter))
        base = min(self.backoff * 2.0 ** (attempt - 1), self.max_backoff)
        return base * (1 - random.uniform(0, self.jitter))


@dataclass
class Response:
    """A successful answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> object:
        """The body as JSON."""
        return json.loads(self.body)


class TransportError(OSError):
    """The request did not get an answer (connection refused or reset, timeout, a
    truncated or oversized answer)."""


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    return None


def api_error(url: str, status: int, body: bytes, retry_after: float | None) -> ApiError:
    """The :class:`ApiError` for an error answer: the stable ``error`` code and ``message``
    of the log's JSON error body, or, for another body, no code and its start."""
    code, message, problems = "", body[:200].decode("utf-8", "replace"), []
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        code = parsed["error"]
        text = parsed.get("message")
        message = text if isinstance(text, str) else ""
        raw = parsed.get("problems")
        if isinstance(raw, list) and raw:
            problems = [p for p in raw if isinstance(p, dict)]
            message = "; ".join(f"{p.get('field')}: {p.get('problem')}" for p in problems) or message
    return ApiError(status, code, message, problems=problems, retry_after=retry_after, url=url)


class Transport:
    """Sends requests to the log at ``url``; thread-safe (one connection per request)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        timeout: float,
        policy: RetryPolicy,
        ssl_context: ssl.SSLContext | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{url!r}: expected an http or https base URL")
        if parsed.query or parsed.fragment:
            raise ValueError(f"{url!r}: expected a base URL without query or fragment")
        self.url = url
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self._prefix = parsed.path.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.policy = policy
        self._ssl = ssl_context
        self._sleep = sleep
        self._user_agent = f"veritrail-python/{__version__}"

    def url_for(self, path: str) -> str:
        """The absolute URL of ``path`` (relative to the base URL)."""
        return f"{'https' if self._https else 'http'}://{self._netloc()}{self._prefix}/{path}"

    def _netloc(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self._port}" if self._port else host

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def once(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int = MAX_JSON_RESPONSE,
        timeout: float | None = None,
    ) -> Response:
        """One request, no retry.

        Raises:
            TransportError: no complete answer.
            ApiError: an error status.
        """
        url = self.url_for(path)
        all_headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
        if self._token is not None:
            all_headers["Authorization"] = f"Bearer {self._token}"
        all_headers.update(headers or {})
        connection = self._connection(self.timeout if timeout is None else timeout)
        try:
            try:
                connection.request(method, f"{self._prefix}/{path}", body=body, headers=all_headers)
                response = connection.getresponse()
                status = response.status
                response_headers = {k.lower(): v for k, v in response.getheaders()}
                limit = max_bytes if 200 <= status < 300 else MAX_ERROR_RESPONSE
                length = response_headers.get("content-length")
                if length is not None and length.isdigit() and int(length) > limit:
                    raise TransportError(f"{url}: the answer is larger than {limit} bytes")
                data = response.read(limit + 1)
                if len(data) > limit:
                    raise TransportError(f"{url}: the answer is larger than {limit} bytes")
            except (TimeoutError, OSError, http.client.HTTPException) as e:
                if isinstance(e, TransportError):
                    raise
                raise TransportError(f"{url}: {type(e).__name__}: {e}") from e
        finally:
            connection.close()
        if 200 <= status < 300:
            return Response(status, response_headers, data)
        raise api_error(url, status, data, _retry_after(response_headers.get("retry-after")))

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        retry: bool = True,
        idempotency_key: str | None = None,
        max_bytes: int = MAX_JSON_RESPONSE,
        policy: RetryPolicy | None = None,
    ) -> Response:
        """Sends a request, retrying transport failures and retryable statuses with
        back-off when ``retry`` (a read, or an append with an idempotency key: the same
        request each time).

        Raises:
            ApiError: an error answer that is not retryable.
            DeliveryError: the retry budget ran out (``last_error`` says why).
        """
        policy = policy or self.policy
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.once(method, path, body, headers, max_bytes)
            except ApiError as e:
                if e.status not in RETRYABLE_STATUSES or not retry:
                    raise
                error: BaseException = e
                retry_after = e.retry_after
            except TransportError as e:
                if not retry:
                    raise DeliveryError(
                        f"{self.url_for(path)}: {e}",
                        idempotency_key=idempotency_key,
                        body=body,
                        attempts=attempt,
                        last_error=e,
                    ) from e
                error, retry_after = e, None
            if attempt > policy.retries:
                raise DeliveryError(
                    f"{self.url_for(path)}: gave up after {attempt} attempt(s): {error}",
                    idempotency_key=idempotency_key,
                    body=body,
                    attempts=attempt,
                    last_error=error,
                ) from error
            self._sleep(policy.delay(attempt, retry_after))
