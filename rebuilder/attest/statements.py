"""in-toto Statement v1 for rebuilds: SLSA Provenance, SLSA VSA, and rebuild failures.

Three statements are made per judged file (see ``docs/attestations.md``):

* a SLSA Provenance v1 statement whose subject is the *rebuilt* file;
* a SLSA Verification Summary v1 whose subject is the *published* file, PASSED for
  reproducible/equivalent and FAILED for mismatch, pointing at the provenance by digest;
* for failed or unsupported rebuilds, a statement of our own predicate type, so a
  package that stops reproducing leaves a signed trace.

Statements are built from plain inputs and returned as plain dicts;
:func:`canonical_json` gives the exact bytes that are signed and hashed. No JSON schema
for in-toto or SLSA ships in an installed package, so :func:`validate_statement` is a
focused structural validator of the fields these specifications require.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from rebuilder import __version__
from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.plan.strategy import Strategy
from rebuilder.verdict import FileResult, Risk, Verdict

logger = logging.getLogger(__name__)

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PROVENANCE_PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
VSA_PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
BUILD_TYPE = "https://pypi-rebuilder.dev/build/wheel/v1"
"""Our buildType: externalParameters is the strategy record (docs/attestations.md)."""
FAILURE_PREDICATE_TYPE = "https://pypi-rebuilder.dev/attestation/rebuild-failure/v1"
VERDICT_POLICY_URI = "https://pypi-rebuilder.dev/policy/verdict/v1"
VSA_EXTENSION_KEY = "https://pypi-rebuilder.dev/attestation/rebuild-verdict/v1"
"""The predicate field (a URI, so it cannot clash with SLSA's) holding our verdict details."""
SOURCE_CHECK_PREDICATE_TYPE = "https://pypi-rebuilder.dev/attestation/source-check/v1"
"""Our predicate: an sdist judged against the git commit it claims (docs/source-tracing.md)."""
TOOL_NAME = "pypi-rebuilder"
SLSA_VERSION = "1.0"

LEVEL_REPRODUCIBLE = "PYPI_REBUILDER_REPRODUCIBLE"
LEVEL_EQUIVALENT = "PYPI_REBUILDER_EQUIVALENT"
LEVEL_FAILED = "FAILED"

_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128, "sha1": 40, "gitCommit": 40}
_HEX = re.compile(r"[0-9a-f]+")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")
_IMAGE_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class BuildRun:
    """Who ran one rebuild and when: the ``runDetails`` of the provenance."""

    builder_id: str  # a URI naming this operator's rebuilder deployment
    invocation_id: str
    started_on: datetime
    finished_on: datetime
    builder_version: str = __version__


@dataclass(frozen=True)
class Verification:
    """Who judged a published file and when: the verifier fields of the VSA."""

    verifier_id: str
    time_verified: datetime
    policy_uri: str = VERDICT_POLICY_URI
    verifier_version: str = __version__


@dataclass(frozen=True)
class GitSource:
    """A git commit a build or a check rests on (a resolved dependency of its provenance)."""

    repository: str  # the URL it was fetched from
    commit: str  # the full hex object name
    tag: str | None = None

    def descriptor(self, role: str = "source-commit") -> dict[str, Any]:
        """The commit as an in-toto ResourceDescriptor (``gitCommit`` digest, SLSA style)."""
        ref = f"@refs/tags/{self.tag}" if self.tag else f"@{self.commit}"
        annotations = {"role": role, **({"tag": self.tag} if self.tag else {})}
        return {
            "uri": f"git+{self.repository}{ref}",
            "digest": {"gitCommit": _hex_digest(self.commit, "git commit", "gitCommit")},
            "annotations": annotations,
        }


def git_route(result: FileResult) -> tuple[GitSource, str] | None:
    """The git commit ``result`` was rebuilt from when the git-tag route is its strategy.

    Read from the result's second opinion (``route: git``, docs/diagnosis.md): the
    commit and how the wheel was built from it (``tree`` or ``sdist``). None for a
    result of the sdist route.

    Raises:
        AttestationError: the route is git but names no repository or commit.
    """
    opinion = result.second_opinion
    if not opinion or opinion.get("route") != "git":
        return None
    repository, commit, tag = opinion.get("repository"), opinion.get("commit"), opinion.get("tag")
    if not isinstance(repository, str) or not repository or not isinstance(commit, str):
        raise AttestationError(f"{result.filename}: the git route names no repository and commit")
    source = GitSource(repository, _hex_digest(commit, "git commit", "gitCommit"),
                       tag if isinstance(tag, str) and tag else None)  # fmt: skip
    return source, str(opinion.get("built_from") or "sdist")


@dataclass(frozen=True)
class BuildEnvironment:
    """What else a rebuild ran with, beyond its strategy, so another host can run it again.

    ``dependencies`` are more resolved dependencies (the driver and ``sitecustomize.py``
    mounted into the container, the stabilizer code, the rebuilder's own source commit,
    the image's recipe files, its Debian package set and ``docker save`` tarball);
    ``image`` is merged into the ``build-image`` descriptor (its OCI-style ``uri``, name
    and annotations); ``byproducts`` go to ``runDetails.byproducts`` (the build log).
    """

    dependencies: tuple[Mapping[str, Any], ...] = ()
    image: Mapping[str, Any] | None = None
    byproducts: tuple[Mapping[str, Any], ...] = ()
    builder_commit: str | None = None


EXTERNAL_PARAMETERS_MOVED = ("source", "requirements", "image", "image_digest")
"""Strategy fields recorded as resolved dependencies, not as external parameters."""


def external_parameters(strategy: Strategy) -> dict[str, Any]:
    """The strategy minus its inputs (which are ``resolvedDependencies``)."""
    data = strategy.to_json()
    for key in EXTERNAL_PARAMETERS_MOVED:
        data.pop(key, None)
    return data


def strategy_from_provenance(predicate: Mapping[str, Any]) -> Strategy:
    """The strategy a provenance statement records: its parameters plus its inputs.

    Raises:
        AttestationError: the provenance lacks an input the strategy needs.
    """
    definition = _obj(predicate.get("buildDefinition"), "buildDefinition")
    data = dict(_obj(definition.get("externalParameters"), "externalParameters"))
    deps = _list(definition.get("resolvedDependencies", []), "resolvedDependencies")
    by_role: dict[str, list[Mapping[str, Any]]] = {}
    for dep in deps:
        role = _obj(dep, "resolvedDependencies[]").get("annotations", {}).get("role")
        by_role.setdefault(str(role), []).append(dep)
    sources = by_role.get("source", [])
    images = by_role.get("build-image", [])
    if len(sources) != 1 or len(images) != 1:
        raise AttestationError("the provenance must name exactly one source and one build image")
    source, image = sources[0], images[0]
    data["source"] = _pinned(source)
    requirements = []
    for dep in by_role.get("build-dependency", []):
        name, _, version = str(dep.get("annotations", {}).get("requirement", "")).partition("==")
        if not name or not version:
            raise AttestationError(f"build dependency {dep.get('name')!r} names no requirement")
        requirements.append({"name": name, "version": version, "file": _pinned(dep)})
    data["requirements"] = requirements
    image_digest = _digest_set(image.get("digest"), "build-image.digest").get("sha256")
    if image_digest is None:
        raise AttestationError("the build image has no sha256 digest")
    data["image_digest"] = f"sha256:{image_digest}"
    data["image"] = str(image.get("annotations", {}).get("reference") or image.get("name"))
    try:
        return Strategy.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise AttestationError(f"the provenance's parameters are not a strategy: {exc}") from None


def _pinned(dep: Mapping[str, Any]) -> dict[str, str]:
    digest = _digest_set(dep.get("digest"), f"{dep.get('name')}.digest").get("sha256")
    if not isinstance(dep.get("uri"), str) or not isinstance(dep.get("name"), str) or not digest:
        raise AttestationError(f"input {dep.get('name')!r} needs a uri, a name and a sha256")
    return {"filename": dep["name"], "url": dep["uri"], "sha256": digest}


@dataclass(frozen=True)
class Subject:
    """One subject of a statement: a file name and its digests."""

    name: str
    digest: Mapping[str, str]
    uri: str | None = None


@dataclass(frozen=True)
class Statement:
    """A validated in-toto Statement v1."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, Any]

    def check_subject(self, sha256: str, name: str | None = None) -> Subject:
        """The subject with this sha256 (and name, if given).

        Raises:
            VerificationError: no subject matches; the statement is about another file.
        """
        for subject in self.subjects:
            if subject.digest.get("sha256") == sha256.lower() and name in (None, subject.name):
                return subject
        raise VerificationError(
            f"the statement is not about {name or 'this file'} (sha256 {sha256}): "
            f"its subjects are {', '.join(s.name for s in self.subjects)}"
        )


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """Deterministic JSON bytes: sorted keys, no spaces, UTF-8, no NaN/Infinity."""
    try:
        text = json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise AttestationError(f"statement is not serializable JSON: {exc}") from exc
    return text.encode("utf-8")


def statement_digest(statement: Mapping[str, Any]) -> str:
    """Hex SHA-256 of :func:`canonical_json` of the statement (the DSSE payload we sign)."""
    return hashlib.sha256(canonical_json(statement)).hexdigest()


def rfc3339(moment: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC (``...Z``), microseconds kept when present."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise AttestationError(f"time {moment!r} has no time zone")
    utc = moment.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def pypi_purl(project: str, version: str, filename: str) -> str:
    """The package URL of one published file: ``pkg:pypi/{name}@{version}?file_name=...``.

    The purl spec for PyPI lowercases the name and replaces ``_`` with ``-``.
    """
    name = project.lower().replace("_", "-")
    return (
        f"pkg:pypi/{quote(name, safe='')}@{quote(version, safe='')}"
        f"?file_name={quote(filename, safe='')}"
    )


def provenance_statement(
    result: FileResult,
    strategy: Strategy,
    run: BuildRun,
    git_source: GitSource | None = None,
    environment: BuildEnvironment | None = None,
) -> dict[str, Any]:
    """SLSA Provenance v1 for the rebuilt file of ``result``, built with ``strategy``.

    ``git_source``: the build's source was this commit (a rebuild from git), recorded as
    a resolved dependency with role ``source-commit`` beside the published sdist whose
    strategy it followed.
    """
    if result.rebuilt_sha256 is None:
        raise AttestationError(f"{result.filename}: no rebuilt file, so no provenance")
    _check_same_file(result, strategy)
    started_on, finished_on = rfc3339(run.started_on), rfc3339(run.finished_on)
    if run.finished_on < run.started_on:
        raise AttestationError("a build cannot finish before it starts")
    environment = environment or BuildEnvironment()
    image: dict[str, Any] = {
        "name": strategy.image,
        "digest": {"sha256": _image_digest(strategy.image_digest)},
        "annotations": {"role": "build-image", "reference": strategy.image},
    }
    if environment.image:
        extra = dict(environment.image)
        image["annotations"] = {**image["annotations"], **extra.pop("annotations", {})}
        image.update(extra)
    dependencies: list[dict[str, Any]] = [
        {
            "uri": strategy.source.url,
            "name": strategy.source.filename,
            "digest": {"sha256": _hex_digest(strategy.source.sha256, "source sha256")},
            "annotations": {"role": "source"},
        },
        image,
    ]
    if git_source is not None:
        dependencies.insert(1, git_source.descriptor())
    dependencies += [
        {
            "uri": req.file.url,
            "name": req.file.filename,
            "digest": {"sha256": _hex_digest(req.file.sha256, f"{req.spec} sha256")},
            "annotations": {"role": "build-dependency", "requirement": req.spec},
        }
        for req in strategy.requirements
    ]
    # A requirement with no wheel was built from this sdist (externalParameters'
    # built_from_source names the wheel it gave).
    dependencies += [
        {
            "uri": built.sdist.url,
            "name": built.sdist.filename,
            "digest": {"sha256": _hex_digest(built.sdist.sha256, f"{built.spec} sdist sha256")},
            "annotations": {
                "role": "build-dependency-sdist",
                "requirement": built.spec,
                "built_wheel": built.wheel.filename,
                "built_wheel_sha256": built.wheel.sha256,
            },
        }
        for built in strategy.built_from_source
    ]
    dependencies += [dict(d) for d in environment.dependencies]
    version = {TOOL_NAME: run.builder_version}
    if environment.builder_commit:
        version[f"{TOOL_NAME}-commit"] = environment.builder_commit
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": result.filename,
                "digest": {"sha256": _hex_digest(result.rebuilt_sha256, "rebuilt sha256")},
            }
        ],
        "predicateType": PROVENANCE_PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external_parameters(strategy),
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": run.builder_id, "version": version},
                "metadata": {
                    "invocationId": run.invocation_id,
                    "startedOn": started_on,
                    "finishedOn": finished_on,
                },
                "byproducts": [dict(b) for b in environment.byproducts],
            },
        },
    }
    validate_statement(statement)
    return statement


def verification_summary_statement(
    result: FileResult,
    verification: Verification,
    provenance: Mapping[str, Any],
    provenance_uri: str | None = None,
) -> dict[str, Any]:
    """SLSA VSA v1 about the *published* file of ``result``.

    ``provenance`` is the statement from :func:`provenance_statement` for the same
    rebuild; its digest goes into ``inputAttestations``, with ``provenance_uri`` (where
    it is published, e.g. the bundle's path below the publishing root) as its ``uri``.
    """
    if result.verdict in {Verdict.REPRODUCIBLE, Verdict.EQUIVALENT}:
        outcome = "PASSED"
        level = LEVEL_REPRODUCIBLE if result.verdict is Verdict.REPRODUCIBLE else LEVEL_EQUIVALENT
    elif result.verdict is Verdict.MISMATCH:
        outcome, level = "FAILED", LEVEL_FAILED
    else:
        raise AttestationError(
            f"{result.filename}: a {result.verdict.value} rebuild gets a failure statement"
        )
    if result.upstream_sha256 is None or result.rebuilt_sha256 is None:
        raise AttestationError(f"{result.filename}: a verdict needs both file digests")
    proof = validate_statement(provenance)
    if proof.predicate_type != PROVENANCE_PREDICATE_TYPE:
        raise AttestationError("inputAttestations must name a provenance statement")
    proof.check_subject(result.rebuilt_sha256, result.filename)
    route = git_route(result)
    if route is not None and provenance_commit(proof.predicate) != route[0].commit:
        raise AttestationError(f"{result.filename}: the provenance does not name the git commit")
    purl = pypi_purl(result.project, result.version, result.filename)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [_published_subject(result, purl)],
        "predicateType": VSA_PREDICATE_TYPE,
        "predicate": {
            **_verifier_fields(verification, purl),
            "inputAttestations": [
                {
                    "name": f"{result.filename}.provenance",
                    **({"uri": provenance_uri} if provenance_uri else {}),
                    "mediaType": "application/vnd.in-toto+json",
                    "digest": {"sha256": statement_digest(provenance)},
                }
            ],
            "verificationResult": outcome,
            "verifiedLevels": [level],
            "slsaVersion": SLSA_VERSION,
            VSA_EXTENSION_KEY: {
                "verdict": result.verdict.value,
                "rebuiltSha256": result.rebuilt_sha256,
                "stabilizers": [{"name": s.name, "version": s.version} for s in result.stabilizers],
                "differences": [d.to_json() for d in sorted(result.differences)],
                # none / packaging / review (docs/diagnosis.md); absent before it existed.
                "risk": None if result.risk is None else result.risk.value,
                # sdist (the published sdist rebuilt) or git (the git-tag route)
                **_route_fields(result, route),
            },
        },
    }
    validate_statement(statement)
    return statement


def _route_fields(result: FileResult, route: tuple[GitSource, str] | None) -> dict[str, Any]:
    """The VSA extension's record of where the rebuild came from."""
    if route is None:
        return {"source": "sdist"}
    source, built_from = route
    lacks = (result.second_opinion or {}).get("sdist_lacks") or []
    return {
        "source": "git",
        "git": {
            **source.descriptor(),
            "builtFrom": built_from,
            "sdistLacks": [str(p) for p in lacks],
            "reason": result.reason,
        },
    }


def provenance_commit(predicate: Mapping[str, Any]) -> str | None:
    """The git commit a provenance names as its source (role ``source-commit``), if any."""
    definition = predicate.get("buildDefinition")
    deps = definition.get("resolvedDependencies", []) if isinstance(definition, Mapping) else []
    for dep in deps if isinstance(deps, list) else []:
        if not isinstance(dep, Mapping):
            continue
        annotations = dep.get("annotations")
        digest = dep.get("digest")
        if (
            isinstance(annotations, Mapping)
            and annotations.get("role") == "source-commit"
            and isinstance(digest, Mapping)
        ):
            commit = digest.get("gitCommit")
            return commit if isinstance(commit, str) else None
    return None


def _published_subject(result: FileResult, purl: str) -> dict[str, Any]:
    """The published file as a statement subject."""
    digest = _hex_digest(result.upstream_sha256 or "", "published sha256")
    return {"name": result.filename, "uri": purl, "digest": {"sha256": digest}}


def _verifier_fields(verification: Verification, purl: str) -> dict[str, Any]:
    """Who judged which resource, when, under which policy (VSA and failure predicates)."""
    return {
        "verifier": {
            "id": verification.verifier_id,
            "version": {TOOL_NAME: verification.verifier_version},
        },
        "timeVerified": rfc3339(verification.time_verified),
        "resourceUri": purl,
        "policy": {"uri": verification.policy_uri},
    }


def failure_statement(
    result: FileResult, verification: Verification, strategy: Strategy | None = None
) -> dict[str, Any]:
    """Our statement for a published file that could not be rebuilt or judged."""
    if result.verdict not in {Verdict.FAILED, Verdict.UNSUPPORTED}:
        raise AttestationError(f"{result.filename}: {result.verdict.value} is not a failure")
    if result.upstream_sha256 is None:
        raise AttestationError(f"{result.filename}: no published digest to attest about")
    if strategy is not None:
        _check_same_file(result, strategy)
    purl = pypi_purl(result.project, result.version, result.filename)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [_published_subject(result, purl)],
        "predicateType": FAILURE_PREDICATE_TYPE,
        "predicate": {
            **_verifier_fields(verification, purl),
            "verdict": result.verdict.value,
            "reasonClass": result.reason_class.value if result.reason_class else None,
            "reason": result.reason,
            "strategy": strategy.to_json() if strategy is not None else None,
        },
    }
    validate_statement(statement)
    return statement


def source_check_statement(
    *,
    project: str,
    version: str,
    sdist_filename: str,
    sdist_sha256: str,
    verdict: str,
    git_source: GitSource | None,
    details: Mapping[str, Any],
    verification: Verification,
) -> dict[str, Any]:
    """Our statement about a published sdist judged against its git source.

    ``verdict`` is ``consistent``, ``inconsistent`` or ``no-source``; ``details`` the
    explained and differing files, the repository-only count, the reason and the from-git
    rebuild verdicts (``SourceResult.to_json`` minus what is said elsewhere).
    """
    purl = pypi_purl(project, version, sdist_filename)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": sdist_filename,
                "uri": purl,
                "digest": {"sha256": _hex_digest(sdist_sha256, "sdist sha256")},
            }
        ],
        "predicateType": SOURCE_CHECK_PREDICATE_TYPE,
        "predicate": {
            **_verifier_fields(verification, purl),
            "verdict": verdict,
            "source": git_source.descriptor() if git_source is not None else None,
            "details": dict(details),
        },
    }
    validate_statement(statement)
    return statement


def _validate_source_check(predicate: Mapping[str, Any]) -> None:
    verifier = _obj(predicate.get("verifier"), "verifier")
    _str(verifier, "id", "verifier")
    _timestamp(predicate.get("timeVerified"), "timeVerified")
    _str(predicate, "resourceUri", "predicate")
    if predicate.get("verdict") not in {"consistent", "inconsistent", "no-source"}:
        raise AttestationError(
            "a source check's verdict must be consistent, inconsistent or no-source"
        )
    if predicate.get("source") is not None:
        _resource_descriptor(predicate["source"], "source")
    elif predicate.get("verdict") != "no-source":
        raise AttestationError("a source check with a verdict names the commit it compared")
    _obj(predicate.get("details"), "details")


def parse_statement(payload: bytes) -> Statement:
    """Decode and validate a DSSE payload as an in-toto Statement (untrusted input)."""
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttestationError(f"payload is not JSON: {exc}") from exc
    return validate_statement(obj)


def validate_statement(obj: Any) -> Statement:  # noqa: ANN401 - validates anything parsed from JSON
    """Check the structure in-toto Statement v1 and our three predicates require.

    Raises:
        AttestationError: naming the first field that is missing or malformed.
    """
    statement = _obj(obj, "statement")
    if statement.get("_type") != STATEMENT_TYPE:
        raise AttestationError(f"statement._type must be {STATEMENT_TYPE}")
    raw_subjects = statement.get("subject")
    if not isinstance(raw_subjects, list) or not raw_subjects:
        raise AttestationError("statement.subject must be a non-empty list")
    subjects = []
    for i, raw in enumerate(raw_subjects):
        item = _obj(raw, f"subject[{i}]")
        name = _str(item, "name", f"subject[{i}]")
        digest = _digest_set(item.get("digest"), f"subject[{i}].digest")
        uri = item.get("uri")
        if uri is not None and not isinstance(uri, str):
            raise AttestationError(f"subject[{i}].uri must be a string")
        subjects.append(Subject(name, digest, uri))
    predicate_type = _str(statement, "predicateType", "statement")
    predicate = _obj(statement.get("predicate"), "statement.predicate")
    validator = _PREDICATE_VALIDATORS.get(predicate_type)
    if validator is not None:
        validator(predicate)
    return Statement(tuple(subjects), predicate_type, predicate)


def _validate_provenance(predicate: Mapping[str, Any]) -> None:
    definition = _obj(predicate.get("buildDefinition"), "buildDefinition")
    _str(definition, "buildType", "buildDefinition")
    _obj(definition.get("externalParameters"), "buildDefinition.externalParameters")
    deps = definition.get("resolvedDependencies", [])
    if not isinstance(deps, list):
        raise AttestationError("buildDefinition.resolvedDependencies must be a list")
    for i, dep in enumerate(deps):
        _resource_descriptor(dep, f"resolvedDependencies[{i}]")
    details = _obj(predicate.get("runDetails"), "runDetails")
    builder = _obj(details.get("builder"), "runDetails.builder")
    _str(builder, "id", "runDetails.builder")
    metadata = details.get("metadata")
    if metadata is not None:
        meta = _obj(metadata, "runDetails.metadata")
        for key in ("startedOn", "finishedOn"):
            if key in meta:
                _timestamp(meta[key], f"runDetails.metadata.{key}")


def _validate_vsa(predicate: Mapping[str, Any]) -> None:
    verifier = _obj(predicate.get("verifier"), "verifier")
    _str(verifier, "id", "verifier")
    if "timeVerified" in predicate:
        _timestamp(predicate["timeVerified"], "timeVerified")
    _str(predicate, "resourceUri", "predicate")
    policy = _resource_descriptor(predicate.get("policy"), "policy")
    if "uri" not in policy:
        raise AttestationError("policy.uri is required")
    for i, att in enumerate(_list(predicate.get("inputAttestations", []), "inputAttestations")):
        _resource_descriptor(att, f"inputAttestations[{i}]")
    if predicate.get("verificationResult") not in {"PASSED", "FAILED"}:
        raise AttestationError("verificationResult must be PASSED or FAILED")
    levels = _list(predicate.get("verifiedLevels"), "verifiedLevels")
    if not all(isinstance(level, str) for level in levels):
        raise AttestationError("verifiedLevels must be strings")
    _str(predicate, "slsaVersion", "predicate")
    extension = predicate.get(VSA_EXTENSION_KEY)
    if extension is not None:
        ext = _obj(extension, VSA_EXTENSION_KEY)
        if ext.get("verdict") not in {v.value for v in Verdict}:
            raise AttestationError(f"{VSA_EXTENSION_KEY}.verdict is not a verdict")
        _list(ext.get("stabilizers"), f"{VSA_EXTENSION_KEY}.stabilizers")
        _list(ext.get("differences"), f"{VSA_EXTENSION_KEY}.differences")
        if ext.get("risk") is not None and ext["risk"] not in {r.value for r in Risk}:
            raise AttestationError(f"{VSA_EXTENSION_KEY}.risk is not a risk")
        if ext.get("source", "sdist") not in {"sdist", "git"}:
            raise AttestationError(f"{VSA_EXTENSION_KEY}.source must be sdist or git")
        if ext.get("source") == "git":
            git = _resource_descriptor(ext.get("git"), f"{VSA_EXTENSION_KEY}.git")
            if "gitCommit" not in git.get("digest", {}):
                raise AttestationError(f"{VSA_EXTENSION_KEY}.git names no gitCommit")


def _validate_failure(predicate: Mapping[str, Any]) -> None:
    verifier = _obj(predicate.get("verifier"), "verifier")
    _str(verifier, "id", "verifier")
    _timestamp(predicate.get("timeVerified"), "timeVerified")
    _str(predicate, "resourceUri", "predicate")
    if predicate.get("verdict") not in {Verdict.FAILED.value, Verdict.UNSUPPORTED.value}:
        raise AttestationError("a failure statement's verdict must be failed or unsupported")
    for key in ("reasonClass", "reason"):
        if predicate.get(key) is not None and not isinstance(predicate[key], str):
            raise AttestationError(f"predicate.{key} must be a string or null")


_PREDICATE_VALIDATORS = {
    PROVENANCE_PREDICATE_TYPE: _validate_provenance,
    VSA_PREDICATE_TYPE: _validate_vsa,
    FAILURE_PREDICATE_TYPE: _validate_failure,
    SOURCE_CHECK_PREDICATE_TYPE: _validate_source_check,
}


def _check_same_file(result: FileResult, strategy: Strategy) -> None:
    ours = (result.project, result.version, result.filename)
    theirs = (strategy.project, strategy.version, strategy.target)
    if ours != theirs:
        raise AttestationError(f"the strategy is for {theirs}, the result for {ours}")


def _hex_digest(value: str, what: str, algorithm: str = "sha256") -> str:
    if (
        not isinstance(value, str)
        or not _HEX.fullmatch(value)
        or len(value) != _HEX_LENGTHS.get(algorithm, len(value))
    ):
        raise AttestationError(f"{what}: {value!r} is not a lowercase hex {algorithm} digest")
    return value


def _image_digest(value: str) -> str:
    match = _IMAGE_DIGEST.fullmatch(value)
    if not match:
        raise AttestationError(f"image digest {value!r} is not sha256:<64 hex>")
    return match.group(1)


def _digest_set(value: Any, where: str) -> dict[str, str]:  # noqa: ANN401 - untrusted JSON
    digests = _obj(value, where)
    if not digests:
        raise AttestationError(f"{where} must name at least one digest")
    for algorithm, hexdigest in digests.items():
        _hex_digest(hexdigest, f"{where}.{algorithm}", algorithm)
    return dict(digests)


def _resource_descriptor(value: Any, where: str) -> Mapping[str, Any]:  # noqa: ANN401
    descriptor = _obj(value, where)
    if not {"uri", "digest", "content"} & descriptor.keys():
        raise AttestationError(f"{where} needs one of uri, digest, content")
    for key in ("uri", "name", "mediaType", "content"):
        if key in descriptor and not isinstance(descriptor[key], str):
            raise AttestationError(f"{where}.{key} must be a string")
    if "digest" in descriptor:
        _digest_set(descriptor["digest"], f"{where}.digest")
    if "annotations" in descriptor:
        _obj(descriptor["annotations"], f"{where}.annotations")
    return descriptor


def _timestamp(value: Any, where: str) -> None:  # noqa: ANN401 - untrusted JSON
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise AttestationError(f"{where} must be an RFC 3339 timestamp")
    try:
        # Python 3.11 accepts "Z" but at most 6 fraction digits; trim for the range check.
        datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value))
    except ValueError as exc:
        raise AttestationError(f"{where}: {exc}") from exc


def _obj(value: Any, where: str) -> Mapping[str, Any]:  # noqa: ANN401 - untrusted JSON
    if not isinstance(value, Mapping):
        raise AttestationError(f"{where} must be a JSON object")
    return value


def _list(value: Any, where: str) -> list[Any]:  # noqa: ANN401 - untrusted JSON
    if not isinstance(value, list):
        raise AttestationError(f"{where} must be a list")
    return value


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise AttestationError(f"{where}.{key} must be a non-empty string")
    return value
