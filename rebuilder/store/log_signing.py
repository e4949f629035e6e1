"""Who signs the transparency log's checkpoints: the operator's key and its note name.

The key itself is loaded by the composition root (``cli.signing``) and passed in.

Checkpoints are C2SP signed notes, so the key must be Ed25519 (the default key made by
``rebuilder key generate``). The key name written in every note is ``log_key_name``
from the settings, or else the host of ``builder_id``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from rebuilder.attest.checkpoint import NoteVerifier
from rebuilder.attest.errors import AttestationError
from rebuilder.attest.keys import Signer
from rebuilder.errors import UsageError
from rebuilder.settings import Settings

logger = logging.getLogger(__name__)


def log_key_name(settings: Settings) -> str:
    """The key name of the log's checkpoints (``log_key_name``, or builder_id's host).

    Raises:
        UsageError: neither gives a usable note key name.
    """
    name = settings.log_key_name
    if name is None:
        name = urlsplit(settings.builder_id).hostname or ""
    if not name or "+" in name or any(c.isspace() or ord(c) < 0x20 for c in name):
        raise UsageError(
            f"no usable checkpoint key name ({name!r}): set REBUILDER_LOG_KEY_NAME "
            "(one word without '+'), or a builder id URL with a host"
        )
    return name


@dataclass(frozen=True)
class LogSigning:
    """The signer of checkpoints and the name it signs as."""

    signer: Signer
    name: str

    def verifier(self) -> NoteVerifier:
        """The note verifier of this key, as consumers trust it."""
        return NoteVerifier(self.name, self.signer.public_key)


def log_signing(signer: Signer, name: str, *, key: str = "the signing key") -> LogSigning:
    """The given key and checkpoint name, once checked that the key can sign notes.

    The composition root loads the key (``cli.signing``); ``key`` names it in the error.

    Raises:
        UsageError: the key is not Ed25519.
    """
    signing = LogSigning(signer, name)
    try:
        signing.verifier()
    except AttestationError as exc:
        raise UsageError(f"{key} cannot sign checkpoints: {exc}") from exc
    return signing
