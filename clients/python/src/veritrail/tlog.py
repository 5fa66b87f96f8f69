"""Transparency-log formats, verified offline: RFC 6962 / RFC 9162 Merkle hashing and
inclusion proofs, C2SP signed notes (Ed25519), checkpoints and ``c2sp.org/tlog-proof@v1``
receipts.

This module is the Python twin of the pure layer of ``veritrail-ledger``
(``crates/ledger/src/{hash,proof,note,checkpoint,receipt}.rs``) and accepts exactly what it
accepts: canonical base64 (padded, no whitespace, zero trailing bits), canonical decimals
(no sign, no leading zero, at most 2^64 - 1), the same size and count limits, and Ed25519
signatures checked as ``ed25519-dalek``'s ``verify_strict`` does (canonical ``S``, no
small-order ``R`` or public key). docs/formats.md documents every rule.

Every parser and verifier here is total: malformed input raises :class:`VerificationError`
and never anything else. No I/O.

Example (the receipt of entry 2 of the running example of docs/formats.md)::

    from veritrail import verify_receipt
    index = verify_receipt(log_key, b"agent-7 called send_email", receipt_text)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import VerificationError

__all__ = [
    "HASH_SIZE",
    "MAX_NOTE_SIZE",
    "MAX_PROOF_HASHES",
    "MAX_RECEIPT_SIZE",
    "MAX_SIGNATURES",
    "RECEIPT_HEADER",
    "Checkpoint",
    "Note",
    "NoteSignature",
    "NoteVerifier",
    "Receipt",
    "decode_base64",
    "encode_base64",
    "hash_from_base64",
    "inclusion_proof_len",
    "leaf_hash",
    "node_hash",
    "parse_checkpoint",
    "parse_decimal",
    "parse_note",
    "parse_receipt",
    "parse_verifier_key",
    "root_from_inclusion_proof",
    "verify_checkpoint",
    "verify_inclusion",
    "verify_receipt",
]

#: Bytes of a SHA-256 hash.
HASH_SIZE = 32
#: Largest signed note (``note::MAX_NOTE_SIZE``): a checkpoint with a few cosignatures is
#: under 1 KiB; 1 MiB bounds one untrusted input while leaving room for large signatures.
MAX_NOTE_SIZE = 1 << 20
#: Most signature lines in a note (``note::MAX_SIGNATURES``, as Go's ``note`` package).
MAX_SIGNATURES = 100
#: Longest key string (``note::MAX_KEY_STRING_SIZE``): a real one is under 100 bytes.
MAX_KEY_STRING_SIZE = 4096
#: Most hashes in a receipt's proof (``proof::MAX_PROOF_HASHES``): a ``u64`` tree is at most
#: 64 levels high.
MAX_PROOF_HASHES = 64
#: Largest receipt (``receipt::MAX_RECEIPT_SIZE``): a full note plus 64 KiB for the rest.
MAX_RECEIPT_SIZE = MAX_NOTE_SIZE + 64 * 1024
#: First line of a receipt.
RECEIPT_HEADER = "c2sp.org/tlog-proof@v1"

SIG_TYPE_ED25519 = 0x01
SIG_TYPE_COSIGNATURE = 0x04
_COSIGNATURE_MAX_TIMESTAMP = (1 << 63) - 1
_SIGNATURE_PREFIX = "\u2014 "
_U64_MAX = (1 << 64) - 1

# --------------------------------------------------------------------------------------
# Canonical encodings


_BASE64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_CONTROL_BYTE = re.compile(rb"[\x00-\x09\x0b-\x1f]")


def decode_base64(text: str) -> bytes:
    """Decodes canonical standard base64 (RFC 4648 section 4): padding present, no
    whitespace, unused trailing bits zero; the empty string is the empty value.

    Raises:
        VerificationError: for anything else.
    """
    if not isinstance(text, str) or len(text) % 4 != 0 or not _BASE64_RE.fullmatch(text):
        raise VerificationError("not canonical standard base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise VerificationError("not canonical standard base64") from e
    if base64.b64encode(raw).decode("ascii") != text:
        raise VerificationError("not canonical standard base64")
    return raw


def encode_base64(raw: bytes) -> str:
    """Standard padded base64 of ``raw``."""
    return base64.b64encode(raw).decode("ascii")


def parse_decimal(text: str) -> int:
    """Parses a canonical decimal ``u64``: ASCII digits only, no sign, no leading zero
    except ``0`` itself, at most 2^64 - 1 (``checkpoint::parse_decimal``).

    Raises:
        VerificationError: for anything else.
    """
    if not isinstance(text, str) or text == "":
        raise VerificationError("empty number")
    if not all("0" <= c <= "9" for c in text):
        raise VerificationError(f"{text[:32]!r} is not an ASCII decimal number")
    if len(text) > 1 and text[0] == "0":
        raise VerificationError(f"{text[:32]!r} has a leading zero")
    if len(text) > 20:
        raise VerificationError("number does not fit in 64 bits")
    value = int(text)
    if value > _U64_MAX:
        raise VerificationError("number does not fit in 64 bits")
    return value


def hash_from_base64(text: str) -> bytes:
    """A 32-byte hash from exactly 44 characters of canonical base64 (``Hash::from_base64``;
    text over 64 bytes is refused before decoding).

    Raises:
        VerificationError: for anything else.
    """
    if not isinstance(text, str) or len(text.encode("utf-8", "surrogatepass")) > 64:
        raise VerificationError("a hash is 32 bytes of base64")
    raw = decode_base64(text)
    if len(raw) != HASH_SIZE:
        raise VerificationError(f"a hash is {HASH_SIZE} bytes, got {len(raw)}")
    return raw


# --------------------------------------------------------------------------------------
# RFC 9162 section 2.1 hashing and inclusion proofs


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 leaf hash: ``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(b"\x00" + bytes(entry)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _decompose(index: int, last: int) -> tuple[int, int]:
    inner = (index ^ last).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def inclusion_proof_len(index: int, size: int) -> int:
    """The number of hashes of the inclusion proof of leaf ``index`` in a tree of ``size``
    leaves (0 when ``index >= size``)."""
    if size <= 0 or index >= size or index < 0:
        return 0
    inner, border = _decompose(index, size - 1)
    return inner + border


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` gives for leaf hash ``leaf`` at ``index`` in a tree of
    ``size`` leaves (RFC 9162 section 2.1.3.2). The proof length is checked against
    ``(index, size)`` before any hashing.

    Raises:
        VerificationError: index out of range, wrong proof length, or a proof element that
            is not 32 bytes.
    """
    if not (0 <= index <= _U64_MAX and 0 <= size <= _U64_MAX) or index >= size:
        raise VerificationError(f"leaf index {index} is out of range for a tree of size {size}")
    inner_len, border_len = _decompose(index, size - 1)
    want = inner_len + border_len
    if len(proof) != want:
        raise VerificationError(f"proof has {len(proof)} hashes, want exactly {want}")
    if len(leaf) != HASH_SIZE or any(len(h) != HASH_SIZE for h in proof):
        raise VerificationError("hashes are 32 bytes")
    root = bytes(leaf)
    bits = index
    for sibling in proof[:inner_len]:
        root = node_hash(root, sibling) if bits & 1 == 0 else node_hash(sibling, root)
        bits >>= 1
    for sibling in proof[inner_len:]:
        root = node_hash(sibling, root)
    return root


def verify_inclusion(leaf: bytes, index: int, size: int, root: bytes, proof: Sequence[bytes]) -> None:
    """Checks that ``proof`` proves leaf hash ``leaf`` at ``index`` in the tree of ``size``
    leaves with root ``root``.

    Raises:
        VerificationError: if it does not.
    """
    computed = root_from_inclusion_proof(leaf, index, size, proof)
    if computed != root:
        raise VerificationError(f"inclusion proof yields root {computed.hex()}, expected {bytes(root).hex()}")


# --------------------------------------------------------------------------------------
# Ed25519, checked as ed25519-dalek's verify_strict checks it

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, -1, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _decompress(encoded: bytes) -> tuple[int, int] | None:
    """Decompresses an Edwards point as curve25519-dalek does: the 255 low bits are ``y``
    (not required to be reduced), the top bit the sign of ``x``; ``None`` if not on the
    curve."""
    y = (int.from_bytes(encoded, "little") & ((1 << 255) - 1)) % _P
    sign = encoded[31] >> 7
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x2 = u * pow(v, -1, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
        if (x * x - x2) % _P != 0:
            return None
    if x & 1:
        x = _P - x  # the non-negative root, as sqrt_ratio_i returns
    if sign:
        x = (_P - x) % _P
    return x, y


def _edwards_add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = _D * x1 * x2 * y1 * y2 % _P
    x3 = (x1 * y2 + y1 * x2) * pow(1 + t, -1, _P) % _P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, -1, _P) % _P
    return x3, y3


def _is_small_order(point: tuple[int, int]) -> bool:
    for _ in range(3):  # [8]P
        point = _edwards_add(point, point)
    return point == (0, 1)


def _ed25519_verify_strict(public_key: bytes, message: bytes, signature: bytes) -> bool:
    if len(public_key) != 32 or len(signature) != 64:
        return False
    r_bytes, s_bytes = signature[:32], signature[32:]
    if int.from_bytes(s_bytes, "little") >= _L:
        return False
    a = _decompress(public_key)
    r = _decompress(r_bytes)
    if a is None or r is None or _is_small_order(a) or _is_small_order(r):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# --------------------------------------------------------------------------------------
# C2SP signed-note v1.0.0

# Unicode White_Space (what Rust's char::is_whitespace tests).
_WHITESPACE = frozenset(
    [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)


def _is_control(c: str) -> bool:
    """Rust's ``char::is_control``: general category Cc."""
    o = ord(c)
    return o < 0x20 or 0x7F <= o <= 0x9F


def _check_key_name(name: str) -> str:
    if name == "":
        raise VerificationError("invalid key name: empty")
    if any(ord(c) in _WHITESPACE for c in name):
        raise VerificationError("invalid key name: contains whitespace")
    if "+" in name:
        raise VerificationError("invalid key name: contains '+'")
    if any(_is_control(c) for c in name):
        raise VerificationError("invalid key name: contains a control character")
    return name


def _key_id(name: str, signature_type: int, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode("utf-8") + bytes([0x0A, signature_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class NoteVerifier:
    """A signed-note verifier key: ``<name>+<key ID, 8 lower-case hex digits>+<base64(type
    || public key)>``, with type 0x01 (Ed25519 note signatures) or 0x04 (timestamped
    cosignatures)."""

    name: str
    key_id: int
    signature_type: int
    public_key: bytes

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{encode_base64(bytes([self.signature_type]) + self.public_key)}"

    def matches(self, signature: NoteSignature) -> bool:
        """Whether a signature line is by this key (same name and key ID)."""
        return self.key_id == signature.key_id and self.name == signature.name

    def check(self, text: str, signature: NoteSignature) -> None:
        """Checks one signature line of this key over note text ``text``.

        Raises:
            VerificationError: if it does not verify.
        """
        message = text.encode("utf-8")
        if self.signature_type == SIG_TYPE_COSIGNATURE:
            payload = signature.signature
            if len(payload) != 72:
                raise VerificationError(f"signature by {self.name} is {len(payload)} bytes, expected 72")
            timestamp = int.from_bytes(payload[:8], "big")
            if timestamp > _COSIGNATURE_MAX_TIMESTAMP:
                raise VerificationError(f"invalid signature by known key {self.name} ({self.key_id:08x})")
            message = f"cosignature/v1\ntime {timestamp}\n".encode() + message
            sig = payload[8:]
        else:
            sig = signature.signature
            if len(sig) != 64:
                raise VerificationError(f"signature by {self.name} is {len(sig)} bytes, expected 64")
        if not _ed25519_verify_strict(self.public_key, message, sig):
            raise VerificationError(f"invalid signature by known key {self.name} ({self.key_id:08x})")


def parse_verifier_key(text: str) -> NoteVerifier:
    """Parses a verifier key string (``NoteVerifier::from_str``); the base64 part may hold
    ``+``, so the string is split on its first two ``+`` only.

    Raises:
        VerificationError: for a malformed key, an unsupported type, a wrong length, a key
            ID that is not the one computed, or bytes that are not an Ed25519 point.
    """
    if not isinstance(text, str):
        raise VerificationError("a verifier key is a string")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_STRING_SIZE:
        raise VerificationError(f"key string is longer than {MAX_KEY_STRING_SIZE} bytes")
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise VerificationError("malformed key string: expected <name>+<key ID>+<base64 key>")
    name, hex_id, encoded = parts
    _check_key_name(name)
    if len(hex_id) != 8 or not all(c in "0123456789abcdef" for c in hex_id):
        raise VerificationError("malformed key string: key ID is not 8 lower-case hex digits")
    key_id = int(hex_id, 16)
    try:
        key = decode_base64(encoded)
    except VerificationError as e:
        raise VerificationError("malformed key string: key is not valid standard base64") from e
    if not key:
        raise VerificationError("malformed key string: key is empty")
    signature_type, public_key = key[0], key[1:]
    if signature_type not in (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE):
        raise VerificationError(f"unsupported signature type 0x{signature_type:02x}")
    if len(public_key) != 32:
        raise VerificationError(f"key is {len(public_key)} bytes, expected 32")
    want = _key_id(name, signature_type, public_key)
    if key_id != want:
        raise VerificationError(f"key {name}: key ID {key_id:08x} does not match the computed {want:08x}")
    if _decompress(public_key) is None:
        raise VerificationError("invalid Ed25519 public key")
    return NoteVerifier(name, key_id, signature_type, public_key)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note: key name, key ID and signature bytes."""

    name: str
    key_id: int
    signature: bytes

    def to_line(self) -> str:
        """The line, without its newline."""
        raw = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_SIGNATURE_PREFIX}{self.name} {encode_base64(raw)}"


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise VerificationError(f"signature line {number} does not start with an em dash and a space")
    rest = line[len(_SIGNATURE_PREFIX) :]
    name, sep, encoded = rest.partition(" ")
    if not sep:
        raise VerificationError(f"signature line {number} has no space between key name and signature")
    _check_key_name(name)
    try:
        decoded = decode_base64(encoded)
    except VerificationError as e:
        raise VerificationError(f"signature line {number} is not valid base64") from e
    if len(decoded) < 5:
        raise VerificationError(f"signature line {number} decodes to {len(decoded)} bytes, fewer than 5")
    return NoteSignature(name, int.from_bytes(decoded[:4], "big"), decoded[4:])


@dataclass(frozen=True)
class Note:
    """A parsed signed note: its text (ending in a newline) and its signature lines."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_bytes(self) -> bytes:
        """The note's bytes; whatever :func:`parse_note` accepts re-encodes identically."""
        return (self.text + "\n" + "".join(s.to_line() + "\n" for s in self.signatures)).encode("utf-8")

    def verify(self, verifiers: Sequence[NoteVerifier]) -> list[NoteSignature]:
        """Checks the note against ``verifiers`` (``Note::verify``): lines of unknown keys are
        ignored, a line of a known key must verify, and at least one must.

        Raises:
            VerificationError: a bad signature by a known key, no signature by a known key,
                or two verifiers for the same key.
        """
        verified = []
        for signature in self.signatures:
            known = [v for v in verifiers if v.matches(signature)]
            if not known:
                continue
            if len(known) > 1:
                raise VerificationError(f"more than one verifier for key {signature.name} ({signature.key_id:08x})")
            known[0].check(self.text, signature)
            verified.append(signature)
        if not verified:
            raise VerificationError(f"none of the {len(self.signatures)} signatures is by a known key")
        return verified


def parse_note(data: bytes) -> Note:
    """Parses a signed note (``Note::from_bytes``): at most 1 MiB, UTF-8, no control byte
    but ``\\n``, text up to the last blank line, 1 to 100 well-formed signature lines.

    Raises:
        VerificationError: for anything else.
    """
    data = _as_bytes(data)
    if len(data) > MAX_NOTE_SIZE:
        raise VerificationError(f"note is {len(data)} bytes, more than the limit of {MAX_NOTE_SIZE}")
    try:
        message = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise VerificationError(f"note is not valid UTF-8 (valid up to byte {e.start})") from e
    control = _CONTROL_BYTE.search(data)
    if control is not None:
        raise VerificationError(f"control character 0x{data[control.start()]:02x} at byte {control.start()}")
    split = message.rfind("\n\n")
    if split < 0:
        raise VerificationError("no blank line separates the note text from its signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if block == "":
        raise VerificationError("the note has no signature lines")
    count = block.count("\n")
    if not block.endswith("\n"):
        raise VerificationError(f"signature line {count + 1} is not terminated by a newline")
    if count > MAX_SIGNATURES:
        raise VerificationError(f"note has {count} signature lines, more than the limit of {MAX_SIGNATURES}")
    lines = block[:-1].split("\n")
    return Note(text, tuple(_parse_signature_line(line, i + 1) for i, line in enumerate(lines)))


# --------------------------------------------------------------------------------------
# C2SP tlog-checkpoint v1.0.0


@dataclass(frozen=True)
class Checkpoint:
    """A parsed checkpoint: origin, tree size, root hash and extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def to_text(self) -> str:
        """The checkpoint's note text."""
        lines = [self.origin, str(self.size), encode_base64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parses checkpoint text strictly (``Checkpoint::from_text``): origin, canonical
    decimal size, canonical base64 root, non-empty extension lines, newline-terminated.

    Raises:
        VerificationError: for anything else.
    """
    if not isinstance(text, str):
        raise VerificationError("checkpoint text is a string")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_NOTE_SIZE:
        raise VerificationError("checkpoint is larger than 1 MiB")
    if not text.endswith("\n"):
        raise VerificationError("checkpoint text must end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise VerificationError(f"checkpoint has {len(lines)} lines, at least 3 are required")
    origin, size_text, root_text, *extensions = lines
    if origin == "":
        raise VerificationError("empty origin")
    if any(_is_control(c) for c in origin):
        raise VerificationError("control character in line 1")
    try:
        size = parse_decimal(size_text)
    except VerificationError as e:
        raise VerificationError(f"invalid tree size: {e}") from e
    try:
        root = hash_from_base64(root_text)
    except VerificationError as e:
        raise VerificationError(f"invalid root hash: {e}") from e
    for i, extension in enumerate(extensions):
        if extension == "":
            raise VerificationError(f"extension line {i + 4} is empty")
        if any(_is_control(c) for c in extension):
            raise VerificationError(f"control character in line {i + 4}")
    return Checkpoint(origin, size, root, tuple(extensions))


def verify_checkpoint(note: Note, origin: str, verifier: NoteVerifier) -> Checkpoint:
    """Verifies a checkpoint note (``Checkpoint::verify_note``): signed by ``verifier``
    (other lines, cosignatures included, are ignored), well-formed, and for ``origin``.

    Raises:
        VerificationError: if any of these fails.
    """
    note.verify([verifier])
    checkpoint = parse_checkpoint(note.text)
    if checkpoint.origin != origin:
        raise VerificationError(f"checkpoint origin is {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint


# --------------------------------------------------------------------------------------
# C2SP tlog-proof (receipts)


@dataclass(frozen=True)
class Receipt:
    """A parsed ``c2sp.org/tlog-proof@v1`` receipt."""

    extra: bytes | None
    index: int
    proof: tuple[bytes, ...]
    checkpoint: Note

    def to_bytes(self) -> bytes:
        """The receipt's bytes; whatever :func:`parse_receipt` accepts re-encodes
        identically."""
        out = RECEIPT_HEADER + "\n"
        if self.extra is not None:
            out += f"extra {encode_base64(self.extra)}\n"
        out += f"index {self.index}\n"
        out += "".join(encode_base64(h) + "\n" for h in self.proof)
        return (out + "\n").encode("ascii") + self.checkpoint.to_bytes()


def _as_bytes(data: bytes | str) -> bytes:
    if isinstance(data, str):
        try:
            return data.encode("utf-8")
        except UnicodeEncodeError as e:
            raise VerificationError("text is not valid Unicode") from e
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise VerificationError(f"expected bytes or str, got {type(data).__name__}")


def parse_receipt(data: bytes | str) -> Receipt:
    """Parses a receipt (``Receipt::from_bytes``): header, optional ``extra``, ``index``, at
    most 64 proof hashes, a blank line, then a signed note.

    Raises:
        VerificationError: for anything else.
    """
    data = _as_bytes(data)
    if len(data) > MAX_RECEIPT_SIZE:
        raise VerificationError(f"receipt is {len(data)} bytes, more than the limit of {MAX_RECEIPT_SIZE}")
    split = data.find(b"\n\n")
    if split < 0:
        raise VerificationError("no blank line before the checkpoint")
    try:
        head = data[:split].decode("utf-8")
    except UnicodeDecodeError as e:
        raise VerificationError(f"receipt is not valid UTF-8 (valid up to byte {e.start})") from e
    lines = head.split("\n")
    if lines[0] != RECEIPT_HEADER:
        raise VerificationError(f"first line is not {RECEIPT_HEADER}")
    at = 1
    extra = None
    if at < len(lines) and lines[at].startswith("extra "):
        try:
            extra = decode_base64(lines[at][len("extra ") :])
        except VerificationError as e:
            raise VerificationError("extra data is not valid base64") from e
        at += 1
    if at >= len(lines) or not lines[at].startswith("index "):
        raise VerificationError("missing index line")
    try:
        index = parse_decimal(lines[at][len("index ") :])
    except VerificationError as e:
        raise VerificationError(f"invalid index: {e}") from e
    proof_lines = lines[at + 1 :]
    if len(proof_lines) > MAX_PROOF_HASHES:
        raise VerificationError(f"proof has {len(proof_lines)} hashes, more than the limit of {MAX_PROOF_HASHES}")
    proof = []
    for position, line in enumerate(proof_lines):
        try:
            proof.append(hash_from_base64(line))
        except VerificationError as e:
            raise VerificationError(f"proof hash {position} is invalid: {e}") from e
    try:
        note = parse_note(data[split + 2 :])
    except VerificationError as e:
        raise VerificationError(f"malformed checkpoint note: {e}") from e
    return Receipt(extra, index, tuple(proof), note)


def verify_receipt(
    log_key: str | NoteVerifier,
    entry: bytes,
    receipt: bytes | str,
    *,
    origin: str | None = None,
) -> int:
    """Verifies a ``c2sp.org/tlog-proof@v1`` receipt offline and returns the entry's index.

    Checks, as ``veritrail verify-receipt`` does: the receipt parses; its checkpoint is
    signed by ``log_key`` (a verifier key string ``name+hash+base64``) and names ``origin``
    (default: the key's name); and the inclusion proof leads from
    ``SHA-256(0x00 || entry)`` at the receipt's index to the checkpoint's root. Cosignatures
    are not checked (apply a witness policy separately). This never raises anything but
    :class:`VerificationError`.

    Args:
        log_key: the log's verifier key.
        entry: the entry's bytes (for an agent record, the leaf ``0x01 || JCS(record)``).
        receipt: the receipt text or bytes.
        origin: the log's origin, if it is not the key's name.

    Raises:
        VerificationError: the first check that failed.
    """
    try:
        verifier = log_key if isinstance(log_key, NoteVerifier) else parse_verifier_key(log_key)
        if isinstance(entry, str):
            raise VerificationError("the entry is bytes (for a record, its leaf), not str")
        entry_bytes = _as_bytes(entry)
        parsed = parse_receipt(receipt)
        if origin is None:
            origin = verifier.name
        elif not isinstance(origin, str):
            raise VerificationError("the origin is a string")
        try:
            checkpoint = verify_checkpoint(parsed.checkpoint, origin, verifier)
        except VerificationError as e:
            raise VerificationError(f"checkpoint: {e}") from e
        try:
            verify_inclusion(leaf_hash(entry_bytes), parsed.index, checkpoint.size, checkpoint.root, parsed.proof)
        except VerificationError as e:
            raise VerificationError(f"inclusion proof: {e}") from e
        return parsed.index
    except VerificationError:
        raise
    except Exception as e:  # noqa: BLE001 - the promise is: nothing but VerificationError
        raise VerificationError(f"receipt does not verify: {type(e).__name__}: {e}") from e
