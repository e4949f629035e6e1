from __future__ import annotations

import base64
import json
from pathlib import Path, PurePosixPath

import pytest

from rebuilder.attest.bundle import (
    bundle_path,
    dumps_bundle,
    loads_bundle,
    read_bundle,
    sign_bundle,
    statements_for,
    write_bundle,
)
from rebuilder.attest.dsse import open_statement
from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.keys import Keyring, LocalKeySigner
from rebuilder.attest.statements import (
    FAILURE_PREDICATE_TYPE,
    PROVENANCE_PREDICATE_TYPE,
    VSA_PREDICATE_TYPE,
    BuildRun,
    Verification,
    statement_digest,
)
from rebuilder.plan.strategy import Strategy
from rebuilder.verdict import Verdict

from .conftest import FILENAME, PUBLISHED, make_result


def test_bundle_path_layout() -> None:
    assert bundle_path("Demo_Pkg", "1.0+local", FILENAME) == PurePosixPath(
        "pypi/demo-pkg/1.0+local", FILENAME, "rebuild.intoto.jsonl"
    )


@pytest.mark.parametrize(
    ("project", "version", "filename"),
    [
        ("../etc", "1.0", "x.whl"),
        ("demo", "../../1.0", "x.whl"),
        ("demo", "1.0", "../x.whl"),
        ("demo", "1.0", "a/b.whl"),
        ("demo", "1.0", "a\\b.whl"),
        ("demo", "1.0", ".."),
        ("demo", "1.0", "x..whl"),
        ("demo/x", "1.0", "x.whl"),
        ("demo", "1.0", "/abs.whl"),
        ("demo", "1.0", "x\x00.whl"),
        ("", "1.0", "x.whl"),
        ("demo", "", "x.whl"),
        ("demo", "1.0", "x" * 300),
    ],
)
def test_hostile_names_are_refused(project: str, version: str, filename: str) -> None:
    with pytest.raises(AttestationError):
        bundle_path(project, version, filename)


def test_write_read_verify_round_trip(
    tmp_path: Path,
    strategy: Strategy,
    run: BuildRun,
    verification: Verification,
    ed_key: LocalKeySigner,
) -> None:
    result = make_result(Verdict.EQUIVALENT)
    statements = statements_for(result, strategy, run, verification)
    assert [s["predicateType"] for s in statements] == [
        PROVENANCE_PREDICATE_TYPE,
        VSA_PREDICATE_TYPE,
    ]
    envelopes = sign_bundle(statements, ed_key)
    path = write_bundle(tmp_path, result.project, result.version, result.filename, envelopes)
    assert path == tmp_path / bundle_path(result.project, result.version, result.filename)
    assert path.read_text().count("\n") == 2
    loaded = read_bundle(path)
    assert loaded == envelopes
    ring = Keyring((ed_key.public_key,))
    (provenance, _), (vsa, _) = (open_statement(e, ring) for e in loaded)
    vsa.check_subject(PUBLISHED, FILENAME)
    assert vsa.predicate["inputAttestations"][0]["digest"]["sha256"] == statement_digest(
        statements[0]
    )
    assert provenance.predicate_type == PROVENANCE_PREDICATE_TYPE
    # Rewriting replaces the bundle whole.
    write_bundle(tmp_path, result.project, result.version, result.filename, envelopes[:1])
    assert len(read_bundle(path)) == 1
    assert [p.name for p in path.parent.iterdir()] == ["rebuild.intoto.jsonl"]


def test_failures_bundle_one_statement(verification: Verification) -> None:
    statements = statements_for(make_result(Verdict.FAILED), None, None, verification)
    assert [s["predicateType"] for s in statements] == [FAILURE_PREDICATE_TYPE]
    with pytest.raises(AttestationError):
        statements_for(make_result(), None, None, verification)


def test_a_tampered_bundle_line_fails_verification(
    strategy: Strategy, run: BuildRun, verification: Verification, ed_key: LocalKeySigner
) -> None:
    envelopes = sign_bundle(statements_for(make_result(), strategy, run, verification), ed_key)
    lines = dumps_bundle(envelopes).splitlines()
    data = json.loads(lines[1])
    payload = json.loads(base64.b64decode(data["payload"]))
    payload["predicate"]["verificationResult"] = "PASSED"
    payload["subject"][0]["digest"]["sha256"] = "0" * 64
    data["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    tampered = loads_bundle("\n".join([lines[0], json.dumps(data)]) + "\n")
    with pytest.raises(VerificationError):
        open_statement(tampered[1], Keyring((ed_key.public_key,)))


def test_symlinks_below_the_root_are_not_followed(
    tmp_path: Path,
    strategy: Strategy,
    run: BuildRun,
    verification: Verification,
    ed_key: LocalKeySigner,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    (root / "pypi").mkdir(parents=True)
    (root / "pypi" / "demo-pkg").symlink_to(outside)
    envelopes = sign_bundle(statements_for(make_result(), strategy, run, verification), ed_key)
    with pytest.raises(AttestationError, match="symbolic link"):
        write_bundle(root, "Demo_Pkg", "1.0+local", FILENAME, envelopes)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("text", ["", "\n\n", "not json\n", '{"payload": ""}\n', b"\xff\n"])
def test_malformed_bundles_are_rejected(text: str | bytes) -> None:
    with pytest.raises(AttestationError):
        loads_bundle(text)
