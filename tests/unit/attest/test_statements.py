from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import rebuilder
from rebuilder.attest.dsse import open_statement, sign_statement
from rebuilder.attest.environment import build_environment, source_commit
from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.keys import Keyring, LocalKeySigner
from rebuilder.attest.statements import (
    BUILD_TYPE,
    FAILURE_PREDICATE_TYPE,
    PROVENANCE_PREDICATE_TYPE,
    STATEMENT_TYPE,
    VSA_EXTENSION_KEY,
    VSA_PREDICATE_TYPE,
    BuildRun,
    Verification,
    canonical_json,
    failure_statement,
    parse_statement,
    provenance_statement,
    pypi_purl,
    rfc3339,
    statement_digest,
    strategy_from_provenance,
    validate_statement,
    verification_summary_statement,
)
from rebuilder.index.model import PinnedFile
from rebuilder.plan.strategy import SourceBuild, Strategy
from rebuilder.sandbox.image import ImageDescription
from rebuilder.verdict import Verdict

from .conftest import FILENAME, PUBLISHED, REBUILT, make_result


def test_a_requirement_built_from_its_sdist_is_an_input_and_round_trips(
    strategy: Strategy, run: BuildRun
) -> None:
    built = SourceBuild(
        "helper", "1.0", PinnedFile("helper-1.0.tar.gz", "https://files.example/h", "a" * 64),
        PinnedFile("helper-1.0-py3-none-any.whl", "", "b" * 64),
    )  # fmt: skip
    with_built = replace(strategy, built_from_source=(built,))
    statement = provenance_statement(make_result(), with_built, run)
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    (sdist,) = [d for d in deps if d["annotations"]["role"] == "build-dependency-sdist"]
    assert (sdist["uri"], sdist["digest"]) == ("https://files.example/h", {"sha256": "a" * 64})
    assert sdist["annotations"]["built_wheel_sha256"] == "b" * 64
    assert strategy_from_provenance(statement["predicate"]) == with_built


def test_provenance_names_the_rebuilt_file_and_every_input(
    strategy: Strategy, run: BuildRun
) -> None:
    statement = provenance_statement(make_result(), strategy, run)
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == PROVENANCE_PREDICATE_TYPE
    assert statement["subject"] == [{"name": FILENAME, "digest": {"sha256": REBUILT}}]
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == BUILD_TYPE
    # the inputs are resolved dependencies, not parameters; together they are the strategy
    assert (
        not {"source", "requirements", "image", "image_digest"}
        & definition["externalParameters"].keys()
    )
    assert strategy_from_provenance(statement["predicate"]) == strategy
    deps = definition["resolvedDependencies"]
    roles = [d["annotations"]["role"] for d in deps]
    assert roles == ["source", "build-image", "build-dependency", "build-dependency"]
    assert deps[0]["uri"] == strategy.source.url
    assert deps[0]["digest"] == {"sha256": strategy.source.sha256}
    assert deps[1]["digest"] == {"sha256": strategy.image_digest.removeprefix("sha256:")}
    assert {d["annotations"].get("requirement") for d in deps[2:]} == {
        "setuptools==75.0.0",
        "wheel==0.44.0",
    }
    details = statement["predicate"]["runDetails"]
    assert details["builder"] == {
        "id": run.builder_id,
        "version": {"pypi-rebuilder": run.builder_version},
    }
    assert details["metadata"] == {
        "invocationId": "inv-42",
        "startedOn": "2025-01-02T03:04:05Z",
        "finishedOn": "2025-01-02T03:09:05.123000Z",
    }
    assert details["byproducts"] == []


def test_the_environment_makes_the_provenance_re_runnable(
    strategy: Strategy, run: BuildRun, tmp_path: Path
) -> None:
    (tmp_path / "build.log").write_text("built\n")
    image = ImageDescription(
        image_id="sha256:" + "ab" * 32,
        tags=("pypi-rebuilder-sandbox:0123456789abcdef",),
        base="pypi-rebuilder-base:bookworm",
        packages=("bash=5.2.15-2+b7", "python3=3.11.2-1+b1"),
        recipe=(("Dockerfile", "cd" * 32),),
        archive_sha256="ef" * 32,
    )
    environment = build_environment(strategy.image, evidence=tmp_path, describe=lambda _: image)
    statement = provenance_statement(make_result(), strategy, run, environment=environment)
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    by_role: dict[str, list[dict[str, Any]]] = {}
    for dep in deps:
        by_role.setdefault(dep["annotations"]["role"], []).append(dep)
    (built_in,) = by_role["build-image"]
    assert built_in["uri"] == (
        "pkg:oci/pypi-rebuilder-sandbox@sha256%3A" + "ab" * 32 + "?tag=0123456789abcdef"
    )
    assert built_in["annotations"]["ociReference"] == "pypi-rebuilder-sandbox@sha256:" + "ab" * 32
    assert built_in["annotations"]["reference"] == strategy.image  # what the build ran by
    assert {d["name"] for d in by_role["sandbox-driver"]} == {
        "rebuilder/sandbox/driver.py",
        "rebuilder/sandbox/clockreplay/sitecustomize.py",
    }
    driver = next(d for d in by_role["sandbox-driver"] if d["name"].endswith("driver.py"))
    source = Path(rebuilder.__file__).parent / "sandbox" / "driver.py"
    assert driver["digest"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert "zip-timestamps@1" in by_role["stabilizer-code"][0]["annotations"]["stabilizers"]
    assert by_role["image-recipe"][0]["name"] == "images/sandbox/Dockerfile"
    (packages,) = by_role["image-packages"]
    assert packages["annotations"]["packages"] == ["bash=5.2.15-2+b7", "python3=3.11.2-1+b1"]
    assert packages["digest"]["sha256"] == image.packages_sha256
    assert by_role["image-archive"][0]["digest"] == {"sha256": "ef" * 32}
    details = statement["predicate"]["runDetails"]
    log_digest = hashlib.sha256(b"built\n").hexdigest()
    assert details["byproducts"] == [
        {"name": "build.log", "mediaType": "text/plain", "digest": {"sha256": log_digest}}
    ]
    commit = source_commit()
    if commit is not None:  # a git checkout: the commit is recorded twice
        assert details["builder"]["version"]["pypi-rebuilder-commit"] == commit[0]
        assert by_role["rebuilder-source"][0]["digest"] == {"gitCommit": commit[0]}
    else:
        assert "rebuilder-source" not in by_role
    # still the same strategy when read back
    assert strategy_from_provenance(statement["predicate"]) == strategy


@pytest.mark.parametrize(
    ("verdict", "result", "level"),
    [
        (Verdict.REPRODUCIBLE, "PASSED", "PYPI_REBUILDER_REPRODUCIBLE"),
        (Verdict.EQUIVALENT, "PASSED", "PYPI_REBUILDER_EQUIVALENT"),
        (Verdict.MISMATCH, "FAILED", "FAILED"),
    ],
)
def test_vsa_is_about_the_published_file(
    strategy: Strategy,
    run: BuildRun,
    verification: Verification,
    verdict: Verdict,
    result: str,
    level: str,
) -> None:
    file_result = make_result(verdict)
    provenance = provenance_statement(file_result, strategy, run)
    vsa = verification_summary_statement(file_result, verification, provenance)
    purl = "pkg:pypi/demo-pkg@1.0%2Blocal?file_name=Demo_Pkg-1.0%2Blocal-py3-none-any.whl"
    assert vsa["predicateType"] == VSA_PREDICATE_TYPE
    assert vsa["subject"] == [{"name": FILENAME, "uri": purl, "digest": {"sha256": PUBLISHED}}]
    predicate = vsa["predicate"]
    assert predicate["resourceUri"] == purl
    assert predicate["verificationResult"] == result
    assert predicate["verifiedLevels"] == [level]
    assert predicate["timeVerified"] == "2025-01-02T03:10:00Z"
    assert predicate["policy"]["uri"].startswith("https://")
    assert predicate["inputAttestations"][0]["digest"] == {"sha256": statement_digest(provenance)}
    extension = predicate[VSA_EXTENSION_KEY]
    assert extension["verdict"] == verdict.value
    assert extension["rebuiltSha256"] == REBUILT
    if verdict is Verdict.EQUIVALENT:
        assert extension["stabilizers"] == [{"name": "zip-timestamps", "version": 2}]
    assert extension["risk"] == (
        "review" if verdict is Verdict.MISMATCH else "none"  # no diagnosis: review
    )
    if verdict is Verdict.MISMATCH:
        assert extension["differences"] == [
            {"path": "demo/evil.py", "kind": "added"},
            {"path": "demo/x.py", "kind": "content"},
        ]


def test_vsa_refuses_a_provenance_of_another_file(
    strategy: Strategy, run: BuildRun, verification: Verification
) -> None:
    provenance = provenance_statement(make_result(), strategy, run)
    other = make_result(rebuilt_sha256="0" * 64)
    with pytest.raises(VerificationError):
        verification_summary_statement(other, verification, provenance)


@pytest.mark.parametrize("verdict", [Verdict.FAILED, Verdict.UNSUPPORTED])
def test_failures_get_their_own_statement(
    strategy: Strategy, verification: Verification, verdict: Verdict
) -> None:
    result = make_result(verdict)
    statement = failure_statement(result, verification, strategy)
    assert statement["predicateType"] == FAILURE_PREDICATE_TYPE
    assert statement["subject"][0]["digest"] == {"sha256": PUBLISHED}
    assert statement["predicate"]["verdict"] == verdict.value
    if verdict is Verdict.FAILED:
        assert statement["predicate"]["reasonClass"] == "build"
        assert statement["predicate"]["reason"] == "backend crashed"
    with pytest.raises(AttestationError):
        verification_summary_statement(result, verification, {})
    assert failure_statement(result, verification)["predicate"]["strategy"] is None


def test_wrong_inputs_are_refused(
    strategy: Strategy, run: BuildRun, verification: Verification
) -> None:
    with pytest.raises(AttestationError, match="no rebuilt file"):
        provenance_statement(make_result(Verdict.FAILED), strategy, run)
    with pytest.raises(AttestationError, match="strategy is for"):
        provenance_statement(make_result(filename="other.whl"), strategy, run)
    with pytest.raises(AttestationError, match="hex sha256"):
        provenance_statement(make_result(rebuilt_sha256="ABC"), strategy, run)
    with pytest.raises(AttestationError, match="image digest"):
        provenance_statement(make_result(), replace(strategy, image_digest="latest"), run)
    with pytest.raises(AttestationError, match="finish before"):
        provenance_statement(
            make_result(), strategy, replace(run, finished_on=run.started_on - timedelta(1))
        )
    with pytest.raises(AttestationError, match="time zone"):
        provenance_statement(make_result(), strategy, replace(run, started_on=datetime(2025, 1, 1)))
    with pytest.raises(AttestationError, match="not a failure"):
        failure_statement(make_result(), verification)


def test_times_are_rfc3339_utc() -> None:
    moment = datetime(2025, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2025-06-01T10:00:00Z"
    assert rfc3339(datetime(2025, 6, 1, tzinfo=UTC)) == "2025-06-01T00:00:00Z"


def test_purl_follows_the_pypi_rules() -> None:
    assert pypi_purl("Django_Rest", "3.0", "x.whl") == "pkg:pypi/django-rest@3.0?file_name=x.whl"


def test_canonical_json_is_deterministic_and_refuses_nan() -> None:
    assert canonical_json({"b": 1, "a": ["é"]}) == '{"a":["é"],"b":1}'.encode()
    with pytest.raises(AttestationError):
        canonical_json({"x": float("nan")})


def _good(strategy: Strategy, run: BuildRun, verification: Verification) -> list[dict[str, Any]]:
    prov = provenance_statement(make_result(Verdict.MISMATCH), strategy, run)
    return [
        prov,
        verification_summary_statement(make_result(Verdict.MISMATCH), verification, prov),
        failure_statement(make_result(Verdict.FAILED), verification),
    ]


BREAKAGES: list[tuple[str, Callable[[Any], object]]] = [
    ("_type", lambda s: s.update(_type="https://in-toto.io/Statement/v0.1")),
    ("no subject", lambda s: s.update(subject=[])),
    ("subject digest", lambda s: s["subject"][0]["digest"].update(sha256="XYZ")),
    ("short digest", lambda s: s["subject"][0]["digest"].update(sha256="ab" * 31)),
    ("empty digest", lambda s: s["subject"][0].update(digest={})),
    ("no predicate", lambda s: s.pop("predicate")),
]


@pytest.mark.parametrize(("_name", "breakage"), BREAKAGES)
def test_validator_catches_broken_statements(
    strategy: Strategy, run: BuildRun, verification: Verification, _name: str, breakage: Any
) -> None:
    for statement in _good(strategy, run, verification):
        validate_statement(statement)
        broken = copy.deepcopy(statement)
        breakage(broken)
        with pytest.raises(AttestationError):
            validate_statement(broken)


PREDICATE_BREAKAGES: dict[str, list[Callable[[Any], object]]] = {
    PROVENANCE_PREDICATE_TYPE: [
        lambda p: p["buildDefinition"].pop("buildType"),
        lambda p: p["buildDefinition"].update(externalParameters=[]),
        lambda p: p["buildDefinition"]["resolvedDependencies"].append({"name": "no uri or digest"}),
        lambda p: p["buildDefinition"]["resolvedDependencies"][0]["digest"].update(sha256="1"),
        lambda p: p["runDetails"]["builder"].pop("id"),
        lambda p: p["runDetails"]["metadata"].update(startedOn="yesterday"),
        lambda p: p["runDetails"]["metadata"].update(finishedOn="2025-13-01T00:00:00Z"),
    ],
    VSA_PREDICATE_TYPE: [
        lambda p: p["verifier"].pop("id"),
        lambda p: p.update(verificationResult="MAYBE"),
        lambda p: p.update(timeVerified="2025-01-01 00:00:00"),
        lambda p: p.pop("resourceUri"),
        lambda p: p.update(policy={}),
        lambda p: p.update(verifiedLevels="FAILED"),
        lambda p: p["inputAttestations"][0]["digest"].update(sha256="zz"),
        lambda p: p[VSA_EXTENSION_KEY].update(verdict="fine"),
        lambda p: p[VSA_EXTENSION_KEY].update(risk="harmless"),
    ],
    FAILURE_PREDICATE_TYPE: [
        lambda p: p.update(verdict="reproducible"),
        lambda p: p.update(reason=3),
        lambda p: p.pop("timeVerified"),
    ],
}


def test_validator_knows_each_predicate(
    strategy: Strategy, run: BuildRun, verification: Verification
) -> None:
    count = 0
    for statement in _good(strategy, run, verification):
        for breakage in PREDICATE_BREAKAGES[statement["predicateType"]]:
            broken = copy.deepcopy(statement)
            breakage(broken["predicate"])
            with pytest.raises(AttestationError):
                validate_statement(broken)
            count += 1
    assert count == sum(len(v) for v in PREDICATE_BREAKAGES.values())


def test_signed_statement_round_trip_and_subject_check(
    strategy: Strategy, run: BuildRun, verification: Verification, ed_key: LocalKeySigner
) -> None:
    result = make_result()
    provenance = provenance_statement(result, strategy, run)
    vsa = verification_summary_statement(result, verification, provenance)
    envelope = sign_statement(vsa, ed_key)
    assert envelope.payload == canonical_json(vsa)
    statement, _ = open_statement(envelope, Keyring((ed_key.public_key,)))
    assert statement.predicate == json.loads(canonical_json(vsa))["predicate"]
    assert statement.check_subject(PUBLISHED, FILENAME).uri == vsa["subject"][0]["uri"]
    with pytest.raises(VerificationError, match="not about"):
        statement.check_subject(REBUILT)
    with pytest.raises(VerificationError):
        statement.check_subject(PUBLISHED, "other-1.0-py3-none-any.whl")


def test_parse_statement_rejects_non_json() -> None:
    with pytest.raises(AttestationError):
        parse_statement(b"\xff")
    with pytest.raises(AttestationError):
        parse_statement(b"[]")
