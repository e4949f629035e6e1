"""DSSE envelopes (Dead Simple Signing Envelope, v1.0).

The signature covers the Pre-Authentication Encoding (PAE) of the payload type and the
payload, never the JSON of the envelope, so the envelope's own serialization needs no
canonical form. Envelopes read from disk or the network are untrusted: :func:`parse_envelope`
validates their shape and sizes, and :func:`verify_envelope` accepts one only when at least
one signature verifies with a trusted key.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.keys import Keyring, Signer
from rebuilder.attest.statements import (
    Statement,
    canonical_json,
    parse_statement,
    validate_statement,
)

logger = logging.getLogger(__name__)

PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""The payload type of every envelope we write: an in-toto Statement."""

MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
MAX_SIGNATURES = 16
_MAX_SIGNATURE_BYTES = 1024
_MAX_KEYID = 256


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 Pre-Authentication Encoding: the exact bytes that are signed.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload``, lengths as ASCII decimal
    of the byte lengths.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    """One signature of an envelope; ``keyid`` is an unauthenticated hint."""

    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope, decoded (payload and signatures as bytes)."""

    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]

    def to_json(self) -> dict[str, Any]:
        """The envelope's JSON object (standard base64 with padding, as DSSE recommends)."""
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }

    def dumps(self) -> str:
        """The envelope as one line of JSON (no newline), for JSON-lines bundles."""
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class VerifiedPayload:
    """A payload whose envelope verified, and the trusted keys that vouched for it."""

    payload: bytes
    payload_type: str
    key_ids: tuple[str, ...]


def sign_envelope(
    payload: bytes, signers: Signer | Sequence[Signer], payload_type: str = PAYLOAD_TYPE
) -> Envelope:
    """Sign ``payload`` with every signer (at least one) and wrap it in an envelope."""
    chosen = [signers] if isinstance(signers, Signer) else list(signers)
    if not chosen:
        raise AttestationError("signing needs at least one signer")
    message = pae(payload_type, payload)
    signatures = tuple(Signature(s.key_id, s.sign(message)) for s in chosen)
    return Envelope(payload, payload_type, signatures)


def verify_envelope(
    envelope: Envelope, trusted: Keyring, payload_type: str = PAYLOAD_TYPE
) -> VerifiedPayload:
    """Check that at least one signature verifies with a trusted key.

    Key ids are only hints (DSSE does not authenticate them): each signature is tried
    against the key its id names first and then against every other trusted key, so an
    envelope with a missing or stale key id still verifies when its signature is good.

    Raises:
        VerificationError: wrong payload type, or no signature verified.
    """
    if envelope.payload_type != payload_type:
        raise VerificationError(
            f"payload type {envelope.payload_type!r} is not the expected {payload_type!r}"
        )
    if not envelope.signatures:
        raise VerificationError("the envelope carries no signature")
    if len(envelope.signatures) > MAX_SIGNATURES:
        raise VerificationError(f"more than {MAX_SIGNATURES} signatures")
    message = pae(envelope.payload_type, envelope.payload)
    verified: list[str] = []
    for signature in envelope.signatures:
        hinted = trusted.get(signature.keyid)
        candidates = [hinted] if hinted else []
        candidates += [k for k in trusted if k is not hinted]
        for key in candidates:
            if key.key_id not in verified and key.verify(signature.sig, message):
                verified.append(key.key_id)
                break
    if not verified:
        raise VerificationError("no signature verifies with a trusted key")
    logger.debug("envelope verified by %s", ", ".join(verified))
    return VerifiedPayload(envelope.payload, envelope.payload_type, tuple(verified))


def parse_envelope(data: str | bytes | Mapping[str, Any]) -> Envelope:
    """Decode an untrusted envelope (JSON text, bytes, or an already-parsed object).

    Raises:
        AttestationError: not a well-formed DSSE envelope.
    """
    obj: Any
    if isinstance(data, str | bytes):
        if len(data) > MAX_ENVELOPE_BYTES:
            raise AttestationError("envelope too large")
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AttestationError(f"envelope is not JSON: {exc}") from exc
    else:
        obj = data
    if not isinstance(obj, Mapping):
        raise AttestationError("envelope is not a JSON object")
    payload_b64 = obj.get("payload")
    payload_type = obj.get("payloadType")
    raw_signatures = obj.get("signatures")
    if not isinstance(payload_b64, str):
        raise AttestationError("envelope.payload must be a string")
    if not isinstance(payload_type, str) or not payload_type:
        raise AttestationError("envelope.payloadType must be a non-empty string")
    if not isinstance(raw_signatures, list) or not raw_signatures:
        raise AttestationError("envelope.signatures must be a non-empty list")
    if len(raw_signatures) > MAX_SIGNATURES:
        raise AttestationError(f"envelope has more than {MAX_SIGNATURES} signatures")
    signatures = tuple(_parse_signature(raw) for raw in raw_signatures)
    return Envelope(b64decode(payload_b64, "envelope.payload"), payload_type, signatures)


def _parse_signature(raw: Any) -> Signature:  # noqa: ANN401 - untrusted JSON
    if not isinstance(raw, Mapping):
        raise AttestationError("each signature must be a JSON object")
    keyid = raw.get("keyid", "")
    sig = raw.get("sig")
    if not isinstance(keyid, str) or len(keyid) > _MAX_KEYID:
        raise AttestationError("signature.keyid must be a short string")
    if not isinstance(sig, str):
        raise AttestationError("signature.sig must be a string")
    sig_bytes = b64decode(sig, "signature.sig")
    if not sig_bytes or len(sig_bytes) > _MAX_SIGNATURE_BYTES:
        raise AttestationError("signature.sig has an implausible length")
    return Signature(keyid, sig_bytes)


def b64decode(text: str, what: str) -> bytes:
    """Strict base64: standard or URL-safe alphabet (DSSE allows both), padding optional."""
    normalized = text.replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        return base64.b64decode(normalized, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AttestationError(f"{what} is not valid base64") from exc


def sign_statement(statement: Mapping[str, Any], signers: Signer | Sequence[Signer]) -> Envelope:
    """Validate an in-toto statement and sign its canonical JSON."""
    validate_statement(statement)
    return sign_envelope(canonical_json(statement), signers, PAYLOAD_TYPE)


def open_statement(envelope: Envelope, trusted: Keyring) -> tuple[Statement, VerifiedPayload]:
    """Verify an envelope, then parse and validate the in-toto statement inside.

    The payload is only parsed after its signature verified.

    Raises:
        VerificationError: the signature does not verify with a trusted key.
        AttestationError: the signed payload is not a valid statement.
    """
    verified = verify_envelope(envelope, trusted, PAYLOAD_TYPE)
    return parse_statement(verified.payload), verified
