"""Check, offline, what a bundle says about a published file.

Every envelope must verify with a trusted key and be of a predicate type this verifier
knows. Every summary and failure statement must be about *this* file: subject name,
subject sha256 and ``resourceUri`` (the package URL naming project, version and file).
A summary must be consistent in itself (result, verdict, levels, stabilizers,
differences), name only stabilizers the comparer has, and rest on a provenance statement
of the same bundle whose subject is the ``rebuiltSha256`` it states. The decision does
not depend on the order of the lines (see :func:`decide`).

When an exported log proof sits beside the bundle (``rebuild.intoto.jsonl.log.json``),
:func:`verify_log_inclusion` checks that every envelope line is in a log checkpoint
signed by a trusted key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

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
    BUILD_TYPE,
    FAILURE_PREDICATE_TYPE,
    LEVEL_EQUIVALENT,
    LEVEL_FAILED,
    LEVEL_REPRODUCIBLE,
    PROVENANCE_PREDICATE_TYPE,
    SOURCE_CHECK_PREDICATE_TYPE,
    VSA_EXTENSION_KEY,
    VSA_PREDICATE_TYPE,
    Statement,
    provenance_commit,
    rfc3339,
    statement_digest,
)
from rebuilder.compare.stabilizers import STABILIZERS, ZIP_LAYOUT
from rebuilder.verdict import Verdict

SOURCE_BUNDLE_NAME = "source.intoto.jsonl"
"""The source check's bundle beside an sdist's (written by rebuilder.source.attest)."""


@dataclass(frozen=True)
class ExpectedFile:
    """The published file a bundle must be about: its release, name and sha256.

    In spec mode these come from the index (or ``--file``); in file mode from the file
    itself. A statement counts only when its subject name and digest *and* its
    ``resourceUri`` all name this file.
    """

    project: str
    version: str
    filename: str
    sha256: str

    @property
    def is_sdist(self) -> bool:
        return not self.filename.endswith(".whl")

    def describe(self) -> str:
        return f"{self.filename} (sha256 {self.sha256[:16]}...)"


@dataclass(frozen=True)
class Weighed:
    """One trusted statement about the file that the decision took into account."""

    line: int
    kind: str  # "summary" or "failure"
    passed: bool
    verdict: str
    time: datetime
    digest: str  # sha256 of the statement

    def __str__(self) -> str:
        if self.kind == "failure":
            what = f"failure statement ({self.verdict})"
        else:
            what = f"summary {'PASSED' if self.passed else 'FAILED'} ({self.verdict})"
        return f"line {self.line}: {what} at {rfc3339(self.time)}, statement {self.digest[:12]}"


@dataclass(frozen=True)
class FileVerification:
    """What was checked about one published file, and what its attestations say."""

    filename: str
    sha256: str
    verdict: str  # reproducible, equivalent, mismatch, failed, unsupported
    result: str | None  # PASSED / FAILED as decided, None when nothing says either
    key_ids: tuple[str, ...]  # trusted keys whose signatures verified
    stabilizers: tuple[str, ...] = ()
    differences: tuple[str, ...] = ()
    reason: str | None = None
    weighed: tuple[Weighed, ...] = ()
    decision: str = ""
    log: str | None = None  # the log inclusion outcome, None when no proof sat beside it
    log_ok: bool | None = None  # None: no log proof beside the bundle
    status: str = ""  # PASSED, FAILED, NOT VERIFIED, NOT REBUILT (see release_status)
    counts: bool = True  # False: listed, but does not decide the release (an sdist)
    route: str | None = None  # the git-tag route, when the deciding summary took it

    @property
    def passed(self) -> bool:
        return self.result == "PASSED"

    @property
    def only_unsupported(self) -> bool:
        """Nothing but ``unsupported`` failure statements: the file was not rebuilt."""
        return bool(self.weighed) and all(
            w.kind == "failure" and w.verdict == Verdict.UNSUPPORTED.value for w in self.weighed
        )

    @property
    def ok(self) -> bool:
        """True unless this file makes the release (or the file asked about) fail."""
        return self.status == "PASSED" or not self.counts


def accepted_stabilizers() -> frozenset[str]:
    """Every stabilizer (``name@version``) a summary may name: the comparer's registry."""
    return frozenset({str(s.use) for s in STABILIZERS} | {str(ZIP_LAYOUT)})


_KNOWN_PREDICATES = frozenset(
    {PROVENANCE_PREDICATE_TYPE, VSA_PREDICATE_TYPE, FAILURE_PREDICATE_TYPE}
)
_PASSED_LEVELS = {
    Verdict.REPRODUCIBLE.value: [LEVEL_REPRODUCIBLE],
    Verdict.EQUIVALENT.value: [LEVEL_EQUIVALENT],
}


def verify_bundle(
    bundle: Path,
    keyring: Keyring,
    expected: ExpectedFile,
    *,
    log_keys: Sequence[NoteVerifier] = (),
) -> FileVerification:
    """Verify every envelope of ``bundle`` and decide what it says about ``expected``.

    Every line must verify with a trusted key, be of a predicate type this verifier
    knows, and be about ``expected`` (summaries and failure statements) or be the
    provenance a summary names. Summaries must be consistent in themselves. The decision
    does not depend on the order of the lines: any FAILED summary or failure statement
    wins, unless a PASSED summary verified later supersedes every one of them *and* the
    log proof beside the bundle shows all lines. A log proof that does not check makes
    the file FAILED.

    Raises:
        VerificationError / AttestationError: a line does not check or is not about
        ``expected``; the bundle is refused.
    """
    opened: list[tuple[int, Statement, str, tuple[str, ...]]] = []
    for line, envelope in enumerate(read_bundle(bundle), start=1):
        statement, verified = open_statement(envelope, keyring)
        if statement.predicate_type not in _KNOWN_PREDICATES:
            raise AttestationError(
                f"line {line}: unknown predicate type {statement.predicate_type}: refused"
            )
        digest = statement_digest(json.loads(verified.payload))
        opened.append((line, statement, digest, tuple(verified.key_ids)))
    keys = tuple(sorted({k for *_, ids in opened for k in ids}))
    provenances = {
        digest: (line, s)
        for line, s, digest, _ in opened
        if s.predicate_type == PROVENANCE_PREDICATE_TYPE
    }
    for line, statement in provenances.values():
        build_type = statement.predicate["buildDefinition"]["buildType"]
        if build_type != BUILD_TYPE:
            raise AttestationError(f"line {line}: unknown build type {build_type}: refused")
    weighed: list[Weighed] = []
    details: dict[str, Mapping[str, Any]] = {}
    for line, statement, digest, _ in opened:
        if statement.predicate_type == PROVENANCE_PREDICATE_TYPE:
            continue
        _check_binding(line, statement, expected)
        if statement.predicate_type == VSA_PREDICATE_TYPE:
            weighed.append(_check_summary(line, statement, digest, expected, provenances))
        else:
            weighed.append(_failure(line, statement, digest))
        details[digest] = statement.predicate
    if not weighed:
        raise AttestationError(f"{bundle}: no verification summary and no failure statement")
    log, log_ok = _log_inclusion(bundle, keyring, log_keys)
    result, deciding, decision = decide(weighed, log_verified=log_ok is True)
    if log_ok is False:
        result, decision = "FAILED", f"the log inclusion check failed: {log}"
    predicate = details[deciding.digest]
    extension = predicate.get(VSA_EXTENSION_KEY, {}) if deciding.kind == "summary" else {}
    return FileVerification(
        filename=expected.filename,
        sha256=expected.sha256,
        verdict=deciding.verdict,
        result=result,
        key_ids=keys,
        stabilizers=tuple(f"{s['name']}@{s['version']}" for s in extension.get("stabilizers", ())),
        differences=tuple(f"{d['kind']}:{d['path']}" for d in extension.get("differences", ())),
        reason=predicate.get("reason") if deciding.kind == "failure" else None,
        weighed=tuple(sorted(weighed, key=lambda w: (w.time, w.digest))),
        decision=decision,
        log=log,
        log_ok=log_ok,
        status=_status(result, deciding, log_ok),
        route=route_line(extension),
    )


def _status(result: str, deciding: Weighed, log_ok: bool | None) -> str:
    if result == "PASSED":
        return "PASSED"
    if deciding.kind == "failure" and log_ok is not False:
        return "NOT VERIFIED"  # failed or not rebuilt: nothing says the file differs
    return "FAILED"


def decide(weighed: Sequence[Weighed], *, log_verified: bool) -> tuple[str, Weighed, str]:
    """The outcome of the trusted statements about one file, whatever their order.

    Returns (PASSED or FAILED, the deciding statement, why).
    """
    ordered = sorted(weighed, key=lambda w: (w.time, w.digest))
    negatives = [w for w in ordered if not w.passed]
    positives = [w for w in ordered if w.passed]
    if not negatives:
        return "PASSED", positives[-1], f"{len(positives)} PASSED summary(ies), nothing against"
    newest_negative = negatives[-1]
    newer = [p for p in positives if p.time > newest_negative.time]
    if newer and log_verified:
        why = (
            f"the PASSED summary of {rfc3339(newer[-1].time)} supersedes "
            f"{len(negatives)} earlier FAILED statement(s); the log shows them all"
        )
        return "PASSED", newer[-1], why
    if newer:
        why = (
            f"a newer PASSED summary ({rfc3339(newer[-1].time)}) cannot supersede the FAILED "
            "statement without a log proof showing both"
        )
        return "FAILED", newest_negative, why
    return "FAILED", newest_negative, f"FAILED statement of {rfc3339(newest_negative.time)} stands"


def _check_binding(line: int, statement: Statement, expected: ExpectedFile) -> None:
    """Subject name, subject digest and resourceUri must all name ``expected``."""
    names = ", ".join(s.name for s in statement.subjects)
    try:
        statement.check_subject(expected.sha256, expected.filename)
    except VerificationError:
        raise VerificationError(
            f"line {line}: not about {expected.describe()} of {expected.project} "
            f"{expected.version}: its subjects are {names}"
        ) from None
    uri = statement.predicate.get("resourceUri")
    if not isinstance(uri, str) or not purl_names(uri, expected):
        raise VerificationError(
            f"line {line}: its resourceUri {uri!r} does not name {expected.filename} of "
            f"{expected.project} {expected.version}"
        )


def purl_names(uri: str, expected: ExpectedFile) -> bool:
    """True when the package URL ``uri`` names exactly the file ``expected``."""
    match = _PYPI_PURL.fullmatch(uri)
    if match is None:
        return False
    name, version, filename = (unquote(g) for g in match.groups())
    try:
        same_version = Version(version) == Version(expected.version)
    except InvalidVersion:
        same_version = version == expected.version
    return (
        canonicalize_name(name) == canonicalize_name(expected.project)
        and same_version
        and filename == expected.filename
    )


_PYPI_PURL = re.compile(r"pkg:pypi/([^@?#/]+)@([^?#/]+)\?file_name=([^&#]+)")


def _time(line: int, predicate: Mapping[str, Any]) -> datetime:
    value = predicate.get("timeVerified")
    if not isinstance(value, str):
        raise AttestationError(f"line {line}: no timeVerified, so it cannot be weighed")
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value))


def _check_summary(
    line: int,
    summary: Statement,
    digest: str,
    expected: ExpectedFile,
    provenances: Mapping[str, tuple[int, Statement]],
) -> Weighed:
    """A VSA consistent in itself and resting on a provenance of the same bundle."""
    predicate = summary.predicate
    where = f"line {line}: inconsistent summary"
    extension = predicate.get(VSA_EXTENSION_KEY)
    if not isinstance(extension, Mapping):
        raise AttestationError(f"{where}: no {VSA_EXTENSION_KEY} verdict")
    verdict = extension["verdict"]
    result = predicate["verificationResult"]
    levels = predicate["verifiedLevels"]
    stabilizers = [_stabilizer(line, s) for s in extension["stabilizers"]]
    differences = extension["differences"]
    if result == "PASSED":
        if verdict not in _PASSED_LEVELS:
            raise AttestationError(f"{where}: PASSED with verdict {verdict}")
        if levels != _PASSED_LEVELS[verdict]:
            raise AttestationError(f"{where}: PASSED {verdict} with levels {levels}")
        if differences:
            raise AttestationError(f"{where}: PASSED with {len(differences)} differences")
        if (verdict == Verdict.EQUIVALENT.value) != bool(stabilizers):
            raise AttestationError(f"{where}: {verdict} with stabilizers {stabilizers}")
    else:
        if verdict != Verdict.MISMATCH.value or levels != [LEVEL_FAILED]:
            raise AttestationError(f"{where}: FAILED with verdict {verdict}, levels {levels}")
        if not differences:
            raise AttestationError(f"{where}: a mismatch naming no difference")
    unknown = sorted(set(stabilizers) - accepted_stabilizers())
    if unknown:
        raise AttestationError(
            f"line {line}: unknown stabilizer {', '.join(unknown)}: refused (this verifier "
            f"accepts {', '.join(sorted(accepted_stabilizers()))})"
        )
    _check_provenance(line, summary, expected, provenances)
    if extension.get("source") == "git":
        _check_git_route(line, summary, provenances)
    return Weighed(
        line, "summary", result == "PASSED", str(verdict), _time(line, predicate), digest
    )


def _stabilizer(line: int, raw: Any) -> str:  # noqa: ANN401 - untrusted JSON
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise AttestationError(f"line {line}: a stabilizer must have a name and a version")
    return f"{raw['name']}@{raw.get('version')}"


def _failure(line: int, statement: Statement, digest: str) -> Weighed:
    verdict = str(statement.predicate["verdict"])
    return Weighed(line, "failure", False, verdict, _time(line, statement.predicate), digest)


def _check_provenance(
    line: int,
    summary: Statement,
    expected: ExpectedFile,
    provenances: Mapping[str, tuple[int, Statement]],
) -> None:
    """Every attestation the summary names is a provenance of this bundle, for this
    file, whose subject is the ``rebuiltSha256`` the summary states."""
    rebuilt = summary.predicate[VSA_EXTENSION_KEY].get("rebuiltSha256")
    named = summary.predicate.get("inputAttestations", ())
    if not named:
        raise AttestationError(f"line {line}: the verification summary names no provenance")
    for attestation in named:
        digest = attestation.get("digest", {}).get("sha256")
        if digest not in provenances:
            raise AttestationError(
                f"line {line}: the verification summary names a provenance "
                f"({str(digest)[:12]}) that is not in its bundle"
            )
        _, provenance = provenances[digest]
        if not isinstance(rebuilt, str):
            raise AttestationError(f"line {line}: the summary states no rebuiltSha256")
        try:
            provenance.check_subject(rebuilt, expected.filename)
        except VerificationError:
            raise AttestationError(
                f"line {line}: the provenance it names is about "
                f"{', '.join(s.name for s in provenance.subjects)}, not the rebuilt "
                f"{expected.filename} (sha256 {rebuilt[:16]}...)"
            ) from None


def _check_git_route(
    line: int, summary: Statement, provenances: Mapping[str, tuple[int, Statement]]
) -> None:
    """A summary of the git-tag route rests on a provenance built from that very commit."""
    commit = summary.predicate[VSA_EXTENSION_KEY]["git"]["digest"]["gitCommit"]
    for attestation in summary.predicate.get("inputAttestations", ()):
        _, provenance = provenances[attestation["digest"]["sha256"]]
        if provenance_commit(provenance.predicate) != commit:
            raise AttestationError(
                f"line {line}: the summary says the file was rebuilt from git commit "
                f"{commit[:12]}, its provenance does not name that commit"
            )


def route_line(extension: Mapping[str, Any]) -> str | None:
    """``rebuilt from git tag v1.0 @ abc123def456 (built from the tree)`` for the git route."""
    if extension.get("source") != "git":
        return None
    git = extension.get("git")
    if not isinstance(git, Mapping):
        return None
    annotations = git.get("annotations") or {}
    commit = str((git.get("digest") or {}).get("gitCommit", "?"))[:12]
    tag = annotations.get("tag") if isinstance(annotations, Mapping) else None
    where = f"git tag {tag} @ {commit}" if tag else f"git commit {commit}"
    return f"rebuilt from {where} (built from the {git.get('builtFrom', 'sdist')})"


def _log_inclusion(
    bundle: Path, keyring: Keyring, log_keys: Sequence[NoteVerifier]
) -> tuple[str | None, bool | None]:
    try:
        head = verify_log_inclusion(bundle, keyring, log_keys)
    except AttestationError as exc:
        return exc.diagnostics(), False
    if head is None:
        return None, None
    return f"verified (checkpoint {head.size})", True


def bundle_for_file(path: Path, attestations: Path) -> tuple[Path, ExpectedFile]:
    """The bundle a local file's attestations are in, and what they must be about."""
    name = path.name
    project, version = parse_filename(name)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    expected = ExpectedFile(project, version, name, digest)
    return attestations / bundle_path(project, version, name), expected


def parse_filename(name: str) -> tuple[str, str]:
    """The project and version a wheel or sdist file name states."""
    try:
        project, version, *_ = parse_wheel_filename(name)
    except InvalidWheelFilename:
        try:
            project, version = parse_sdist_filename(name)
        except InvalidSdistFilename:
            raise AttestationError(f"{name}: not a wheel or sdist file name") from None
    return str(project), str(version)


def release_bundle(expected: ExpectedFile, attestations: Path) -> Path:
    """Where the bundle about ``expected`` sits under ``attestations``."""
    versions = [expected.version]
    with contextlib.suppress(InvalidVersion):
        versions.append(str(Version(expected.version)))
    paths = [attestations / bundle_path(expected.project, v, expected.filename) for v in versions]
    return next((p for p in paths if p.is_file()), paths[0])


def verify_release_file(
    expected: ExpectedFile,
    attestations: Path,
    keyring: Keyring,
    *,
    strict: bool,
    log_keys: Sequence[NoteVerifier] = (),
) -> FileVerification:
    """Verify one file of a release; what it means for the release (``status``, ``counts``).

    Wheels always count. An sdist (or other file) is PASSED when a trusted source check
    found it ``consistent`` with its git commit; otherwise, when it was only ever
    ``unsupported`` (not rebuilt), it is listed as NOT REBUILT and does not fail the
    release, unless ``strict``. A bundle that does not verify always counts.
    """
    counts = strict or not expected.is_sdist
    bundle = release_bundle(expected, attestations)
    if not bundle.is_file():
        return FileVerification(
            expected.filename,
            expected.sha256,
            "",
            None,
            (),
            decision=f"no attestation under {attestations}",
            status="NOT VERIFIED" if counts else "NOT REBUILT",
            counts=counts,
        )
    checked = verify_bundle(bundle, keyring, expected, log_keys=log_keys)
    if not expected.is_sdist or not checked.only_unsupported or checked.log_ok is False:
        return replace(checked, counts=True)
    source = _source_check(bundle.with_name(SOURCE_BUNDLE_NAME), keyring, expected)
    if source is not None and source[0] == "consistent":
        why = f"not rebuilt; its source check found it consistent with {source[1]}"
        return replace(checked, result="PASSED", status="PASSED", decision=why, counts=True)
    found = "no source check" if source is None else f"source check: {source[0]}"
    return replace(
        checked,
        status="NOT REBUILT",
        decision=f"{checked.reason or 'not rebuilt'} ({found})",
        counts=counts,
    )


def _source_check(path: Path, keyring: Keyring, expected: ExpectedFile) -> tuple[str, str] | None:
    """The verdict of the trusted source check about ``expected`` and the commit it names."""
    if not path.is_file():
        return None
    verdicts: set[tuple[str, str]] = set()
    for line, envelope in enumerate(read_bundle(path), start=1):
        statement, _ = open_statement(envelope, keyring)
        if statement.predicate_type == PROVENANCE_PREDICATE_TYPE:
            continue
        if statement.predicate_type != SOURCE_CHECK_PREDICATE_TYPE:
            raise AttestationError(
                f"{path.name} line {line}: unknown predicate type {statement.predicate_type}"
            )
        _check_binding(line, statement, expected)
        source = statement.predicate.get("source") or {}
        commit = source.get("digest", {}).get("gitCommit", "no commit")
        verdicts.add((str(statement.predicate["verdict"]), str(commit)))
    if not verdicts:
        return None
    if len({v for v, _ in verdicts}) > 1:
        return ("conflicting", ", ".join(sorted(v for v, _ in verdicts)))
    return sorted(verdicts)[0]


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
