from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from rebuilder.archive.zipread import read_zip
from rebuilder.compare.judge import (
    Comparison,
    compare_archives,
    compare_files,
    difference_kind,
    file_sha256,
    needed_stabilizers,
    stabilized_bytes,
)
from rebuilder.compare.stabilizers import (
    COMPRESSION,
    ENTRY_ORDER,
    PERMISSIONS,
    RECORD,
    TIMESTAMPS,
    ZIP_LAYOUT,
)
from rebuilder.errors import ArchiveError
from rebuilder.verdict import Difference, DifferenceKind, StabilizerUse, Verdict
from tests.support.dists import WheelEntry
from tests.unit.compare.models import CODE, DIST, build, entries, rewrite_record, with_data

CONTENT, METADATA = DifferenceKind.CONTENT, DifferenceKind.METADATA
ADDED, REMOVED = DifferenceKind.ADDED, DifferenceKind.REMOVED
LATER = (2025, 6, 7, 8, 9, 10)


def judge(
    tmp_path: Path, published: list[WheelEntry], rebuilt: list[WheelEntry], **kw: object
) -> Comparison:
    pub = build(tmp_path, "published.whl", published)
    reb = build(tmp_path, "rebuilt.whl", rebuilt, **kw)
    return compare_files(pub, reb)


def uses(*stabilizers: object) -> tuple[StabilizerUse, ...]:
    return tuple(s.use for s in stabilizers)  # type: ignore[attr-defined]


def test_identical_files_are_reproducible(tmp_path: Path) -> None:
    result = judge(tmp_path, entries(), entries())
    assert result.verdict is Verdict.REPRODUCIBLE
    assert result.published_sha256 == result.rebuilt_sha256
    assert result.published_sha256 == file_sha256(tmp_path / "published.whl")
    assert (result.stabilizers, result.differences) == ((), ())


def test_reproducible_is_decided_on_bytes_without_parsing(tmp_path: Path) -> None:
    garbage = tmp_path / "a.whl"
    garbage.write_bytes(b"not a zip")
    copy = tmp_path / "b.whl"
    copy.write_bytes(b"not a zip")
    assert compare_files(garbage, copy).verdict is Verdict.REPRODUCIBLE


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda es: [replace(e, date_time=LATER) for e in es], uses(TIMESTAMPS)),
        (lambda es: es[::-1], uses(ENTRY_ORDER)),
        (lambda es: [replace(e, mode=0o755) for e in es], uses(PERMISSIONS)),
        (
            lambda es: [replace(e, compress_type=zipfile.ZIP_STORED) for e in es],
            uses(COMPRESSION),
        ),
        (
            lambda es: [replace(e, date_time=LATER, mode=0o600) for e in es][::-1],
            uses(ENTRY_ORDER, TIMESTAMPS, PERMISSIONS),
        ),
    ],
    ids=["timestamps", "order", "permissions", "stored", "three-at-once"],
)
def test_archive_only_differences_are_equivalent_with_exactly_those_stabilizers(
    tmp_path: Path,
    change: Callable[[list[WheelEntry]], list[WheelEntry]],
    expected: tuple[StabilizerUse, ...],
) -> None:
    result = judge(tmp_path, entries(), change(entries()))
    assert result.verdict is Verdict.EQUIVALENT
    assert result.stabilizers == expected
    assert result.differences == ()


def test_compression_level_alone_needs_the_compression_stabilizer(tmp_path: Path) -> None:
    pub = build(tmp_path, "published.whl", entries(), compresslevel=9)
    reb = build(tmp_path, "rebuilt.whl", entries(), compresslevel=1)
    assert pub.read_bytes() != reb.read_bytes()
    result = compare_files(pub, reb)
    assert (result.verdict, result.stabilizers) == (Verdict.EQUIVALENT, uses(COMPRESSION))


def test_reordered_truthful_record_needs_the_record_stabilizer(tmp_path: Path) -> None:
    items = entries()
    record = next(e for e in items if e.name.endswith("RECORD"))
    lines = record.data.decode().splitlines(keepends=True)
    reordered = with_data(items, record.name, "".join(lines[::-1]).encode())
    result = judge(tmp_path, items, reordered)
    assert (result.verdict, result.stabilizers) == (Verdict.EQUIVALENT, uses(RECORD))


def test_layout_only_differences_name_the_layout(tmp_path: Path) -> None:
    pub = build(tmp_path, "published.whl", entries())
    reb = tmp_path / "rebuilt.whl"
    raw = bytearray(pub.read_bytes())
    struct.pack_into("<H", raw, 10, 0)  # the first local header's time: not read by anyone
    reb.write_bytes(bytes(raw))
    result = compare_files(pub, reb)
    assert (result.verdict, result.stabilizers) == (Verdict.EQUIVALENT, (ZIP_LAYOUT,))


def test_one_changed_byte_of_code_is_a_mismatch(tmp_path: Path) -> None:
    data = next(e.data for e in entries() if e.name == CODE)
    tampered = bytearray(data)
    tampered[5] ^= 1
    with_truthful_record = rewrite_record(with_data(entries(), CODE, bytes(tampered)))
    result = judge(tmp_path, with_truthful_record, entries())
    assert result.verdict is Verdict.MISMATCH
    assert result.differences == (
        Difference(f"{DIST}/RECORD", METADATA),
        Difference(CODE, CONTENT),
    )
    assert result.stabilizers == ()
    # the same change without touching RECORD: RECORD lies, still listed
    stale_record = with_data(entries(), CODE, bytes(tampered))
    result = judge(tmp_path, stale_record, entries())
    assert result.differences == (
        Difference(f"{DIST}/RECORD", METADATA),
        Difference(CODE, CONTENT),
    )


def test_tampering_is_not_hidden_by_archive_noise(tmp_path: Path) -> None:
    tampered = rewrite_record(with_data(entries(), CODE, b"import os; os.system('x')\n"))
    noisy = [replace(e, date_time=LATER, mode=0o755) for e in entries()][::-1]
    result = judge(tmp_path, tampered, noisy, compresslevel=1)
    assert result.verdict is Verdict.MISMATCH
    assert Difference(CODE, CONTENT) in result.differences


def test_an_added_file_is_a_mismatch(tmp_path: Path) -> None:
    added = rewrite_record([*entries(), WheelEntry("demo/backdoor.py", b"evil()\n")])
    result = judge(tmp_path, added, entries())
    assert result.verdict is Verdict.MISMATCH
    assert result.differences == (
        Difference(f"{DIST}/RECORD", METADATA),
        Difference("demo/backdoor.py", ADDED),
    )


def test_a_removed_file_is_a_mismatch(tmp_path: Path) -> None:
    removed = rewrite_record([e for e in entries() if e.name != "demo/util.py"])
    result = judge(tmp_path, removed, entries())
    assert result.differences == (
        Difference("demo-1.0.dist-info/RECORD", METADATA),
        Difference("demo/util.py", REMOVED),
    )


def test_changed_metadata_is_a_metadata_mismatch(tmp_path: Path) -> None:
    name = f"{DIST}/METADATA"
    meta = next(e.data for e in entries() if e.name == name)
    changed = rewrite_record(with_data(entries(), name, meta + b"Requires-Dist: evil\n"))
    result = judge(tmp_path, changed, entries())
    assert result.verdict is Verdict.MISMATCH
    assert result.differences == (
        Difference(name, METADATA),
        Difference(f"{DIST}/RECORD", METADATA),
    )


def test_a_lying_record_alone_is_a_mismatch(tmp_path: Path) -> None:
    items = entries()
    record = next(e.data for e in items if e.name.endswith("RECORD"))
    lying = with_data(items, f"{DIST}/RECORD", record + b"demo/ghost.py,sha256=AAAA,1\n")
    result = judge(tmp_path, lying, entries())
    assert result.verdict is Verdict.MISMATCH
    assert result.differences == (Difference(f"{DIST}/RECORD", METADATA),)


def test_a_hostile_rebuild_raises_archive_error(tmp_path: Path) -> None:
    pub = build(tmp_path, "published.whl", entries())
    reb = tmp_path / "rebuilt.whl"
    reb.write_bytes(pub.read_bytes()[:-10])
    with pytest.raises(ArchiveError):
        compare_files(pub, reb)


def test_needed_stabilizers_is_the_minimal_set(tmp_path: Path) -> None:
    pub = read_zip(build(tmp_path, "a.whl", entries()))
    reb = read_zip(build(tmp_path, "b.whl", [replace(e, date_time=LATER) for e in entries()]))
    assert needed_stabilizers(pub, reb) == (TIMESTAMPS,)
    assert needed_stabilizers(pub, pub) == ()
    assert compare_archives(pub, reb) == (Verdict.EQUIVALENT, uses(TIMESTAMPS), ())


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("demo-1.0.dist-info/METADATA", METADATA),
        ("demo-1.0.dist-info/licenses/LICENSE", METADATA),
        ("demo/__init__.py", CONTENT),
        ("demo/x.dist-info/METADATA", CONTENT),
        ("demo-1.0.data/scripts/run", CONTENT),
        ("top.dist-info", CONTENT),
    ],
)
def test_difference_kind(path: str, kind: DifferenceKind) -> None:
    assert difference_kind(path) is kind


def test_stabilized_bytes_are_deterministic_and_equal_for_equivalent_files(
    tmp_path: Path,
) -> None:
    pub = read_zip(build(tmp_path, "a.whl", entries()))
    noisy = [replace(e, date_time=LATER, mode=0o700) for e in entries()][::-1]
    reb = read_zip(build(tmp_path, "b.whl", noisy, compresslevel=1))
    assert stabilized_bytes(pub) == stabilized_bytes(reb)
    out = tmp_path / "stable.whl"
    out.write_bytes(stabilized_bytes(pub))
    again = read_zip(out)
    assert {e.name: e.data for e in again.entries} == {e.name: e.data for e in pub.entries} | {
        f"{DIST}/RECORD": again.get(f"{DIST}/RECORD").data  # type: ignore[union-attr]
    }
