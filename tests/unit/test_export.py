"""`rebuilder export` on an in-memory log: the layout, incremental runs, files without a
checkpoint yet, atomic writes that never follow a symbolic link."""

from __future__ import annotations

from pathlib import Path

import pytest

from rebuilder.attest.bundle_proofs import BundleProof, verify_bundle_proof
from rebuilder.attest.checkpoint import NoteVerifier
from rebuilder.attest.keys import LocalKeySigner, generate_key
from rebuilder.export import ExportError, LogKey, Outcome, export, write_atomic
from tests.support.memlog import MemoryLog

ORIGIN = "rebuilder.test/log"
NAME = "rebuilder.test"


@pytest.fixture(scope="module")
def key() -> LocalKeySigner:
    return generate_key()


def _log() -> MemoryLog:
    log = MemoryLog(ORIGIN)
    log.add_file("demo", "1.0", "demo-1.0-py3-none-any.whl", ['{"p":"d1"}', '{"v":"d1"}'])
    log.add_file("demo", "1.1", "demo-1.1-py3-none-any.whl", ['{"p":"d2"}', '{"v":"d2"}'])
    log.add_file("other-pkg", "2.0", "other_pkg-2.0-py3-none-any.whl", ['{"f":"o"}'])
    return log


def _bundle(root: Path, project: str, version: str, filename: str) -> Path:
    return root / "pypi" / project / version / filename / "rebuild.intoto.jsonl"


def test_layout(tmp_path: Path, key: LocalKeySigner) -> None:
    log = _log()
    note = log.checkpoint(key, NAME)
    vkey = NoteVerifier(NAME, key.public_key).vkey()
    seen: list[tuple[str, Outcome]] = []
    report = export(
        log,
        tmp_path,
        origin=ORIGIN,
        key=LogKey(vkey, key.public_key.to_pem()),
        progress=lambda b, o: seen.append((b.filename, o)),
    )
    assert (report.written, report.unchanged, report.unproven) == (3, 0, 0)
    assert seen == [
        ("demo-1.0-py3-none-any.whl", Outcome.WRITTEN),
        ("demo-1.1-py3-none-any.whl", Outcome.WRITTEN),
        ("other_pkg-2.0-py3-none-any.whl", Outcome.WRITTEN),
    ]
    bundle = _bundle(tmp_path, "demo", "1.1", "demo-1.1-py3-none-any.whl")
    assert bundle.read_bytes() == b'{"p":"d2"}\n{"v":"d2"}\n'
    proof = BundleProof.from_json(bundle.with_name(bundle.name + ".log.json").read_text())
    assert [p.index for p in proof.proofs] == [2, 3]
    assert proof.checkpoint == note and proof.tree_size == 5
    head = verify_bundle_proof(
        bundle.read_bytes().splitlines(), proof, [NoteVerifier(NAME, key.public_key)]
    )
    assert head.size == 5
    assert (tmp_path / "log" / "checkpoint").read_text() == note
    assert (tmp_path / "log" / "key").read_text() == vkey + "\n"
    assert (tmp_path / "log" / "key.pem").read_text() == key.public_key.to_pem()
    other = _bundle(tmp_path, "other-pkg", "2.0", "other_pkg-2.0-py3-none-any.whl")
    assert other.is_file()
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_incremental_runs_skip_unchanged_files(tmp_path: Path, key: LocalKeySigner) -> None:
    log = _log()
    log.checkpoint(key, NAME)
    export(log, tmp_path, origin=ORIGIN)
    served = log.proofs_served
    assert served == 5
    first = _bundle(tmp_path, "demo", "1.0", "demo-1.0-py3-none-any.whl")
    stamp = first.stat().st_mtime_ns
    # the log grows: a new attempt of demo 1.1 and a new checkpoint
    log.add_file("demo", "1.1", "demo-1.1-py3-none-any.whl", ['{"p":"d3"}', '{"v":"d3"}'])
    log.checkpoint(key, NAME)
    report = export(log, tmp_path, origin=ORIGIN)
    assert (report.written, report.unchanged) == (1, 2)
    assert report.files == ["demo-1.1-py3-none-any.whl"]
    assert log.proofs_served == served + 2
    assert first.stat().st_mtime_ns == stamp
    # the untouched proof still verifies: it carries the checkpoint it was made against
    proof = BundleProof.from_json(first.with_name(first.name + ".log.json").read_text())
    assert proof.tree_size == 5
    # a damaged export is repaired
    first.write_text('{"p":"evil"}\n')
    report = export(log, tmp_path, origin=ORIGIN)
    assert (report.written, report.unchanged) == (1, 2)
    assert first.read_text() == '{"p":"d1"}\n{"v":"d1"}\n'
    (first.with_name(first.name + ".log.json")).write_text("{}")
    assert export(log, tmp_path, origin=ORIGIN).written == 1


def test_lines_after_the_latest_checkpoint_are_unproven(
    tmp_path: Path, key: LocalKeySigner
) -> None:
    log = _log()
    report = export(log, tmp_path, origin=ORIGIN)
    assert (report.written, report.unproven, report.checkpoint) == (3, 3, None)
    bundle = _bundle(tmp_path, "demo", "1.0", "demo-1.0-py3-none-any.whl")
    assert bundle.is_file()
    assert not bundle.with_name(bundle.name + ".log.json").exists()
    assert not (tmp_path / "log" / "checkpoint").exists()
    log.checkpoint(key, NAME)
    report = export(log, tmp_path, origin=ORIGIN)
    assert (report.written, report.unproven) == (3, 0)
    assert bundle.with_name(bundle.name + ".log.json").is_file()


def test_only_the_projects_asked_for(tmp_path: Path, key: LocalKeySigner) -> None:
    log = _log()
    log.checkpoint(key, NAME)
    report = export(log, tmp_path, origin=ORIGIN, projects=["other-pkg"])
    assert report.files == ["other_pkg-2.0-py3-none-any.whl"]
    assert not (tmp_path / "pypi" / "demo").exists()


def test_symbolic_links_are_never_followed(tmp_path: Path, key: LocalKeySigner) -> None:
    log = _log()
    log.checkpoint(key, NAME)
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "export"
    (root / "pypi").mkdir(parents=True)
    (root / "pypi" / "demo").symlink_to(outside)
    with pytest.raises(ExportError, match="symbolic link"):
        export(log, root, origin=ORIGIN)
    assert not list(outside.iterdir())
    (root / "target").symlink_to(outside / "x")
    with pytest.raises(ExportError, match="symbolic link"):
        write_atomic(root, "target", b"data")
    for bad in ("../escape", "/abs", "a/../../b", ""):
        with pytest.raises(ExportError, match="relative path"):
            write_atomic(root, bad, b"data")


def test_hostile_names_are_skipped_and_the_rest_exported(
    tmp_path: Path, key: LocalKeySigner
) -> None:
    """A file the index listed under an unsafe name has a `failed` statement in the log;
    no path of the export is named after it, and the other files are exported."""
    log = MemoryLog(ORIGIN)
    log.add_file("demo", "1.0", "../../evil.whl", ['{"f":"x"}'])
    log.add_file("demo", "1.0", "demo-1.0-py3-none-any.whl", ['{"p":"d1"}', '{"v":"d1"}'])
    log.checkpoint(key, NAME)

    report = export(log, tmp_path, origin=ORIGIN)

    assert (report.written, report.skipped) == (1, 1)
    assert report.files == ["demo-1.0-py3-none-any.whl"]
    assert _bundle(tmp_path, "demo", "1.0", "demo-1.0-py3-none-any.whl").is_file()
    assert not list(tmp_path.parent.glob("evil*")) and not list(tmp_path.rglob("evil*"))
