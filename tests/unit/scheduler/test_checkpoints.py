"""The scheduler's checkpoint hook: signs once per interval, and only when the log grew."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli.signing import operator_log_signing
from rebuilder.attest.checkpoint import NoteVerifier, verify_checkpoint
from rebuilder.attest.keys import KeyAlgorithm, LocalKeySigner, generate_key
from rebuilder.errors import UsageError
from rebuilder.settings import Settings
from rebuilder.store.log_signing import log_key_name, log_signing
from scheduler.checkpoints import Checkpointer
from tests.support.memlog import MemoryLog

ORIGIN = "rebuilder.test/log"
NAME = "rebuilder.test"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def key() -> LocalKeySigner:
    return generate_key()


def _setup(key: LocalKeySigner, interval: float = 60) -> tuple[MemoryLog, Clock, Checkpointer]:
    clock = Clock()
    log = MemoryLog(ORIGIN, clock=clock)
    return log, clock, Checkpointer(log, key, NAME, interval=interval, clock=clock)


def test_signs_once_per_interval_and_only_when_the_log_grew(key: LocalKeySigner) -> None:
    log, clock, checkpointer = _setup(key)
    assert checkpointer.tick() is None  # an empty log: nothing to sign
    log.add_file("demo", "1", "demo-1.whl", ['{"a":1}'])
    note = checkpointer.tick()  # the first checkpoint is signed at once
    assert note is not None
    head = verify_checkpoint(note, [NoteVerifier(NAME, key.public_key)], origin=ORIGIN)
    assert head.size == 1
    log.add_file("demo", "2", "demo-2.whl", ['{"a":2}'])
    clock.now = T0 + timedelta(seconds=59)
    assert checkpointer.tick() is None  # grew, but too soon
    clock.now = T0 + timedelta(seconds=60)
    checkpointer()  # the hook form
    assert [c.tree_size for c in log.checkpoints] == [1, 2]
    clock.now = T0 + timedelta(seconds=600)
    assert checkpointer.tick() is None  # long enough, but nothing new
    assert len(log.checkpoints) == 2


def test_the_pace_survives_a_restart(key: LocalKeySigner) -> None:
    log, clock, checkpointer = _setup(key, interval=30)
    log.add_file("demo", "1", "demo-1.whl", ['{"a":1}'])
    assert checkpointer.tick() is not None
    log.add_file("demo", "2", "demo-2.whl", ['{"a":2}'])
    clock.now = T0 + timedelta(seconds=10)
    again = Checkpointer(log, key, NAME, interval=30, clock=clock)  # a new scheduler
    assert again.tick() is None  # the stored checkpoint is 10 s old
    clock.now = T0 + timedelta(seconds=30)
    assert again.tick() is not None


def test_a_negative_interval_is_refused(key: LocalKeySigner) -> None:
    with pytest.raises(ValueError, match="not negative"):
        Checkpointer(MemoryLog(ORIGIN), key, NAME, interval=-1)


def test_key_name_from_settings(tmp_path: Path) -> None:
    assert log_key_name(Settings(builder_id="https://rebuild.example.org/builders/1")) == (
        "rebuild.example.org"
    )
    assert log_key_name(Settings(log_key_name="ops.example")) == "ops.example"
    with pytest.raises(UsageError, match="REBUILDER_LOG_KEY_NAME"):
        log_key_name(Settings(builder_id="urn:uuid:1234"))
    with pytest.raises(UsageError, match="REBUILDER_LOG_KEY_NAME"):
        log_key_name(Settings(log_key_name="a b"))
    signing = operator_log_signing(
        Settings(signing_key=tmp_path / "k.pem", log_key_name="ops.example")
    )
    assert signing.name == "ops.example"
    assert (tmp_path / "k.pem").is_file()  # made on first use
    assert signing.verifier().vkey().startswith("ops.example+")


def test_only_an_ed25519_key_may_sign_checkpoints() -> None:
    ed25519 = log_signing(generate_key(), "ops.example")
    assert ed25519.verifier().name == "ops.example"
    with pytest.raises(UsageError, match="the operator key cannot sign checkpoints"):
        log_signing(generate_key(KeyAlgorithm.ECDSA_P256), "ops.example", key="the operator key")
