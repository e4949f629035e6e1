"""Errors of the attestation layer."""

from __future__ import annotations

from rebuilder.errors import RebuilderError


class AttestationError(RebuilderError):
    """An attestation, key, proof or checkpoint is malformed or could not be made."""


class VerificationError(AttestationError):
    """A signature, digest, proof or checkpoint did not verify: do not trust the input."""
