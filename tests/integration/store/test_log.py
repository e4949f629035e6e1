"""The transparency log on the real PostgreSQL: appends, proofs, concurrency, tampering."""

from __future__ import annotations

import base64
import contextlib
import importlib
import importlib.resources
import json
import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from rebuilder.attest.checkpoint import (
    Checkpoint,
    NoteVerifier,
    sign_checkpoint,
    verify_checkpoint,
)
from rebuilder.attest.dsse import sign_envelope
from rebuilder.attest.errors import VerificationError
from rebuilder.attest.keys import KeyAlgorithm, LocalKeySigner, generate_key
from rebuilder.attest.log_proofs import (
    ConsistencyProof,
    InclusionProof,
    verify_consistency_proof,
    verify_inclusion_proof,
)
from rebuilder.attest.merkle import EMPTY_ROOT, MemoryLeafStore, MerkleTree, leaf_hash
from rebuilder.store.log import LogError, LogIntegrityError, TransparencyLog

KEY_NAME = "rebuilder.test"
MIGRATION = "0100_transparency_log.sql"


def _apply_schema(url: str) -> None:
    try:
        runner = importlib.import_module("rebuilder.store.migrate")
    except ModuleNotFoundError as exc:
        if exc.name != "rebuilder.store.migrate":
            raise
        runner = None
    if runner is not None and hasattr(runner, "migrate"):
        runner.migrate(url)
        return
    script = importlib.resources.files("rebuilder.store.migrations").joinpath(MIGRATION)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(script.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def log_url(database_url: str) -> str:
    _apply_schema(database_url)
    return database_url


@pytest.fixture(scope="module")
def pool(log_url: str) -> Iterator[ConnectionPool[Any]]:
    with ConnectionPool(log_url, min_size=1, max_size=10, open=True) as p:
        yield p


@pytest.fixture
def origin() -> str:
    return f"rebuilder.test/log/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def log(pool: ConnectionPool[Any], origin: str) -> TransparencyLog:
    return TransparencyLog(pool, origin)


@pytest.fixture(scope="module")
def signer() -> LocalKeySigner:
    return generate_key(KeyAlgorithm.ED25519)


@pytest.fixture(scope="module")
def verifier(signer: LocalKeySigner) -> NoteVerifier:
    return NoteVerifier(KEY_NAME, signer.public_key)


def envelope_line(tag: str) -> bytes:
    """A line shaped like one of our DSSE envelopes (the log does not parse it)."""
    payload = base64.b64encode(json.dumps({"tag": tag, "pad": "x" * 300}).encode()).decode()
    doc = {
        "payload": payload,
        "payloadType": "application/vnd.in-toto+json",
        "signatures": [{"keyid": "k" * 64, "sig": base64.b64encode(tag.encode()).decode()}],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def memory_tree(lines: list[bytes]) -> MerkleTree:
    return MerkleTree(MemoryLeafStore(leaf_hash(line) for line in lines))


def stored_lines(url: str, origin: str) -> list[tuple[int, bytes]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT leaf_index, entry FROM log_entries WHERE origin = %s ORDER BY leaf_index",
            (origin,),
        ).fetchall()
    return [(i, bytes(e)) for i, e in rows]


def tamper(url: str, origin: str, *statements: str, **params: object) -> None:
    """Run statements as someone who owns the database (append-only triggers off)."""
    with psycopg.connect(url) as conn:
        conn.execute("SET session_replication_role = replica")
        for statement in statements:
            conn.execute(statement, {"origin": origin, **params})


# --- appends and proofs ------------------------------------------------------------


def assert_history_refused(fresh: TransparencyLog, signer: LocalKeySigner) -> None:
    """A tampered log must neither be signed over again nor pass its own audit."""
    with pytest.raises(LogIntegrityError):
        fresh.checkpoint(signer, KEY_NAME)
    with pytest.raises(LogIntegrityError):
        fresh.audit()


def test_proofs_verify_for_every_size_up_to_50(
    log: TransparencyLog, signer: LocalKeySigner, verifier: NoteVerifier
) -> None:
    lines = [envelope_line(f"e{i}") for i in range(50)]
    notes: dict[int, str] = {}
    for n, line in enumerate(lines, start=1):
        entry = log.append(line)
        assert (entry.index, entry.leaf_hash) == (n - 1, leaf_hash(line))
        notes[n] = log.checkpoint(signer, KEY_NAME)
        head = verify_checkpoint(notes[n], [verifier], origin=log.origin)
        assert head.size == n
        assert head.root_hash == memory_tree(lines[:n]).root() == log.root()
        for i in range(n):
            proof = log.inclusion_proof(i, n)
            assert proof.checkpoint == notes[n]
            wire = InclusionProof.from_json(proof.dumps())
            verify_inclusion_proof(lines[i], wire, None, [verifier], origin=log.origin)
    reference = memory_tree(lines)
    for old in range(51):
        for new in range(old, 51):
            link = ConsistencyProof.from_json(log.consistency_proof(old, new).dumps())
            assert list(link.hashes) == reference.consistency_proof(old, new)
            if old and new:
                verify_consistency_proof(link, notes[old], notes[new], [verifier])


def test_root_equals_the_memory_tree_and_entries_read_back(log: TransparencyLog) -> None:
    lines = [envelope_line(f"r{i}") for i in range(300)]
    assert log.size() == 0
    assert log.root() == EMPTY_ROOT
    for line in lines:
        log.append(line)
    reference = memory_tree(lines)
    assert log.root() == reference.root()
    for size in (1, 63, 64, 65, 128, 255, 256, 299):
        assert log.root(size) == reference.root(size)
    assert log.entry(123) == lines[123]
    found = log.find(lines[200])
    assert found is not None and found.index == 200
    with pytest.raises(LogError):
        log.find(lines[200] + b"\n")  # a line break is never part of a leaf
    assert log.find(envelope_line("never logged")) is None
    with pytest.raises(LogError):
        log.entry(300)


def test_the_same_envelope_is_logged_once(log: TransparencyLog) -> None:
    first = log.append(envelope_line("a"))
    log.append(envelope_line("b"))
    again = log.append(envelope_line("a").decode())
    assert again == first
    assert log.size() == 2
    # The rolled-back attempt left no gap: the next entry takes the next index.
    assert log.append(envelope_line("c")).index == 2


def test_append_many_keeps_order_and_skips_what_is_logged(log: TransparencyLog) -> None:
    log.append(envelope_line("x1"))
    batch = [envelope_line(t) for t in ("y1", "x1", "y2", "y1", "y3")]
    entries = log.append_many(batch)
    assert [e.index for e in entries] == [1, 0, 2, 1, 3]
    assert log.size() == 4
    assert log.append_many([]) == []
    lines = [envelope_line(t) for t in ("x1", "y1", "y2", "y3")]
    assert log.root() == memory_tree(lines).root()
    assert log.append(envelope_line("z")).index == 4


@pytest.mark.parametrize(
    "bad", [b"", b"{}\n", b"{\r}", b"\xff\xfe", "{}\n{}"], ids=["empty", "lf", "cr", "utf8", "two"]
)
def test_malformed_entries_are_refused(log: TransparencyLog, bad: bytes | str) -> None:
    with pytest.raises(LogError):
        log.append(bad)
    assert log.size() == 0


def test_proofs_outside_the_log_are_refused(log: TransparencyLog) -> None:
    log.append_many([envelope_line(str(i)) for i in range(5)])
    with pytest.raises(LogError):
        log.inclusion_proof(5, 5)
    with pytest.raises(LogError):
        log.inclusion_proof(0, 6)
    with pytest.raises(LogError):
        log.consistency_proof(4, 6)
    with pytest.raises(LogError):
        log.consistency_proof(3, 2)
    with pytest.raises(LogError):
        log.inclusion_proof_for(envelope_line("0"))  # no checkpoint yet


def test_a_real_envelope_round_trips_for_a_consumer(
    log: TransparencyLog, signer: LocalKeySigner, verifier: NoteVerifier
) -> None:
    line = sign_envelope(b'{"_type":"https://in-toto.io/Statement/v1"}', signer).dumps()
    log.append_many([envelope_line(str(i)) for i in range(10)])
    log.append(line)
    log.append(envelope_line("after"))
    note = log.checkpoint(signer, KEY_NAME)
    proof = InclusionProof.from_json(log.inclusion_proof_for(line).dumps())
    assert proof.index == 10 and proof.tree_size == 12
    # As read from the bundle file, with its line break.
    head = verify_inclusion_proof(line + "\n", proof, note, [verifier], origin=log.origin)
    assert head.size == 12
    with pytest.raises(VerificationError):
        verify_inclusion_proof(line.replace("a", "b", 1), proof, note, [verifier])
    with pytest.raises(VerificationError):
        verify_inclusion_proof(line, proof, note, [verifier], origin="another/log")
    stranger = NoteVerifier(KEY_NAME, generate_key().public_key)
    with pytest.raises(VerificationError):
        verify_inclusion_proof(line, proof, note, [stranger])


# --- checkpoints ---------------------------------------------------------------------


def test_checkpoints_are_signed_stored_and_not_repeated(
    log: TransparencyLog, signer: LocalKeySigner, verifier: NoteVerifier
) -> None:
    assert log.latest_checkpoint() is None
    empty = log.checkpoint(signer, KEY_NAME)
    assert verify_checkpoint(empty, [verifier]).root_hash == EMPTY_ROOT
    log.append_many([envelope_line(str(i)) for i in range(7)])
    note = log.checkpoint(signer, KEY_NAME)
    assert log.checkpoint(signer, KEY_NAME) == note  # nothing new to sign
    latest = log.latest_checkpoint()
    assert latest is not None
    assert (latest.tree_size, latest.note, latest.key_name) == (7, note, KEY_NAME)
    assert latest.root_hash == verify_checkpoint(note, [verifier], origin=log.origin).root_hash
    at_zero = log.checkpoint_at(0)
    assert at_zero is not None and at_zero.note == empty
    with pytest.raises(LogError):
        log.checkpoint(generate_key(KeyAlgorithm.ECDSA_P256), KEY_NAME)


def test_a_consistency_proof_links_two_checkpoints(
    log: TransparencyLog, signer: LocalKeySigner, verifier: NoteVerifier
) -> None:
    log.append_many([envelope_line(str(i)) for i in range(21)])
    old = log.checkpoint(signer, KEY_NAME)
    log.append_many([envelope_line(str(i)) for i in range(21, 70)])
    new = log.checkpoint(signer, KEY_NAME)
    proof = ConsistencyProof.from_json(log.consistency_proof(21, 70).dumps())
    assert verify_consistency_proof(proof, old, new, [verifier], origin=log.origin).size == 70
    with pytest.raises(VerificationError):
        verify_consistency_proof(proof, new, old, [verifier])
    wrong = log.consistency_proof(20, 70)
    with pytest.raises(VerificationError):
        verify_consistency_proof(wrong, old, new, [verifier])


# --- concurrency -----------------------------------------------------------------------


def _check_one_consistent_tree(
    url: str, origin: str, appended: list[tuple[int, bytes]], expected: int
) -> None:
    stored = stored_lines(url, origin)
    assert [i for i, _ in stored] == list(range(expected)), "gaps or duplicate indexes"
    assert sorted(appended) == stored, "an appender was told a wrong index"
    assert len({line for _, line in stored}) == expected
    with psycopg.connect(url) as conn:
        log = TransparencyLog(conn, origin)
        assert log.size() == expected
        assert log.root() == memory_tree([line for _, line in stored]).root()
        assert log.audit() == expected


def _assert_interleaved(groups: list[list[int]]) -> None:
    """The appenders really raced: some appender's indexes are not one block."""
    assert any(max(g) - min(g) + 1 > len(g) for g in groups), "appends did not overlap"


def test_threads_on_their_own_connections_build_one_tree(log_url: str, origin: str) -> None:
    threads_n, each = 8, 60
    barrier = threading.Barrier(threads_n)
    appended: list[tuple[int, bytes]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    by_thread: dict[int, list[int]] = {}

    def work(t: int) -> None:
        try:
            with psycopg.connect(log_url, autocommit=True) as conn:
                log = TransparencyLog(conn, origin)
                barrier.wait()
                for i in range(each):
                    line = envelope_line(f"t{t}-{i}")
                    if i % 10 == 9:
                        entries = log.append_many([line, envelope_line(f"t{t}-{i}b")])
                        got = [
                            (entries[0].index, line),
                            (entries[1].index, envelope_line(f"t{t}-{i}b")),
                        ]
                    else:
                        got = [(log.append(line).index, line)]
                    with lock:
                        appended.extend(got)
                        by_thread.setdefault(t, []).extend(i for i, _ in got)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    _assert_interleaved(list(by_thread.values()))
    _check_one_consistent_tree(log_url, origin, appended, threads_n * (each + each // 10))


def test_threads_sharing_a_pool_build_one_tree(
    pool: ConnectionPool[Any], log_url: str, origin: str
) -> None:
    log = TransparencyLog(pool, origin)
    appended: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(40):
            line = envelope_line(f"p{t}-{i}")
            index = log.append(line).index
            with lock:
                appended.append((index, line))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    _check_one_consistent_tree(log_url, origin, appended, 320)


def _append_in_process(
    url: str, origin: str, name: str, count: int, barrier: Any, results: Any
) -> None:
    got = []
    with psycopg.connect(url, autocommit=True) as conn:
        log = TransparencyLog(conn, origin)
        barrier.wait(timeout=60)
        for i in range(count):
            line = envelope_line(f"{name}-{i}")
            got.append((log.append(line).index, line))
    results.put(got)


def test_processes_build_one_tree(log_url: str, origin: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_append_in_process, args=(log_url, origin, f"proc{n}", 150, barrier, results)
        )
        for n in range(3)
    ]
    for p in procs:
        p.start()
    appended: list[tuple[int, bytes]] = []
    groups: list[list[int]] = []
    for _ in procs:
        got = results.get(timeout=120)
        appended.extend(got)
        groups.append([i for i, _ in got])
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    _assert_interleaved(groups)
    _check_one_consistent_tree(log_url, origin, appended, 450)


# --- tampering ---------------------------------------------------------------------------


@pytest.fixture
def signed_log(
    log: TransparencyLog, signer: LocalKeySigner
) -> tuple[TransparencyLog, list[bytes], str]:
    lines = [envelope_line(f"t{i}") for i in range(40)]
    log.append_many(lines)
    return log, lines, log.checkpoint(signer, KEY_NAME)


@contextlib.contextmanager
def fresh_log(log_url: str, origin: str) -> Iterator[TransparencyLog]:
    # A new process's view: nothing cached from before the tampering.
    with psycopg.connect(log_url, autocommit=True) as conn:
        yield TransparencyLog(conn, origin)


def test_the_append_only_guard_refuses_ordinary_rewrites(
    signed_log: tuple[TransparencyLog, list[bytes], str], log_url: str
) -> None:
    log, _, _ = signed_log
    with (
        psycopg.connect(log_url) as conn,
        pytest.raises(psycopg.errors.IntegrityConstraintViolation),
    ):
        conn.execute("DELETE FROM log_entries WHERE origin = %s AND leaf_index = 3", (log.origin,))
    with (
        psycopg.connect(log_url) as conn,
        pytest.raises(psycopg.errors.IntegrityConstraintViolation),
    ):
        conn.execute("UPDATE log_heads SET tree_size = 1 WHERE origin = %s", (log.origin,))
    assert log.audit() == 40


def test_a_changed_leaf_is_detected(
    signed_log: tuple[TransparencyLog, list[bytes], str],
    log_url: str,
    signer: LocalKeySigner,
    verifier: NoteVerifier,
) -> None:
    log, lines, note = signed_log
    forged = envelope_line("forged")
    tamper(
        log_url,
        log.origin,
        "UPDATE log_entries SET entry = %(forged)s, "
        "leaf_hash = sha256('\\x00'::bytea || %(forged)s) "
        "WHERE origin = %(origin)s AND leaf_index = 17",
        forged=forged,
    )
    with fresh_log(log_url, log.origin) as fresh:
        assert fresh.entry(17) == forged  # consistent with itself, but not with the note
        with pytest.raises(VerificationError):
            verify_inclusion_proof(forged, fresh.inclusion_proof(17, 40), note, [verifier])
        with pytest.raises(VerificationError):
            verify_inclusion_proof(lines[3], fresh.inclusion_proof(3, 40), note, [verifier])
        assert_history_refused(fresh, signer)


def test_a_removed_entry_is_detected(
    signed_log: tuple[TransparencyLog, list[bytes], str], log_url: str, signer: LocalKeySigner
) -> None:
    log, _, _ = signed_log
    tamper(
        log_url, log.origin, "DELETE FROM log_entries WHERE origin = %(origin)s AND leaf_index = 9"
    )
    with fresh_log(log_url, log.origin) as fresh:
        with pytest.raises(LogIntegrityError):
            fresh.inclusion_proof(30, 40)
        assert_history_refused(fresh, signer)


def test_a_removed_and_renumbered_entry_is_detected(
    signed_log: tuple[TransparencyLog, list[bytes], str],
    log_url: str,
    signer: LocalKeySigner,
    verifier: NoteVerifier,
) -> None:
    log, lines, note = signed_log
    # Close the gap as a careful attacker would, then append so the log regains size 40.
    tamper(
        log_url,
        log.origin,
        "DELETE FROM log_entries WHERE origin = %(origin)s AND leaf_index = 9",
        "UPDATE log_entries SET leaf_index = leaf_index + 1000000 "
        "WHERE origin = %(origin)s AND leaf_index > 9",
        "UPDATE log_entries SET leaf_index = leaf_index - 1000001 "
        "WHERE origin = %(origin)s AND leaf_index > 9",
        "UPDATE log_heads SET tree_size = 39 WHERE origin = %(origin)s",
    )
    with fresh_log(log_url, log.origin) as fresh:
        fresh.append(envelope_line("cover"))
        assert fresh.size() == 40
        with pytest.raises(VerificationError):
            verify_inclusion_proof(lines[20], fresh.inclusion_proof(19, 40), note, [verifier])
        assert_history_refused(fresh, signer)
        # The newer head cannot be proven to extend the signed one.
        fresh.append(envelope_line("more"))
        forged = log_checkpoint_bypassing_guard(fresh, signer)
        proof = fresh.consistency_proof(40, 41)
        with pytest.raises(VerificationError):
            verify_consistency_proof(proof, note, forged, [verifier])


def log_checkpoint_bypassing_guard(log: TransparencyLog, signer: LocalKeySigner) -> str:
    """A head signed over the rewritten log, as a compromised signer would."""
    return sign_checkpoint(Checkpoint(log.origin, log.size(), log.root()), KEY_NAME, signer)


def test_reordered_entries_are_detected(
    signed_log: tuple[TransparencyLog, list[bytes], str],
    log_url: str,
    signer: LocalKeySigner,
    verifier: NoteVerifier,
) -> None:
    log, lines, note = signed_log
    tamper(
        log_url,
        log.origin,
        "UPDATE log_entries SET leaf_index = 1000000 WHERE origin = %(origin)s AND leaf_index = 5",
        "UPDATE log_entries SET leaf_index = 5 WHERE origin = %(origin)s AND leaf_index = 6",
        "UPDATE log_entries SET leaf_index = 6 WHERE origin = %(origin)s AND leaf_index = 1000000",
    )
    with fresh_log(log_url, log.origin) as fresh:
        for index, line in ((5, lines[6]), (6, lines[5]), (30, lines[30])):
            with pytest.raises(VerificationError):
                verify_inclusion_proof(line, fresh.inclusion_proof(index, 40), note, [verifier])
        assert_history_refused(fresh, signer)


def test_a_rewritten_checkpoint_row_is_detected(
    signed_log: tuple[TransparencyLog, list[bytes], str], log_url: str, signer: LocalKeySigner
) -> None:
    log, _, _ = signed_log
    tamper(
        log_url,
        log.origin,
        "UPDATE log_checkpoints SET root_hash = sha256('x'::bytea) WHERE origin = %(origin)s",
    )
    with fresh_log(log_url, log.origin) as fresh:
        with pytest.raises(LogIntegrityError):
            fresh.latest_checkpoint()
        with pytest.raises(LogIntegrityError):
            fresh.checkpoint(signer, KEY_NAME)


# --- scale ---------------------------------------------------------------------------------


def test_ten_thousand_appends(log_url: str, origin: str, signer: LocalKeySigner) -> None:
    lines = [envelope_line(f"s{i}") for i in range(10_000)]
    with psycopg.connect(log_url, autocommit=True) as conn:
        log = TransparencyLog(conn, origin)
        started = time.perf_counter()
        for line in lines:
            log.append(line)
        one_by_one = time.perf_counter() - started

        started = time.perf_counter()
        note = log.checkpoint(signer, KEY_NAME)
        cold_head = time.perf_counter() - started
        started = time.perf_counter()
        for index in range(0, 10_000, 100):
            log.inclusion_proof(index, 10_000)
        warm_proof = (time.perf_counter() - started) / 100

    with psycopg.connect(log_url, autocommit=True) as conn:
        batch_log = TransparencyLog(conn, origin + "/batch")
        started = time.perf_counter()
        for start in range(0, 10_000, 1000):
            batch_log.append_many(lines[start : start + 1000])
        batched = time.perf_counter() - started
        fresh = TransparencyLog(conn, origin)
        started = time.perf_counter()
        proof = fresh.inclusion_proof(4321, 10_000)
        cold_proof = time.perf_counter() - started
        assert batch_log.root() == memory_tree(lines).root()

    verify_inclusion_proof(lines[4321], proof, note, [NoteVerifier(KEY_NAME, signer.public_key)])
    print(
        f"\n10,000 appends: {one_by_one:.2f} s one per transaction "
        f"({10_000 / one_by_one:.0f}/s), {batched:.2f} s in batches of 1,000; "
        f"first checkpoint {cold_head * 1000:.0f} ms; inclusion proof "
        f"{cold_proof * 1000:.0f} ms cold, {warm_proof * 1000:.2f} ms warm"
    )
