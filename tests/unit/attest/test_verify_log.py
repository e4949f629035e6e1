"""`rebuilder verify` on an exported tree: the log proof beside a bundle is checked
offline (good, bad and missing proof, tampered line, untrusted checkpoint, --log-key)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.main import main
from rebuilder.attest.checkpoint import NoteVerifier
from rebuilder.attest.keys import LocalKeySigner, generate_key, save_public_key
from rebuilder.attest.publish import Attestor
from rebuilder.evidence import Evidence
from rebuilder.export import LogKey, export
from rebuilder.plan.strategy import Strategy
from rebuilder.verdict import FileResult, Verdict
from tests.support.memlog import MemoryLog
from tests.unit.attest.conftest import FILENAME

ORIGIN = "rebuilder.test/log"
NAME = "rebuilder.test"


@dataclass
class Exported:
    root: Path
    wheel: Path
    key: LocalKeySigner
    pem: Path
    log: MemoryLog
    bundle: Path

    @property
    def proof(self) -> Path:
        return self.bundle.with_name(self.bundle.name + ".log.json")

    def verify(self, *extra: str) -> int:
        return main(
            [
                "verify",
                str(self.wheel),
                "--attestations",
                str(self.root),
                "--key",
                str(self.pem),
                *extra,
            ]
        )


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps at 80 columns when not a terminal


@pytest.fixture
def exported(tmp_path: Path, strategy: Strategy) -> Exported:
    wheel = tmp_path / FILENAME
    wheel.write_bytes(b"published wheel bytes")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    evidence = Evidence.for_file(tmp_path / "ev", strategy.project, strategy.version, FILENAME)
    evidence.write_strategy(strategy)
    result = FileResult(
        strategy.project,
        strategy.version,
        FILENAME,
        Verdict.REPRODUCIBLE,
        sha,
        rebuilt_sha256=sha,
        seconds=3.0,
        evidence=str(evidence.path),
    )
    key = generate_key()
    envelopes = Attestor(signer=key, builder_id="https://example.invalid/b", root=tmp_path).sign(
        result
    )
    log = MemoryLog(ORIGIN)
    log.add_file("other", "1", "other-1-py3-none-any.whl", ['{"payload":"x"}'] * 1)
    log.add_file(strategy.project, strategy.version, FILENAME, [e.dumps() for e in envelopes])
    log.add_file("later", "1", "later-1-py3-none-any.whl", ['{"payload":"y"}'])
    log.checkpoint(key, NAME)
    root = tmp_path / "export"
    vkey = NoteVerifier(NAME, key.public_key).vkey()
    export(log, root, origin=ORIGIN, key=LogKey(vkey, key.public_key.to_pem()))
    pem = tmp_path / "trusted.pub"
    save_public_key(key.public_key, pem)
    bundle = root / "pypi" / "demo-pkg" / "1.0+local" / FILENAME / "rebuild.intoto.jsonl"
    assert bundle.is_file()
    return Exported(root, wheel, key, pem, log, bundle)


def test_an_exported_bundle_verifies_with_its_log_proof(
    exported: Exported, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exported.verify() == 0
    out = capsys.readouterr().out
    assert "PASSED" in out
    assert "log inclusion: verified (checkpoint 4)" in out


def test_the_exported_log_key_and_pem_are_trusted_alone(
    exported: Exported, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exported.verify("--log-key", str(exported.root / "log" / "key")) == 0
    assert "log inclusion: verified (checkpoint 4)" in capsys.readouterr().out
    vkey = (exported.root / "log" / "key").read_text().strip()
    assert exported.verify("--log-key", vkey) == 0
    stranger = NoteVerifier(NAME, generate_key().public_key).vkey()
    assert exported.verify("--log-key", stranger) == 1
    assert "no trusted key signed this note" in capsys.readouterr().out


def test_without_a_proof_inclusion_is_not_checked(
    exported: Exported, capsys: pytest.CaptureFixture[str]
) -> None:
    exported.proof.unlink()
    assert exported.verify() == 0
    assert "log inclusion: not checked" in capsys.readouterr().out


def test_a_changed_proof_hash_fails(exported: Exported, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(exported.proof.read_text())
    first = doc["entries"][0]["hashes"][0]
    doc["entries"][0]["hashes"][0] = ("0" if first[0] != "0" else "1") + first[1:]
    exported.proof.write_text(json.dumps(doc))
    assert exported.verify() == 1
    out = capsys.readouterr().out
    assert "log inclusion: FAILED" in out
    assert out.startswith("FAILED")  # the headline says FAILED, and why
    assert "decision: the log inclusion check failed" in out
    assert "bundle line 1: leaf 1 is not in the tree of size 4" in out


def test_a_reencoded_envelope_still_signed_but_not_logged_fails(
    exported: Exported, capsys: pytest.CaptureFixture[str]
) -> None:
    # Same envelope, same valid signature, other bytes: not the line that was logged.
    lines = exported.bundle.read_text().splitlines()
    lines[1] = json.dumps(json.loads(lines[1]), indent=None)  # spaces after separators
    exported.bundle.write_text("".join(f"{line}\n" for line in lines))
    assert exported.verify() == 1
    out = capsys.readouterr().out
    assert "signed by" in out  # the signatures still verify
    assert "bundle line 2: the proof is for another entry" in out


def test_a_line_added_to_the_bundle_fails(
    exported: Exported, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = exported.bundle.read_text().splitlines()
    exported.bundle.write_text("".join(f"{line}\n" for line in [*lines, lines[0]]))
    assert exported.verify() == 1
    assert "the bundle has 3 lines and its log proof proves 2" in capsys.readouterr().out


def test_a_checkpoint_by_another_key_fails(
    exported: Exported, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(exported.proof.read_text())
    doc["checkpoint"] = exported.log.checkpoint(generate_key(), NAME)
    exported.proof.write_text(json.dumps(doc))
    assert exported.verify() == 1
    assert "no trusted key signed this note" in capsys.readouterr().out


def test_a_forged_checkpoint_fails(exported: Exported, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(exported.proof.read_text())
    text, _, signatures = doc["checkpoint"].partition("\n\n")
    origin, size, root = text.split("\n")[:3]
    doc["checkpoint"] = f"{origin}\n{int(size) + 1}\n{root}\n\n{signatures}"
    exported.proof.write_text(json.dumps(doc))
    assert exported.verify() == 1
    assert "the signature of rebuilder.test on this note is invalid" in capsys.readouterr().out


def test_a_hostile_proof_file_fails_cleanly(
    exported: Exported, capsys: pytest.CaptureFixture[str]
) -> None:
    exported.proof.write_text("[" * 50_000)
    assert exported.verify() == 1
    assert "unreadable" in capsys.readouterr().out
