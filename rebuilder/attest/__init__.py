"""Signed rebuild attestations and the math of a tamper-evident log.

* :mod:`~rebuilder.attest.statements` builds and validates the in-toto statements;
* :mod:`~rebuilder.attest.keys` holds keys and the :class:`~rebuilder.attest.keys.Signer`
  protocol;
* :mod:`~rebuilder.attest.dsse` signs and verifies DSSE envelopes;
* :mod:`~rebuilder.attest.bundle` reads and writes the per-file JSON-lines bundles;
* :mod:`~rebuilder.attest.merkle` and :mod:`~rebuilder.attest.checkpoint` are the
  RFC 6962 tree, its proofs, and C2SP signed-note checkpoints.

The formats are documented in ``docs/attestations.md``.
"""

from __future__ import annotations

from rebuilder.attest.errors import AttestationError, VerificationError

__all__ = ["AttestationError", "VerificationError"]
