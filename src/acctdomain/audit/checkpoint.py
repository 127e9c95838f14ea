"""Signed checkpoints: the head of a store's hash chain, signed with Ed25519.

The chain alone is tamper-*evident* against edits of single rows; someone with write access
can still rewrite history and recompute every hash after it. A :class:`Checkpoint` pins the
chain: it signs (head hash, position, recorded time of the head event, chain scheme) with a
private key kept away from the database. Anyone holding only the public key can later run
:func:`check_checkpoint`: the signature must verify, the store's chain must still hold the
signed hash at the signed position (its stored row, and the chain recomputed from the genesis up
to it), and the chain must run on soundly to the store's head. A history rewritten before the
checkpoint cannot satisfy the first two without the private key.

A checkpoint file is one line of canonical JSON (sorted keys, no spaces, ASCII), with binary
fields in base64; the signature covers the same JSON without the ``signature`` field.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    KeySerializationEncryption,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from acctdomain.audit.chain import DIGEST_SIZE
from acctdomain.audit.readers import DEFAULT_PAGE_SIZE
from acctdomain.audit.scheme import CHAIN_SCHEME, b64decode, b64encode, decode_state, state_times
from acctdomain.audit.verify import (
    Progress,
    VerifyReport,
    _check_options,
    _open_reader,
    _verify,
)
from acctdomain.errors import InvalidValue

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckFailure",
    "CheckResult",
    "Checkpoint",
    "check_checkpoint",
    "generate_keys",
    "key_id",
    "load_private_key",
    "load_public_key",
    "make_checkpoint",
]

CHECKPOINT_FORMAT = "acctdomain-checkpoint"
CHECKPOINT_VERSION = 1

_SIGNATURE_SIZE = 64
_MAX_FILE_SIZE = 64 * 1024  # a checkpoint is a few hundred bytes
_FIELDS = frozenset(
    {
        "format",
        "version",
        "scheme",
        "position",
        "head_hash",
        "recorded_at",
        "signed_at",
        "key_id",
        "signature",
    }
)

PathArg = str | os.PathLike[str]


# --- keys ----------------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> bytes:
    """The SHA-256 of the raw 32-byte public key: what a checkpoint names its signer by."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).digest()


def _passphrase(passphrase: str | bytes | None) -> bytes | None:
    if passphrase is None:
        return None
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    if not isinstance(passphrase, bytes) or not passphrase:
        raise InvalidValue("passphrase", "expected a non-empty text or bytes, or None")
    return passphrase


def generate_keys(
    private_path: PathArg, public_path: PathArg, *, passphrase: str | bytes | None = None
) -> Ed25519PublicKey:
    """Make a new Ed25519 key pair and write it as two PEM files: the private key (PKCS #8,
    encrypted with ``passphrase`` if given, readable by its owner only) and the public key
    (SubjectPublicKeyInfo). Existing files are never overwritten. Returns the public key."""
    secret = _passphrase(passphrase)
    private_file, public_file = Path(private_path), Path(public_path)
    for path in (private_file, public_file):
        if path.exists():
            raise InvalidValue("path", f"{str(path)!r} exists already: keys are never overwritten")
    key = Ed25519PrivateKey.generate()
    encryption: KeySerializationEncryption = (
        NoEncryption() if secret is None else BestAvailableEncryption(secret)
    )
    _write_new(private_file, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption))
    public_key = key.public_key()
    _write_new(
        public_file, public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    public_file.chmod(0o644)
    return public_key


def _write_new(path: Path, data: bytes) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as error:
        raise InvalidValue(
            "path", f"{str(path)!r} exists already: keys are never overwritten"
        ) from error
    except OSError as error:
        raise InvalidValue("path", f"cannot write {str(path)!r}: {error}") from error
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _read_key_file(path: PathArg) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(_MAX_FILE_SIZE)
    except (OSError, TypeError) as error:
        raise InvalidValue("key", f"cannot read key file {path!r}: {error}") from error


def load_private_key(path: PathArg, passphrase: str | bytes | None = None) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file (``passphrase`` if it is encrypted)."""
    data = _read_key_file(path)
    secret = _passphrase(passphrase)
    try:
        key = load_pem_private_key(data, password=secret)
    except TypeError as error:  # encrypted without a passphrase, or the other way round
        reason = (
            "the private key is encrypted: give its passphrase"
            if secret is None
            else "the private key is not encrypted: give no passphrase"
        )
        raise InvalidValue("key", f"{path}: {reason}") from error
    except (ValueError, UnsupportedAlgorithm) as error:
        reason = (
            "not a PEM private key, or the passphrase is wrong"
            if secret is not None
            else "not a PEM private key"
        )
        raise InvalidValue("key", f"{path}: {reason}") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidValue("key", f"{path}: a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(path: PathArg) -> Ed25519PublicKey:
    """The Ed25519 public key in a PEM file."""
    data = _read_key_file(path)
    try:
        key = load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise InvalidValue("key", f"{path}: not a PEM public key") from error
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidValue("key", f"{path}: a {type(key).__name__}, not an Ed25519 public key")
    return key


# --- the checkpoint ------------------------------------------------------------------------------


def _canonical(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@attrs.frozen(kw_only=True)
class Checkpoint:
    """A signed statement that the store's chain had ``head_hash`` at ``position``."""

    position: int
    """Notification id of the head event when it was made."""
    head_hash: bytes
    """The chain hash of that event."""
    recorded_at: datetime | None
    """When that event was recorded (None if its state does not say: compressed, encrypted)."""
    signed_at: datetime
    """When the checkpoint was signed."""
    key_id: bytes
    """:func:`key_id` of the signer's public key."""
    signature: bytes
    """Ed25519 signature of :meth:`payload`."""
    scheme: str = CHAIN_SCHEME
    """The hash chain's scheme (:data:`acctdomain.audit.CHAIN_SCHEME`)."""
    version: int = CHECKPOINT_VERSION
    """The version of this file format."""

    @property
    def head_hex(self) -> str:
        """``head_hash`` in hexadecimal."""
        return self.head_hash.hex()

    def _document(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": self.version,
            "scheme": self.scheme,
            "position": self.position,
            "head_hash": b64encode(self.head_hash),
            "recorded_at": None if self.recorded_at is None else self.recorded_at.isoformat(),
            "signed_at": self.signed_at.isoformat(),
            "key_id": b64encode(self.key_id),
        }

    def payload(self) -> bytes:
        """The bytes signed: the canonical JSON of every field but the signature."""
        return _canonical(self._document()).encode("ascii")

    def to_json(self) -> str:
        """The checkpoint file's text: one line of canonical JSON."""
        return _canonical({**self._document(), "signature": b64encode(self.signature)}) + "\n"

    def save(self, path: PathArg) -> None:
        """Write :meth:`to_json` to ``path``."""
        Path(path).write_text(self.to_json(), encoding="ascii")

    @classmethod
    def from_json(cls, text: str | bytes) -> Checkpoint:
        """Read a checkpoint file's text; InvalidValue (field ``checkpoint``) if it is not one.
        The signature is not checked here (see :func:`check_checkpoint`)."""
        try:
            document = json.loads(text)
        except (UnicodeDecodeError, ValueError) as error:
            raise _malformed(f"not JSON ({error})") from error
        return _parse(document)

    @classmethod
    def load(cls, path: PathArg) -> Checkpoint:
        """Read a checkpoint file."""
        try:
            with open(path, "rb") as file:
                data = file.read(_MAX_FILE_SIZE + 1)
        except (OSError, TypeError) as error:
            raise _malformed(f"cannot read {path!r}: {error}") from error
        if len(data) > _MAX_FILE_SIZE:
            raise _malformed(f"{path}: larger than {_MAX_FILE_SIZE} bytes")
        return cls.from_json(data)


def _malformed(reason: str) -> InvalidValue:
    return InvalidValue("checkpoint", reason)


def _parse(document: Any) -> Checkpoint:
    if not isinstance(document, dict):
        raise _malformed("expected a JSON object")
    if document.get("format") != CHECKPOINT_FORMAT:
        raise _malformed(f"not an {CHECKPOINT_FORMAT} file (format {document.get('format')!r})")
    version = document.get("version")
    if version != CHECKPOINT_VERSION or isinstance(version, bool):
        raise _malformed(f"unsupported version {version!r} (this library reads version 1)")
    missing = sorted(_FIELDS - set(document))
    if missing:
        raise _malformed(f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        raise _malformed(f"unknown field(s): {', '.join(unknown)}")
    if document["scheme"] != CHAIN_SCHEME:
        raise _malformed(f"unsupported chain scheme {document['scheme']!r}")
    position = document["position"]
    if isinstance(position, bool) or not isinstance(position, int) or position < 1:
        raise _malformed(f"position: expected a notification id >= 1, got {position!r}")
    recorded = document["recorded_at"]
    return Checkpoint(
        position=position,
        head_hash=_binary(document, "head_hash", DIGEST_SIZE),
        recorded_at=None if recorded is None else _time(document, "recorded_at"),
        signed_at=_time(document, "signed_at"),
        key_id=_binary(document, "key_id", DIGEST_SIZE),
        signature=_binary(document, "signature", _SIGNATURE_SIZE),
    )


def _binary(document: dict[str, Any], field: str, size: int) -> bytes:
    value = b64decode(document[field])
    if value is None or len(value) != size:
        raise _malformed(f"{field}: expected {size} bytes in base64")
    return value


def _time(document: dict[str, Any], field: str) -> datetime:
    text = document[field]
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        moment = None
    # Exactly the text a datetime writes: the signature covers the text.
    if moment is None or moment.tzinfo is None or moment.isoformat() != text:
        raise _malformed(f"{field}: expected an ISO 8601 time with its offset, got {text!r}")
    return moment


# --- making and checking -------------------------------------------------------------------------


def make_checkpoint(
    store: Any,
    private_key: Ed25519PrivateKey,
    *,
    progress: Progress | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    now: datetime | None = None,
) -> Checkpoint:
    """Verify the store (see :func:`~acctdomain.audit.verify`, same ``store``, ``progress``
    and ``page_size``) and sign its head with ``private_key``.

    A store that fails verification, or holds no events, is refused (InvalidValue, field
    ``store``): a checkpoint vouches only for a sound chain. ``now`` is the signing time
    (default: the current time)."""
    if not isinstance(private_key, Ed25519PrivateKey):
        raise InvalidValue(
            "key", f"expected an Ed25519 private key, got {type(private_key).__name__}"
        )
    signed_at = datetime.now(UTC) if now is None else now
    if not isinstance(signed_at, datetime) or signed_at.tzinfo is None:
        raise InvalidValue("now", f"expected a timezone-aware datetime, got {now!r}")
    _check_options(progress, page_size)
    with _open_reader(store) as reader:
        report = _verify(reader, progress, page_size)
        if not report.ok:
            assert report.problem is not None
            raise InvalidValue(
                "store",
                f"the chain is broken at position {report.problem.position} "
                f"({report.problem.kind}: {report.problem.detail}); only a sound chain is signed",
            )
        if report.checked == 0:
            raise InvalidValue("store", "the store holds no events: there is nothing to sign")
        head = reader.row_at(report.head_position)
    assert head is not None
    recorded_text = state_times(decode_state(head[4]))[0]
    recorded_at: datetime | None = None
    if recorded_text is not None:
        try:
            recorded_at = datetime.fromisoformat(recorded_text)
        except ValueError:
            recorded_at = None
        if recorded_at is not None and (
            recorded_at.tzinfo is None or recorded_at.isoformat() != recorded_text
        ):
            recorded_at = None
    unsigned = Checkpoint(
        position=report.head_position,
        head_hash=report.head_hash,
        recorded_at=recorded_at,
        signed_at=signed_at,
        key_id=key_id(private_key.public_key()),
        signature=b"",
    )
    return attrs.evolve(unsigned, signature=private_key.sign(unsigned.payload()))


class CheckFailure(StrEnum):
    """Why a store does not extend a (genuine) checkpoint."""

    HISTORY_REWRITTEN = "history rewritten"
    """The store's chain no longer holds the signed hash at the signed position (or has no
    event there): history up to the checkpoint was rewritten, and its chain recomputed."""
    CHAIN_BROKEN = "chain broken"
    """The chain row at the checkpoint still holds the signed hash, but the chain recomputed
    from the genesis does not reach it: an event at or before the checkpoint was changed,
    removed, added or moved."""
    NOT_EXTENDED = "not extended"
    """The checkpoint's history is intact, but the chain is broken after it: the store does
    not extend the checkpoint soundly to its head."""


@attrs.frozen(kw_only=True)
class CheckResult:
    """What :func:`check_checkpoint` found."""

    ok: bool
    """True when the store still extends the checkpoint soundly."""
    checkpoint: Checkpoint
    reason: CheckFailure | None
    """Why not, None when ok."""
    detail: str
    """A sentence saying what was found."""
    report: VerifyReport | None
    """The verification of the whole chain (None when the signed hash was already missing)."""


def check_checkpoint(
    store: Any,
    checkpoint: Checkpoint,
    public_key: Ed25519PublicKey,
    *,
    progress: Progress | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> CheckResult:
    """Check that ``store`` still extends ``checkpoint``, with the signer's public key only.

    First the checkpoint itself: it must be signed by ``public_key`` (else InvalidValue with
    field ``key``) and its signature must verify (else field ``signature``: it was changed after
    it was signed). Then the store, read in one snapshot: it must reach the position (else
    field ``position``), its chain row there must hold the signed hash, and the chain,
    recomputed from the genesis in pages of ``page_size`` (``progress(done, total)`` after each),
    must run through it to the head. A store that does not is a :class:`CheckResult` with
    ``ok`` False and a :class:`CheckFailure`. In-memory stores raise StoreConfigurationError.
    """
    if not isinstance(checkpoint, Checkpoint):
        raise InvalidValue(
            "checkpoint", f"expected a Checkpoint (Checkpoint.load(path)), got {checkpoint!r}"
        )
    if not isinstance(public_key, Ed25519PublicKey):
        raise InvalidValue(
            "key", f"expected an Ed25519 public key, got {type(public_key).__name__}"
        )
    _check_options(progress, page_size)
    given = key_id(public_key)
    if given != checkpoint.key_id:
        raise InvalidValue(
            "key",
            f"the checkpoint was signed by key {checkpoint.key_id.hex()[:16]}, "
            f"not by the key given ({given.hex()[:16]})",
        )
    try:
        public_key.verify(checkpoint.signature, checkpoint.payload())
    except InvalidSignature as error:
        raise InvalidValue(
            "signature",
            "the signature does not verify: the checkpoint was changed after it was signed",
        ) from error
    position = checkpoint.position
    with _open_reader(store) as reader:
        last = reader.last_position()
        if last < position:
            raise InvalidValue(
                "position",
                f"the checkpoint was made at position {position} but the store ends at "
                f"{last}: it is another store's, or this one lost its latest events",
            )
        row = reader.row_at(position)
        if row is None or row[1] is None:
            return _failed(
                checkpoint,
                CheckFailure.HISTORY_REWRITTEN,
                f"the store has no event at position {position}, which the checkpoint signed",
            )
        if row[5] is not None and row[5] != checkpoint.head_hash:
            return _failed(
                checkpoint,
                CheckFailure.HISTORY_REWRITTEN,
                f"the chain holds hash {row[5].hex()[:16]} at position {position} where the "
                f"checkpoint signed {checkpoint.head_hex[:16]}: history up to it was rewritten",
            )
        report = _verify(reader, progress, page_size)
    if report.ok:
        return CheckResult(
            ok=True,
            checkpoint=checkpoint,
            reason=None,
            detail=f"the store extends the checkpoint at position {position} to its head at "
            f"{report.head_position} ({report.checked} events)",
            report=report,
        )
    problem = report.problem
    assert problem is not None
    where = f"{problem.kind} at position {problem.position}: {problem.detail}"
    if problem.position <= position:
        return _failed(
            checkpoint,
            CheckFailure.CHAIN_BROKEN,
            f"the chain does not reach the checkpoint at position {position}: {where}",
            report,
        )
    return _failed(
        checkpoint,
        CheckFailure.NOT_EXTENDED,
        f"history up to the checkpoint is intact, but the chain breaks after it: {where}",
        report,
    )


def _failed(
    checkpoint: Checkpoint, reason: CheckFailure, detail: str, report: VerifyReport | None = None
) -> CheckResult:
    return CheckResult(ok=False, checkpoint=checkpoint, reason=reason, detail=detail, report=report)
