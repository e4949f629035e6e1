"""Sign what a rebuild found and publish it as a bundle, from the recorded evidence.

Attestations are made from the evidence folder (``strategy.json``) and the file's
result, so what is signed is exactly what was recorded.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rebuilder.attest.bundle import sign_bundle, statements_for, write_bundle
from rebuilder.attest.dsse import Envelope
from rebuilder.attest.environment import ImageDescriber, build_environment
from rebuilder.attest.errors import AttestationError
from rebuilder.attest.keys import (
    KeyAlgorithm,
    LocalKeySigner,
    Signer,
    generate_key,
    load_private_key,
    save_private_key,
    save_public_key,
)
from rebuilder.attest.ossrebuild import (
    OSS_REBUILD_FOLDER,
    oss_rebuild_statements,
    stabilized_sha256,
)
from rebuilder.attest.statements import BuildEnvironment, BuildRun, Verification
from rebuilder.plan.strategy import Strategy
from rebuilder.verdict import FileResult, Verdict

logger = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Attestor:
    """Signs statements about judged files and writes them under ``root``."""

    signer: Signer
    builder_id: str
    root: Path
    clock: Callable[[], datetime] = _now
    describe_image: ImageDescriber | None = None  # the image's packages, recipe, tarball
    oss_rebuild: bool = False  # also write OSS Rebuild's two statements for PASSED files

    def attest(self, result: FileResult) -> Path:
        """Write the signed bundle of ``result``; the bundle's path."""
        made = self._made(result)
        envelopes = self._sign(result, made)
        self.root.mkdir(parents=True, exist_ok=True)
        path = write_bundle(self.root, result.project, result.version, result.filename, envelopes)
        if self.oss_rebuild:
            self._attest_oss_rebuild(result, made)
        return path

    def sign(self, result: FileResult) -> list[Envelope]:
        """The signed statements about ``result``, in bundle order (see statements_for)."""
        return self._sign(result, self._made(result))

    def _made(self, result: FileResult) -> _Made:
        finished = self.clock()
        strategy = _recorded_strategy(result)
        run = BuildRun(
            builder_id=self.builder_id,
            invocation_id=f"urn:uuid:{uuid.uuid4()}",
            started_on=finished - timedelta(seconds=result.seconds),
            finished_on=finished,
        )
        verification = Verification(verifier_id=self.builder_id, time_verified=finished)
        environment = None
        if strategy is not None and result.rebuilt_sha256 is not None:
            evidence = Path(result.evidence) if result.evidence else None
            environment = build_environment(
                strategy.image, evidence=evidence, describe=self.describe_image
            )
        return _Made(strategy, run, verification, environment)

    def _sign(self, result: FileResult, made: _Made) -> list[Envelope]:
        statements = statements_for(
            result, made.strategy, made.run, made.verification, made.environment
        )
        return sign_bundle(statements, self.signer)

    def _attest_oss_rebuild(self, result: FileResult, made: _Made) -> Path | None:
        """OSS Rebuild's bundle of a PASSED file, in its storage layout; None for others."""
        if result.verdict not in {Verdict.REPRODUCIBLE, Verdict.EQUIVALENT}:
            return None
        rebuilt = _rebuilt_file(result)
        if made.strategy is None or rebuilt is None:
            logger.warning("%s: no recorded rebuild, no OSS Rebuild statements", result.filename)
            return None
        statements = oss_rebuild_statements(
            result, made.strategy, made.run, made.environment, stabilized_sha256(rebuilt)
        )
        root = self.root / OSS_REBUILD_FOLDER
        root.mkdir(parents=True, exist_ok=True)
        envelopes = sign_bundle(statements, self.signer)
        return write_bundle(root, result.project, result.version, result.filename, envelopes)


@dataclass(frozen=True)
class _Made:
    """What one signing of a result rests on (shared by both bundles it may write)."""

    strategy: Strategy | None
    run: BuildRun
    verification: Verification
    environment: BuildEnvironment | None


def _rebuilt_file(result: FileResult) -> Path | None:
    if result.evidence is None:
        return None
    found = sorted((Path(result.evidence) / "rebuilt").glob("*.whl"))
    return found[0] if len(found) == 1 else None


def _recorded_strategy(result: FileResult) -> Strategy | None:
    if result.evidence is None:
        return None
    path = Path(result.evidence) / "strategy.json"
    if not path.is_file():
        return None
    try:
        return Strategy.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise AttestationError(f"{path}: not a strategy this version can read: {exc}") from None


def load_or_create_key(path: Path) -> LocalKeySigner:
    """The operator's signing key at ``path``; a new Ed25519 key is made on first use."""
    if path.exists():
        return load_private_key(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    signer = generate_key(KeyAlgorithm.ED25519)
    save_private_key(signer, path)
    save_public_key(signer.public_key, public_key_path(path))
    logger.warning("made a new signing key %s (key id %s)", path, signer.key_id)
    return signer


def public_key_path(private_key: Path) -> Path:
    """Where the public half of ``private_key`` is kept: ``NAME.pub`` beside it."""
    return private_key.with_suffix(".pub")
