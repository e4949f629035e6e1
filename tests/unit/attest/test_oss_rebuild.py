"""OSS Rebuild's readers find our rebuilds: a reader written here, the way theirs select
statements (by ``buildDefinition.buildType``), finds exactly one of each type."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from rebuilder.archive.zipread import read_zip
from rebuilder.attest.bundle import loads_bundle
from rebuilder.attest.dsse import open_statement
from rebuilder.attest.keys import Keyring, generate_key
from rebuilder.attest.ossrebuild import OSS_EQUIVALENCE_BUILD_TYPE, OSS_REBUILD_BUILD_TYPE
from rebuilder.attest.publish import Attestor
from rebuilder.compare.judge import stabilized_bytes
from rebuilder.evidence import Evidence
from rebuilder.plan.strategy import Strategy
from rebuilder.verdict import Difference, DifferenceKind, FileResult, StabilizerUse, Verdict
from tests.unit.attest.conftest import FILENAME

OSS_BUNDLE = "oss-rebuild/pypi/demo-pkg/1.0+local/{}/rebuild.intoto.jsonl"


def _wheel(stamp: tuple[int, int, int, int, int, int]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(zipfile.ZipInfo("demo/__init__.py", date_time=stamp), "x = 1\n")
    return out.getvalue()


def oss_reader(bundle_text: str) -> dict[str, list[dict[str, Any]]]:
    """What an OSS Rebuild reader does: decode each DSSE payload, group by build type."""
    found: dict[str, list[dict[str, Any]]] = {}
    for line in bundle_text.splitlines():
        envelope = json.loads(line)
        assert envelope["payloadType"] == "application/vnd.in-toto+json"
        statement = json.loads(base64.b64decode(envelope["payload"]))
        build_type = statement["predicate"]["buildDefinition"]["buildType"]
        found.setdefault(build_type, []).append(statement)
    return found


@pytest.fixture
def attested(tmp_path: Path, strategy: Strategy) -> tuple[Path, FileResult, bytes, Attestor]:
    published = _wheel((2024, 1, 1, 0, 0, 0))
    rebuilt = _wheel((2025, 6, 1, 0, 0, 0))
    evidence = Evidence.for_file(tmp_path / "ev", strategy.project, strategy.version, FILENAME)
    evidence.write_strategy(strategy)
    evidence.write_log("building\n")
    (evidence.path / "rebuilt").mkdir()
    (evidence.path / "rebuilt" / FILENAME).write_bytes(rebuilt)
    result = FileResult(
        strategy.project, strategy.version, FILENAME, Verdict.EQUIVALENT,
        hashlib.sha256(published).hexdigest(),
        rebuilt_sha256=hashlib.sha256(rebuilt).hexdigest(),
        stabilizers=(StabilizerUse("zip-timestamps", 1),), evidence=str(evidence.path),
    )  # fmt: skip
    attestor = Attestor(
        signer=generate_key(), builder_id="https://rebuilder.example/op",
        root=tmp_path / "out", oss_rebuild=True,
    )  # fmt: skip
    attestor.attest(result)
    return tmp_path / "out", result, published, attestor


def test_an_oss_rebuild_reader_finds_exactly_one_of_each(
    attested: tuple[Path, FileResult, bytes, Attestor],
) -> None:
    root, result, published, attestor = attested
    text = (root / OSS_BUNDLE.format(FILENAME)).read_text()
    found = oss_reader(text)
    assert sorted(found) == sorted([OSS_REBUILD_BUILD_TYPE, OSS_EQUIVALENCE_BUILD_TYPE])
    (rebuild,) = found[OSS_REBUILD_BUILD_TYPE]
    (equivalence,) = found[OSS_EQUIVALENCE_BUILD_TYPE]
    # Rebuild: the rebuilt artifact, named rebuild/{file}
    assert rebuild["subject"] == [
        {"name": f"rebuild/{FILENAME}", "digest": {"sha256": result.rebuilt_sha256}}
    ]
    external = rebuild["predicate"]["buildDefinition"]["externalParameters"]
    assert external == {
        "ecosystem": "pypi", "package": "Demo_Pkg", "version": "1.0+local", "artifact": FILENAME,
    }  # fmt: skip
    names = {b["name"] for b in rebuild["predicate"]["runDetails"]["byproducts"]}
    assert {"build.json", "build.log"} <= names
    # ArtifactEquivalence: the published file, the candidate, the stabilized digest
    assert equivalence["subject"] == [
        {"name": FILENAME, "digest": {"sha256": result.upstream_sha256}}
    ]
    definition = equivalence["predicate"]["buildDefinition"]
    assert definition["externalParameters"]["candidate"] == f"rebuild/{FILENAME}"
    deps = {d["name"]: d["digest"]["sha256"] for d in definition["resolvedDependencies"]}
    assert deps[f"rebuild/{FILENAME}"] == rebuild["subject"][0]["digest"]["sha256"]
    assert deps[definition["externalParameters"]["target"]] == result.upstream_sha256
    (stabilized,) = equivalence["predicate"]["runDetails"]["byproducts"]
    assert stabilized["name"] == f"stabilized/{FILENAME}"
    # the stabilized digest is that of both files after stabilizing: they are equivalent
    tmp = root / "published.whl"
    tmp.write_bytes(published)
    expected = hashlib.sha256(stabilized_bytes(read_zip(tmp))).hexdigest()
    assert stabilized["digest"]["sha256"] == expected
    # signed by the operator's key like every other bundle
    keyring = Keyring.of([attestor.signer.public_key])
    for envelope in loads_bundle(text):
        open_statement(envelope, keyring)


def test_no_oss_rebuild_statements_for_a_mismatch(
    attested: tuple[Path, FileResult, bytes, Attestor], strategy: Strategy
) -> None:
    root, result, _, attestor = attested
    other = "Demo_Pkg-1.0+local-py2-none-any.whl"
    mismatch = FileResult(
        result.project, result.version, other, Verdict.MISMATCH, result.upstream_sha256,
        rebuilt_sha256=result.rebuilt_sha256, evidence=result.evidence,
        differences=(Difference("demo/__init__.py", DifferenceKind.CONTENT),),
    )  # fmt: skip
    strategy_path = Path(result.evidence or "") / "strategy.json"
    data = json.loads(strategy_path.read_text())
    data["target"] = other
    strategy_path.write_text(json.dumps(data))
    attestor.attest(mismatch)
    assert (root / "pypi" / "demo-pkg" / "1.0+local" / other / "rebuild.intoto.jsonl").is_file()
    assert not (root / OSS_BUNDLE.format(other)).exists()
