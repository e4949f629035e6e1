"""Check, offline, what a bundle says about a published file.

Every envelope must verify with a trusted key; the verification summary must be about
this file (its sha256) and must name the provenance it rests on. The verdict is then
what the summary says. When an exported log proof sits beside the bundle
(``rebuild.intoto.jsonl.log.json``), :func:`verify_log_inclusion` checks that every
envelope line is in a log checkpoint signed by a trusted key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from rebuilder.attest.bundle import (
    BUNDLE_NAME,
    MAX_BUNDLE_BYTES,
    bundle_path,
    normalize_project,
    read_bundle,
)
from rebuilder.attest.bundle_proofs import (
    MAX_BUNDLE_PROOF_BYTES,
    PROOF_SUFFIX,
    BundleProof,
    bundle_lines,
    verifiers_for_note,
    verify_bundle_proof,
)
from rebuilder.attest.checkpoint import Checkpoint, NoteVerifier
from rebuilder.attest.dsse import open_statement
from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.keys import Keyring
from rebuilder.attest.statements import (
    FAILURE_PREDICATE_TYPE,
    PROVENANCE_PREDICATE_TYPE,
    VSA_EXTENSION_KEY,
    VSA_PREDICATE_TYPE,
    Statement,
    statement_digest,
)


@dataclass(frozen=True)
class FileVerification:
    """What was checked about one published file, and what its attestations say."""

    filename: str
    sha256: str
    verdict: str  # reproducible, equivalent, mismatch, failed, unsupported
    result: str | None  # PASSED / FAILED from the verification summary, None for failures
    key_ids: tuple[str, ...]  # trusted keys whose signatures verified
    stabilizers: tuple[str, ...] = ()
    differences: tuple[str, ...] = ()
    reason: str | None = None

    @property
    def passed(self) -> bool:
        return self.result == "PASSED"


def verify_bundle(
    bundle: Path, keyring: Keyring, *, sha256: str | None = None, filename: str | None = None
) -> FileVerification:
    """Verify every envelope of ``bundle`` and read the verdict about the published file.

    With ``sha256`` (a local file's), the verdict must be about exactly that file.
    Raises VerificationError / AttestationError when anything does not check.
    """
    statements: list[tuple[Statement, bytes, tuple[str, ...]]] = []
    for envelope in read_bundle(bundle):
        statement, verified = open_statement(envelope, keyring)
        statements.append((statement, verified.payload, tuple(verified.key_ids)))
    keys = tuple(sorted({k for _, _, ids in statements for k in ids}))
    summaries = [s for s in statements if s[0].predicate_type == VSA_PREDICATE_TYPE]
    failures = [s for s in statements if s[0].predicate_type == FAILURE_PREDICATE_TYPE]
    if summaries:
        summary, _, _ = summaries[0]
        subject = _subject(summary, sha256, filename)
        _check_provenance(summary, statements)
        extension = summary.predicate.get(VSA_EXTENSION_KEY, {})
        return FileVerification(
            filename=subject[0],
            sha256=subject[1],
            verdict=str(extension.get("verdict", "")),
            result=str(summary.predicate["verificationResult"]),
            key_ids=keys,
            stabilizers=tuple(
                f"{s['name']}@{s['version']}" for s in extension.get("stabilizers", ())
            ),
            differences=tuple(f"{d['kind']}:{d['path']}" for d in extension.get("differences", ())),
        )
    if failures:
        failure, _, _ = failures[0]
        subject = _subject(failure, sha256, filename)
        return FileVerification(
            filename=subject[0],
            sha256=subject[1],
            verdict=str(failure.predicate.get("verdict", "failed")),
            result=None,
            key_ids=keys,
            reason=failure.predicate.get("reason"),
        )
    raise AttestationError(f"{bundle}: no verification summary and no failure statement")


def _subject(statement: Statement, sha256: str | None, filename: str | None) -> tuple[str, str]:
    if sha256 is not None:
        found = statement.check_subject(sha256, filename)
        return found.name, sha256.lower()
    first = statement.subjects[0]
    return first.name, first.digest.get("sha256", "")


def _check_provenance(
    summary: Statement, statements: list[tuple[Statement, bytes, tuple[str, ...]]]
) -> None:
    """The summary must name, by digest, a provenance statement of the same bundle."""
    named = {a["digest"]["sha256"] for a in summary.predicate.get("inputAttestations", ())}
    for statement, payload, _ in statements:
        is_provenance = statement.predicate_type == PROVENANCE_PREDICATE_TYPE
        if is_provenance and statement_digest(json.loads(payload)) in named:
            return
    raise AttestationError("the verification summary names no provenance in its bundle")


def bundle_for_file(path: Path, attestations: Path) -> tuple[Path, str]:
    """The bundle a local file's attestations are in, and the file's sha256."""
    name = path.name
    try:
        project, version, *_ = parse_wheel_filename(name)
    except InvalidWheelFilename:
        try:
            project, version = parse_sdist_filename(name)
        except InvalidSdistFilename:
            raise AttestationError(f"{name}: not a wheel or sdist file name") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return attestations / bundle_path(project, str(version), name), digest


def bundles_for_release(project: str, version: str, attestations: Path) -> list[Path]:
    """Every file's bundle of one release found under ``attestations``."""
    try:
        version = str(Version(version))
    except InvalidVersion:
        raise AttestationError(f"{version!r} is not a valid version") from None
    folder = attestations / "pypi" / normalize_project(project) / version
    if not folder.is_dir():
        raise AttestationError(
            f"no attestations for {canonicalize_name(project)} {version} under {attestations}"
        )
    return sorted(p for p in folder.glob(f"*/{BUNDLE_NAME}") if p.is_file())


def log_proof_path(bundle: Path) -> Path:
    """Where the exported log proof of ``bundle`` sits: beside it, ``.log.json`` added."""
    return bundle.with_name(bundle.name + PROOF_SUFFIX)


def verify_log_inclusion(
    bundle: Path, keyring: Keyring, log_keys: Sequence[NoteVerifier] = ()
) -> Checkpoint | None:
    """Check the log proof beside ``bundle``; its verified checkpoint, None without one.

    The checkpoint must be signed by ``log_keys`` when given, else by an Ed25519 key of
    ``keyring`` (the keys trusted for the envelopes); every line of the bundle must be
    included under its root.

    Raises:
        VerificationError: the proof, the checkpoint or a line does not check out.
        AttestationError: the proof file is malformed.
    """
    proof_path = log_proof_path(bundle)
    if not proof_path.is_file():
        return None
    what = f"log proof of {bundle.parent.name}"
    try:
        proof = BundleProof.from_json(_read_limited(proof_path, MAX_BUNDLE_PROOF_BYTES))
        # No trusted key among the note's signers: verify_bundle_proof refuses it.
        verifiers = list(log_keys) or verifiers_for_note(proof.checkpoint, keyring)
        lines = bundle_lines(_read_limited(bundle, MAX_BUNDLE_BYTES))
        return verify_bundle_proof(lines, proof, verifiers)
    except VerificationError as exc:
        raise VerificationError(f"{what}: {exc}") from exc
    except AttestationError as exc:
        raise AttestationError(f"{what}: unreadable: {exc}") from exc


def _read_limited(path: Path, limit: int) -> bytes:
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise AttestationError(f"{path.name} is larger than {limit} bytes")
    return data
