"""RFC 8785 (JCS) canonical JSON, as ``veritrail_records::jcs`` writes it.

An agent record's leaf is ``0x01 || JCS(record)``; recomputing it from the JSON the log
serves is how a client proves a record (``GET /v1/records/{index}``) without trusting the
server's encoding. Object members are sorted by the UTF-16 code units of their keys,
strings escaped as ECMAScript's ``JSON.stringify`` does, numbers written in ECMAScript's
shortest round-trip form (integers of at most 2^53 in magnitude as plain decimals).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

__all__ = ["canonicalize", "loads_strict"]

_MAX_EXACT = 1 << 53


def _number(value: int | float) -> str:
    if isinstance(value, int):
        if abs(value) <= _MAX_EXACT:
            return str(value)
        value = float(value)  # ECMAScript numbers are doubles
    if math.isnan(value) or math.isinf(value):
        raise ValueError("JSON has no NaN or infinity")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest round-trip digits; rewrite them the ECMAScript way
    # (Number::toString, ECMA-262 section 6.1.6.1.20): value = 0.d1d2...dk * 10^n.
    decimal = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, decimal.digits)).lstrip("0")
    exponent = int(decimal.exponent)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    k = len(digits)
    n = exponent + k
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exp = f"e{'+' if e >= 0 else '-'}{abs(e)}"
    if k == 1:
        return sign + digits + exp
    return sign + digits[0] + "." + digits[1:] + exp


def _string(value: str) -> str:
    # json.dumps with ensure_ascii=False escapes exactly ", \\ and the controls below 0x20
    # (\b \f \n \r \t short, the others \\u00xx), as serde_json and JSON.stringify do.
    return json.dumps(value, ensure_ascii=False)


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, (int, float)):
        out.append(_number(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError("JSON object keys are strings")
        members = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be", "surrogatepass"))
        out.append("{")
        for i, (key, item) in enumerate(members):
            if i:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _write(item, out)
        out.append("}")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON")


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 canonical JSON of ``value`` (dicts, lists, str, int, float, bool, None),
    UTF-8 encoded.

    Raises:
        TypeError: for a value that is not JSON.
        ValueError: for NaN or an infinity.
    """
    out: list[str] = []
    _write(value, out)
    return "".join(out).encode("utf-8")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(data: bytes | str) -> Any:
    """Parses JSON as a strict parser would: ``NaN`` and ``Infinity`` are refused.

    Raises:
        ValueError: for text that is not JSON (``json.JSONDecodeError`` is one).
    """
    return json.loads(data, parse_constant=_refuse_constant)
