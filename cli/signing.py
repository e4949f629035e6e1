"""The operator's checkpoint signer, loaded from the settings' key file."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rebuilder.settings import Settings
    from rebuilder.store.log_signing import LogSigning


def operator_log_signing(settings: Settings) -> LogSigning:
    """The operator's key (made on first use) and its checkpoint name.

    Raises:
        UsageError: the key is not Ed25519 or no key name is usable.
    """
    from rebuilder.attest.publish import load_or_create_key  # noqa: PLC0415 - per command
    from rebuilder.store.log_signing import log_key_name, log_signing  # noqa: PLC0415

    name = log_key_name(settings)
    signer = load_or_create_key(settings.signing_key_path)
    return log_signing(signer, name, key=f"the signing key {settings.signing_key_path}")
