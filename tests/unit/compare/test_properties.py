from __future__ import annotations

import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rebuilder.archive.zipread import ZipArchive, ZipEntry
from rebuilder.compare.judge import compare_files
from rebuilder.compare.stabilizers import STABILIZERS, apply_stabilizers
from rebuilder.verdict import Verdict
from tests.support.dists import WheelEntry, wheel_entries, write_wheel

_names = st.lists(
    st.from_regex(r"[a-z]{1,6}(/[a-z]{1,6}){0,2}(\.py)?", fullmatch=True),
    min_size=1,
    max_size=6,
    unique=True,
)
_times = st.tuples(
    st.integers(1980, 2100),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 58),
)


@st.composite
def archives(draw: st.DrawFn) -> ZipArchive:
    entries = []
    for name in draw(_names):
        entries.append(
            ZipEntry(
                name,
                draw(st.binary(max_size=40)),
                date_time=draw(_times),
                external_attr=draw(st.integers(0, 2**32 - 1)),
                create_system=draw(st.sampled_from([0, 3])),
                create_version=draw(st.integers(0, 63)),
                extract_version=draw(st.integers(0, 63)),
                flag_bits=draw(st.integers(0, 0xFFFF)),
                compress_type=draw(st.sampled_from([0, 8, 12, 14])),
                compress_size=draw(st.integers(0, 100)),
                raw_sha256=draw(st.sampled_from(["", "ab", "cd"])),
                extra=draw(st.binary(max_size=8)),
                comment=draw(st.binary(max_size=4)),
            )
        )
    return ZipArchive(tuple(entries), draw(st.binary(max_size=8)))


@given(archives(), st.permutations(list(STABILIZERS)))
def test_stabilizers_are_idempotent_and_commute(archive: ZipArchive, order: list) -> None:  # type: ignore[type-arg]
    for stabilizer in STABILIZERS:
        once = stabilizer(archive)
        assert stabilizer(once) == once
    assert apply_stabilizers(archive, order) == apply_stabilizers(archive, STABILIZERS)


@given(archives(), st.data())
def test_stabilizing_never_hides_a_content_change(archive: ZipArchive, data: st.DataObject) -> None:
    victims = [i for i, e in enumerate(archive.entries) if e.data]
    if not victims:
        return
    index = data.draw(st.sampled_from(victims))
    victim = archive.entries[index]
    at = data.draw(st.integers(0, len(victim.data) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = bytearray(victim.data)
    changed[at] ^= flip
    entries = list(archive.entries)
    entries[index] = replace(victim, data=bytes(changed))
    tampered = ZipArchive(tuple(entries), archive.comment)
    assert apply_stabilizers(tampered, STABILIZERS) != apply_stabilizers(archive, STABILIZERS)


@settings(max_examples=40, deadline=None)
@given(
    files=st.dictionaries(
        st.from_regex(r"demo/[a-z]{1,8}\.py", fullmatch=True),
        st.binary(min_size=1, max_size=200),
        min_size=1,
        max_size=4,
    ),
    data=st.data(),
)
def test_a_single_byte_change_in_any_entry_is_never_equivalent(
    files: dict[str, bytes], data: st.DataObject
) -> None:
    original = wheel_entries(files=files)
    index = data.draw(st.integers(0, len(original) - 1))
    victim = original[index]
    at = data.draw(st.integers(0, len(victim.data) - 1))
    changed = bytearray(victim.data)
    changed[at] ^= data.draw(st.integers(1, 255))
    tampered = list(original)
    tampered[index] = WheelEntry(victim.name, bytes(changed))
    # the rebuild also differs in every way stabilizers forgive
    rebuilt = [
        replace(e, date_time=(2030, 1, 1, 0, 0, 0), mode=0o755, compress_type=zipfile.ZIP_STORED)
        for e in original
    ][::-1]
    with tempfile.TemporaryDirectory() as tmp:
        published = write_wheel(Path(tmp) / "p.whl", tampered)
        rebuild = write_wheel(Path(tmp) / "r.whl", rebuilt)
        result = compare_files(published, rebuild)
    assert result.verdict is Verdict.MISMATCH
    assert victim.name in {d.path for d in result.differences}
