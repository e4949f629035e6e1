"""Signing bundles from recorded evidence, and verifying them offline."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.keys import Keyring, generate_key
from rebuilder.attest.publish import Attestor, load_or_create_key, public_key_path
from rebuilder.attest.verify import bundle_for_file, bundles_for_release, verify_bundle
from rebuilder.errors import FailureReason
from rebuilder.evidence import Evidence
from rebuilder.plan.strategy import Strategy
from rebuilder.verdict import Difference, DifferenceKind, FileResult, StabilizerUse, Verdict
from tests.unit.attest.conftest import FILENAME

WHEEL = FILENAME
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _published(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / WHEEL
    path.write_bytes(b"published wheel bytes")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _result(
    tmp_path: Path, sha: str, verdict: Verdict, strategy: Strategy, **extra: object
) -> FileResult:
    evidence = Evidence.for_file(tmp_path / "out", strategy.project, strategy.version, WHEEL)
    evidence.write_strategy(strategy)
    return FileResult(
        strategy.project,
        strategy.version,
        WHEEL,
        verdict,
        sha,
        rebuilt_sha256="ee" * 32,
        seconds=3.0,
        evidence=str(evidence.path),
        **extra,  # type: ignore[arg-type]
    )


def test_reproducible_file_verifies_offline(tmp_path: Path, strategy: Strategy) -> None:
    path, sha = _published(tmp_path)
    signer = generate_key()
    attestor = Attestor(
        signer=signer,
        builder_id="https://example.invalid/b",
        root=tmp_path / "out",
        clock=lambda: NOW,
    )
    attestor.attest(_result(tmp_path, sha, Verdict.REPRODUCIBLE, strategy))
    bundle, expected = bundle_for_file(path, tmp_path / "out")
    assert (expected.sha256, expected.filename) == (sha, WHEEL)
    checked = verify_bundle(bundle, Keyring.of([signer.public_key]), expected)
    assert checked.passed
    assert (checked.verdict, checked.key_ids) == ("reproducible", (signer.key_id,))
    assert bundles_for_release("demo.pkg", "1.0+local", tmp_path / "out") == [bundle]


def test_equivalent_names_its_stabilizers_and_mismatch_fails(
    tmp_path: Path, strategy: Strategy
) -> None:
    path, sha = _published(tmp_path)
    signer = generate_key()
    attestor = Attestor(
        signer=signer, builder_id="https://example.invalid/b", root=tmp_path / "out"
    )
    keyring = Keyring.of([signer.public_key])
    attestor.attest(
        _result(
            tmp_path,
            sha,
            Verdict.EQUIVALENT,
            strategy,
            stabilizers=(StabilizerUse("zip-timestamps", 1),),
        )
    )
    bundle, expected = bundle_for_file(path, tmp_path / "out")
    assert verify_bundle(bundle, keyring, expected).stabilizers == ("zip-timestamps@1",)
    attestor.attest(
        _result(
            tmp_path,
            sha,
            Verdict.MISMATCH,
            strategy,
            differences=(Difference("demo/x.py", DifferenceKind.CONTENT),),
        )
    )
    checked = verify_bundle(bundle, keyring, expected)
    assert (checked.passed, checked.result, checked.differences) == (
        False,
        "FAILED",
        ("content:demo/x.py",),
    )


def test_failed_rebuild_is_attested_but_never_passes(tmp_path: Path) -> None:
    path, sha = _published(tmp_path)
    signer = generate_key()
    Attestor(signer=signer, builder_id="https://example.invalid/b", root=tmp_path / "out").attest(
        FileResult(
            "Demo_Pkg",
            "1.0+local",
            WHEEL,
            Verdict.FAILED,
            sha,
            reason="backend crashed",
            reason_class=FailureReason.BUILD,
        )
    )
    bundle, expected = bundle_for_file(path, tmp_path / "out")
    checked = verify_bundle(bundle, Keyring.of([signer.public_key]), expected)
    assert (checked.passed, checked.verdict, checked.reason) == (False, "failed", "backend crashed")


def test_other_file_wrong_key_and_edited_bundle_are_refused(
    tmp_path: Path, strategy: Strategy
) -> None:
    path, sha = _published(tmp_path)
    signer = generate_key()
    Attestor(signer=signer, builder_id="https://example.invalid/b", root=tmp_path / "out").attest(
        _result(tmp_path, sha, Verdict.REPRODUCIBLE, strategy)
    )
    bundle, expected = bundle_for_file(path, tmp_path / "out")
    keyring = Keyring.of([signer.public_key])
    with pytest.raises(VerificationError):
        verify_bundle(bundle, keyring, replace(expected, sha256="00" * 32))
    with pytest.raises(VerificationError):
        verify_bundle(bundle, Keyring.of([generate_key().public_key]), expected)
    lines = bundle.read_text().splitlines()
    envelope = json.loads(lines[1])
    envelope["payload"] = envelope["payload"][:-8] + "AAAAAAA="
    bundle.write_text(lines[0] + "\n" + json.dumps(envelope) + "\n")
    with pytest.raises((VerificationError, AttestationError)):
        verify_bundle(bundle, keyring, expected)


def test_signing_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing-key.pem"
    first = load_or_create_key(path)
    assert path.stat().st_mode & 0o077 == 0
    assert public_key_path(path).is_file()
    assert load_or_create_key(path).key_id == first.key_id
