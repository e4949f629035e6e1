"""The operator's public keys, as consumers of the attestations and the log trust them.

Only the public half is ever read: ``NAME.pub`` beside the configured signing key
(``rebuilder.attest.publish.public_key_path``). The web app never opens the private key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rebuilder.attest.checkpoint import NoteVerifier
from rebuilder.attest.keys import KeyAlgorithm, PublicKey, load_public_key
from rebuilder.attest.publish import public_key_path
from rebuilder.errors import RebuilderError
from rebuilder.settings import Settings
from rebuilder.store.log_signing import log_key_name

logger = logging.getLogger(__name__)

#: The file name of the operator's public key when downloaded.
KEY_FILE_NAME = "operator-key.pem"


@dataclass(frozen=True)
class OperatorKey:
    """One public key with its id, and the log's note verifier key when it signs the log."""

    key_id: str
    algorithm: str
    pem: str
    note_verifier: str | None


def operator_keys(settings: Settings) -> list[OperatorKey]:
    """The operator's public key(s); empty when the public key file is not there."""
    path = public_key_path(settings.signing_key_path)
    try:
        key = load_public_key(path)
    except (OSError, ValueError, RebuilderError) as exc:
        logger.warning("no operator public key at %s: %s", path, exc)
        return []
    return [
        OperatorKey(
            key_id=key.key_id,
            algorithm=key.algorithm.value,
            pem=key.to_pem(),
            note_verifier=_note_verifier(settings, key),
        )
    ]


def _note_verifier(settings: Settings, key: PublicKey) -> str | None:
    if key.algorithm is not KeyAlgorithm.ED25519:
        return None
    try:
        return NoteVerifier(log_key_name(settings), key).vkey()
    except RebuilderError as exc:
        logger.warning("no note verifier key for the log: %s", exc)
        return None
