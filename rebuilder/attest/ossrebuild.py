"""The same rebuild in OSS Rebuild's vocabulary: ``Rebuild@v0.1`` and ``ArtifactEquivalence@v0.1``.

OSS Rebuild's readers select statements of a bundle by
``predicate.buildDefinition.buildType``. For every PASSED file (reproducible or
equivalent) :func:`oss_rebuild_statements` makes the two SLSA Provenance v1 statements
they look for, from the same strategy, run and environment as our own provenance:

* ``Rebuild@v0.1``: subject ``rebuild/{file}`` with the rebuilt sha256; external
  parameters ecosystem, package, version, artifact; the sdist, build-dependency wheels
  and the image as resolved dependencies; the strategy (``build.json``) and the build log
  digest as byproducts;
* ``ArtifactEquivalence@v0.1``: subject the published file; external parameters
  ``candidate`` (``rebuild/{file}``) and ``target`` (the published file's package URL);
  both digests as resolved dependencies; the stabilized artifact's digest
  (``stabilized/{file}``) as a byproduct.

They are written, signed, to ``oss-rebuild/pypi/{project}/{version}/{file}/rebuild.intoto.jsonl``
below the publishing root: OSS Rebuild's own storage layout (docs/attestations.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rebuilder.archive.zipread import read_zip
from rebuilder.attest.errors import AttestationError
from rebuilder.attest.statements import (
    PROVENANCE_PREDICATE_TYPE,
    STATEMENT_TYPE,
    TOOL_NAME,
    BuildEnvironment,
    BuildRun,
    git_route,
    provenance_statement,
    pypi_purl,
    validate_statement,
)
from rebuilder.compare.judge import stabilized_bytes
from rebuilder.errors import ArchiveError
from rebuilder.plan.strategy import Strategy
from rebuilder.verdict import FileResult, Verdict

OSS_REBUILD_BUILD_TYPE = "https://docs.oss-rebuild.dev/builds/Rebuild@v0.1"
OSS_EQUIVALENCE_BUILD_TYPE = "https://docs.oss-rebuild.dev/builds/ArtifactEquivalence@v0.1"
OSS_REBUILD_FOLDER = "oss-rebuild"
ECOSYSTEM = "pypi"


def stabilized_sha256(rebuilt: Path) -> str:
    """sha256 of the rebuilt wheel after every stabilizer, written the one fixed way."""
    try:
        return hashlib.sha256(stabilized_bytes(read_zip(rebuilt))).hexdigest()
    except ArchiveError as exc:
        raise AttestationError(f"{rebuilt.name}: cannot be stabilized: {exc}") from None


def oss_rebuild_statements(
    result: FileResult,
    strategy: Strategy,
    run: BuildRun,
    environment: BuildEnvironment | None,
    stabilized: str,
) -> list[dict[str, Any]]:
    """``[Rebuild@v0.1, ArtifactEquivalence@v0.1]`` for a PASSED file."""
    if result.verdict not in {Verdict.REPRODUCIBLE, Verdict.EQUIVALENT}:
        raise AttestationError(f"{result.filename}: OSS Rebuild attests only matching rebuilds")
    if result.rebuilt_sha256 is None or result.upstream_sha256 is None:
        raise AttestationError(f"{result.filename}: both file digests are needed")
    route = git_route(result)
    ours = provenance_statement(
        result, strategy, run, git_source=route[0] if route else None, environment=environment
    )
    candidate = f"rebuild/{result.filename}"
    target = pypi_purl(result.project, result.version, result.filename)
    definition = ours["predicate"]["buildDefinition"]
    details = ours["predicate"]["runDetails"]
    service = _service_source(environment)
    build_json = json.dumps(strategy.to_json(), sort_keys=True).encode()
    rebuild = _statement(
        subject={"name": candidate, "digest": {"sha256": result.rebuilt_sha256}},
        build_type=OSS_REBUILD_BUILD_TYPE,
        external={
            "ecosystem": ECOSYSTEM,
            "package": result.project,
            "version": result.version,
            "artifact": result.filename,
        },
        internal=service,
        dependencies=[
            d
            for d in definition["resolvedDependencies"]
            if d["annotations"]["role"]
            in {"source", "source-commit", "build-image", "build-dependency"}
        ],
        run=details,
        byproducts=[
            {"name": "build.json", "content": base64.b64encode(build_json).decode("ascii")},
            *details["byproducts"],
        ],
    )
    equivalence = _statement(
        subject={"name": result.filename, "digest": {"sha256": result.upstream_sha256}},
        build_type=OSS_EQUIVALENCE_BUILD_TYPE,
        external={"candidate": candidate, "target": target},
        internal=service,
        dependencies=[
            {"name": candidate, "digest": {"sha256": result.rebuilt_sha256}},
            {"name": target, "digest": {"sha256": result.upstream_sha256}},
        ],
        run=details,
        byproducts=[{"name": f"stabilized/{result.filename}", "digest": {"sha256": stabilized}}],
    )
    return [rebuild, equivalence]


def _service_source(environment: BuildEnvironment | None) -> dict[str, Any]:
    commit = environment.builder_commit if environment is not None else None
    return {"serviceSource": {"repository": TOOL_NAME, "ref": commit or "unknown"}}


def _statement(
    *,
    subject: Mapping[str, Any],
    build_type: str,
    external: Mapping[str, Any],
    internal: Mapping[str, Any],
    dependencies: list[Mapping[str, Any]],
    run: Mapping[str, Any],
    byproducts: list[Mapping[str, Any]],
) -> dict[str, Any]:
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [dict(subject)],
        "predicateType": PROVENANCE_PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type,
                "externalParameters": dict(external),
                "internalParameters": dict(internal),
                "resolvedDependencies": [dict(d) for d in dependencies],
            },
            "runDetails": {
                "builder": dict(run["builder"]),
                "metadata": dict(run["metadata"]),
                "byproducts": [dict(b) for b in byproducts],
            },
        },
    }
    validate_statement(statement)
    return statement
