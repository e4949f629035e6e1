"""The log's commands on the real PostgreSQL: outcomes recorded by the fleet's own code,
`rebuilder export`, then `rebuilder verify` of the exported tree offline; tampering
with a line, a proof or a checkpoint fails; `rebuilder log ...`; the checkpoint hook."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from cli.main import main
from cli.scheduler import checkpoint_hook
from rebuilder.attest.checkpoint import NoteVerifier
from rebuilder.attest.errors import VerificationError
from rebuilder.attest.keys import LocalKeySigner
from rebuilder.attest.log_proofs import ConsistencyProof, verify_consistency_proof
from rebuilder.attest.publish import Attestor, load_or_create_key, public_key_path
from rebuilder.evidence import Evidence
from rebuilder.plan.strategy import Strategy
from rebuilder.settings import Settings
from rebuilder.store.db import Pool
from rebuilder.store.log import TransparencyLog
from rebuilder.store.outcomes import SignedStatement
from rebuilder.store.repository import PostgresStore
from rebuilder.verdict import FileResult, Verdict
from tests.integration.store.factories import index_file
from tests.unit.attest.conftest import FILENAME, strategy  # noqa: F401 - a fixture

KEY_NAME = "rebuild.example"


@dataclass
class Fleet:
    env: dict[str, str]
    key: LocalKeySigner
    origin: str
    store: PostgresStore
    tmp: Path
    strategy: Strategy

    @property
    def out(self) -> Path:
        return self.tmp / "export"

    @property
    def log(self) -> TransparencyLog:
        return TransparencyLog(self.store._pool, self.origin)

    def settings(self, **changes: object) -> Settings:
        return Settings(
            database_url=self.env["REBUILDER_DATABASE_URL"],
            signing_key=self.tmp / "signing-key.pem",
            log_origin=self.origin,
            log_key_name=KEY_NAME,
            **changes,  # type: ignore[arg-type]
        )

    def publish(self, version: str, body: bytes) -> Path:
        """A published wheel, rebuilt and recorded by the fleet's own code path."""
        filename = FILENAME.replace("1.0+local", version)
        wheel = self.tmp / filename
        wheel.write_bytes(body)
        sha = hashlib.sha256(body).hexdigest()
        (row,) = self.store.record_release(
            "demo-pkg", version, [index_file("demo-pkg", version, filename, sha256=sha)]
        )
        attempt = self.store.request_attempt(row.id, 5)
        assert attempt is not None and self.store.start_attempt(attempt, "w") is not None
        evidence = Evidence.for_file(self.tmp / "ev", "Demo_Pkg", version, filename)
        evidence.write_strategy(replace(self.strategy, version=version, target=filename))
        result = FileResult(
            "Demo_Pkg",
            version,
            filename,
            Verdict.REPRODUCIBLE,
            sha,
            rebuilt_sha256=sha,
            seconds=2.0,
            evidence=str(evidence.path),
        )
        attestor = Attestor(signer=self.key, builder_id="https://rebuild.example/b", root=self.tmp)
        envelopes = attestor.sign(result)
        assert self.store.record_outcome(
            attempt,
            result,
            worker="w",
            strategy_json=None,
            image_digest=None,
            evidence_manifest=None,
            statements=[
                SignedStatement(kind, e.dumps())
                for kind, e in zip(("provenance", "vsa"), envelopes, strict=True)
            ],
            log_origin=self.origin,
        )
        return wheel

    def verify(self, wheel: Path, *extra: str) -> int:
        return main(
            [
                "verify",
                str(wheel),
                "--attestations",
                str(self.out),
                "--key",
                str(public_key_path(self.tmp / "signing-key.pem")),
                *extra,
            ]
        )

    def bundle(self, wheel: Path) -> Path:
        return (
            self.out
            / "pypi"
            / "demo-pkg"
            / wheel.name.split("-")[1]
            / wheel.name
            / ("rebuild.intoto.jsonl")
        )


@pytest.fixture
def fleet(
    tmp_path: Path,
    fleet_url: str,
    store: PostgresStore,
    strategy: Strategy,  # noqa: F811 - the imported fixture
    monkeypatch: pytest.MonkeyPatch,
) -> Fleet:
    key = load_or_create_key(tmp_path / "signing-key.pem")
    origin = f"rebuild.example/log/{uuid.uuid4().hex[:8]}"
    env = {
        "REBUILDER_DATABASE_URL": fleet_url,
        "REBUILDER_SIGNING_KEY": str(tmp_path / "signing-key.pem"),
        "REBUILDER_LOG_ORIGIN": origin,
        "REBUILDER_LOG_KEY_NAME": KEY_NAME,
        "REBUILDER_CACHE_DIR": str(tmp_path / "cache"),
        "COLUMNS": "400",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # other entries in the log first, so indexes and proofs are not trivial
    log = TransparencyLog(store._pool, origin)
    log.append_many(f'{{"payload":"unrelated {n}"}}' for n in range(5))
    return Fleet(env, key, origin, store, tmp_path, strategy)


def test_export_then_verify_offline(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    wheel = fleet.publish("1.0", b"published wheel one")
    assert main(["export", str(fleet.out)]) == 0
    assert "1 written, 0 unchanged; checkpoint 7" in capsys.readouterr().out
    assert (fleet.out / "log" / "checkpoint").read_text() == fleet.log.latest_checkpoint().note  # type: ignore[union-attr]
    vkey = NoteVerifier(KEY_NAME, fleet.key.public_key).vkey()
    assert (fleet.out / "log" / "key").read_text().strip() == vkey
    assert fleet.verify(wheel) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and "log inclusion: verified (checkpoint 7)" in out
    assert fleet.verify(wheel, "--log-key", str(fleet.out / "log" / "key")) == 0
    capsys.readouterr()

    # the log grows: only the new file is written; the old proof stays valid
    second = fleet.publish("2.0", b"published wheel two")
    assert main(["export", str(fleet.out)]) == 0
    assert "1 written, 1 unchanged; checkpoint 9" in capsys.readouterr().out
    assert fleet.verify(second) == 0
    assert "log inclusion: verified (checkpoint 9)" in capsys.readouterr().out
    assert fleet.verify(wheel) == 0
    assert "log inclusion: verified (checkpoint 7)" in capsys.readouterr().out


def _tampered(fleet: Fleet, capsys: pytest.CaptureFixture[str], wheel: Path, why: str) -> None:
    assert fleet.verify(wheel) != 0
    captured = capsys.readouterr()
    assert why in captured.out + captured.err


def test_tampering_fails_verify(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    wheel = fleet.publish("1.0", b"published wheel one")
    assert main(["export", str(fleet.out)]) == 0
    bundle = fleet.bundle(wheel)
    proof = bundle.with_name(bundle.name + ".log.json")
    good_bundle, good_proof = bundle.read_text(), proof.read_text()

    # a payload byte changed: the envelope signature breaks
    lines = good_bundle.splitlines()
    envelope = json.loads(lines[1])
    envelope["payload"] = envelope["payload"][:-4] + (
        "AAAA" if envelope["payload"][-4:] != "AAAA" else "BBBB"
    )
    bundle.write_text(f"{lines[0]}\n{json.dumps(envelope)}\n")
    _tampered(fleet, capsys, wheel, "error")

    # the same signed envelope re-encoded: signatures hold, the log does not have it
    bundle.write_text(f"{lines[0]}\n{json.dumps(json.loads(lines[1]))}\n")
    _tampered(fleet, capsys, wheel, "bundle line 2: the proof is for another entry")

    # lines swapped
    bundle.write_text(f"{lines[1]}\n{lines[0]}\n")
    _tampered(fleet, capsys, wheel, "bundle line 1: the proof is for another entry")
    bundle.write_text(good_bundle)

    # a proof hash changed
    doc = json.loads(good_proof)
    doc["entries"][1]["hashes"][-1] = "ab" * 32
    proof.write_text(json.dumps(doc))
    _tampered(fleet, capsys, wheel, "bundle line 2: leaf 6 is not in the tree of size 7")

    # the checkpoint's root replaced by another (its signature no longer holds)
    doc = json.loads(good_proof)
    text, _, sigs = doc["checkpoint"].partition("\n\n")
    head = text.split("\n")
    head[2] = "A" * 43 + "="
    doc["checkpoint"] = "\n".join(head) + "\n\n" + sigs
    proof.write_text(json.dumps(doc))
    _tampered(fleet, capsys, wheel, "on this note is invalid")
    proof.write_text(good_proof)
    assert fleet.verify(wheel) == 0


def test_log_commands(fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    wheel = fleet.publish("1.0", b"published wheel one")
    assert main(["log", "key"]) == 0
    vkey = capsys.readouterr().out.strip()
    trusted = [NoteVerifier.from_vkey(vkey)]
    assert main(["log", "checkpoint"]) == 2  # none yet
    assert "no checkpoint yet" in capsys.readouterr().err
    assert main(["log", "checkpoint", "--sign"]) == 0
    first = capsys.readouterr().out
    assert first.startswith(f"{fleet.origin}\n7\n")
    assert main(["log", "checkpoint"]) == 0
    assert capsys.readouterr().out == first

    # the proof file of a file, by path or sha256, is what export writes
    assert main(["log", "proof", str(wheel)]) == 0
    proof = capsys.readouterr().out
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert main(["log", "proof", sha]) == 0
    assert capsys.readouterr().out == proof
    assert main(["export", str(fleet.out)]) == 0
    capsys.readouterr()
    bundle = fleet.bundle(wheel)
    assert bundle.with_name(bundle.name + ".log.json").read_text() == proof
    assert main(["log", "proof", "0" * 64]) == 2
    assert main(["log", "proof", sha, "--size", "6"]) == 2  # no checkpoint of that size
    capsys.readouterr()

    # consistency between two signed checkpoints verifies
    fleet.publish("2.0", b"published wheel two")
    assert main(["log", "checkpoint", "--sign"]) == 0
    second = capsys.readouterr().out
    assert main(["log", "consistency", "7", "9"]) == 0
    consistency = ConsistencyProof.from_json(capsys.readouterr().out)
    assert verify_consistency_proof(consistency, first, second, trusted).size == 9
    forked = ConsistencyProof(fleet.origin, 7, 9, (b"\x00" * 32, *consistency.hashes[1:]))
    with pytest.raises(VerificationError):
        verify_consistency_proof(forked, first, second, trusted)

    assert main(["log", "audit"]) == 0
    out = capsys.readouterr().out
    assert "audited" in out and "9 entries" in out and "signature verified" in out


def test_audit_fails_on_a_rewritten_log(
    fleet: Fleet, pool: Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.publish("1.0", b"published wheel one")
    assert main(["log", "checkpoint", "--sign"]) == 0
    capsys.readouterr()
    with pool.connection() as conn, conn.transaction():
        conn.execute("ALTER TABLE log_entries DISABLE TRIGGER log_entries_append_only")
        conn.execute(
            "UPDATE log_entries SET entry = %s, leaf_hash = sha256('\\x00'::bytea || %s) "
            "WHERE origin = %s AND leaf_index = 2",
            (b'{"payload":"rewritten"}', b'{"payload":"rewritten"}', fleet.origin),
        )
        conn.execute("ALTER TABLE log_entries ENABLE TRIGGER log_entries_append_only")
    assert main(["log", "audit"]) == 1
    assert "FAILED its audit" in capsys.readouterr().out


def test_checkpoint_hook_signs_once_per_interval_when_the_log_grew(
    fleet: Fleet, pool: Pool
) -> None:
    hook = checkpoint_hook(fleet.settings(checkpoint_interval=0), pool)
    hook()
    log = fleet.log
    first = log.latest_checkpoint()
    assert first is not None and first.tree_size == 5 and first.key_name == KEY_NAME
    hook()
    hook()
    with pool.connection() as conn:
        count = conn.execute(
            "SELECT count(*) FROM log_checkpoints WHERE origin = %s", (fleet.origin,)
        ).fetchone()
    assert count == (1,)  # the log did not grow
    fleet.publish("1.0", b"published wheel one")
    hook()
    latest = log.latest_checkpoint()
    assert latest is not None and latest.tree_size == 7

    slow = checkpoint_hook(fleet.settings(checkpoint_interval=3600), pool)
    fleet.publish("2.0", b"published wheel two")
    slow()  # grew, but the latest checkpoint is seconds old
    latest = log.latest_checkpoint()
    assert latest is not None and latest.tree_size == 7


def test_export_refuses_a_log_that_no_longer_leads_to_its_checkpoint(
    fleet: Fleet, pool: Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.publish("1.0", b"published wheel one")
    assert main(["log", "checkpoint", "--sign"]) == 0
    capsys.readouterr()
    with pool.connection() as conn, conn.transaction():
        conn.execute("ALTER TABLE log_entries DISABLE TRIGGER log_entries_append_only")
        conn.execute(
            "UPDATE log_entries SET entry = %s, leaf_hash = sha256('\\x00'::bytea || %s) "
            "WHERE origin = %s AND leaf_index = 0",
            (b'{"payload":"rewritten"}', b'{"payload":"rewritten"}', fleet.origin),
        )
        conn.execute("ALTER TABLE log_entries ENABLE TRIGGER log_entries_append_only")
    assert main(["export", str(fleet.out)]) == 2  # signing first refuses the new history
    assert "refusing to sign" in capsys.readouterr().err
    assert main(["export", "--no-sign", str(fleet.out)]) == 2
    assert "do not lead to the checkpoint of size 7" in capsys.readouterr().err
    assert not list(fleet.out.rglob("*.log.json"))


def test_audit_fails_on_a_checkpoint_whose_signature_was_replaced(
    fleet: Fleet, pool: Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.publish("1.0", b"published wheel one")
    assert main(["log", "checkpoint", "--sign"]) == 0
    note = capsys.readouterr().out
    text, _, signature = note.partition("\n\n")
    prefix, _, blob = signature.strip().rpartition(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1  # one bit of the Ed25519 signature
    forged = f"{text}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n"
    with pool.connection() as conn:
        conn.execute(
            "UPDATE log_checkpoints SET note = %s WHERE origin = %s", (forged, fleet.origin)
        )
    assert main(["log", "audit"]) == 1
    assert "latest checkpoint does not verify" in capsys.readouterr().out


def test_export_of_chosen_projects(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    wheel = fleet.publish("1.0", b"published wheel one")
    assert main(["export", str(fleet.out), "--project", "someone-else"]) == 0
    assert "0 written, 0 unchanged" in capsys.readouterr().out
    assert not fleet.bundle(wheel).exists()
    assert main(["export", str(fleet.out), "--project", "Demo_Pkg"]) == 0  # normalized
    assert "1 written, 0 unchanged" in capsys.readouterr().out
    assert fleet.bundle(wheel).is_file()
