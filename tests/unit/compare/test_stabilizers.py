from __future__ import annotations

import base64
import hashlib
import itertools
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from rebuilder.archive.zipread import ZipArchive
from rebuilder.compare.stabilizers import (
    COMPRESSION,
    ENTRY_ORDER,
    PERMISSIONS,
    RECORD,
    STABILIZERS,
    TIMESTAMPS,
    ZIP_METADATA,
    Stabilizer,
    apply_stabilizers,
    canonical_record,
    record_is_truthful,
)
from tests.support.dists import WheelEntry
from tests.unit.compare import models
from tests.unit.compare.models import entry

BASE = ZipArchive((entry("b.py", b"b"), entry("a/", b""), entry("a/x.py", b"x")), b"")


def each(archive: ZipArchive, **fields: object) -> ZipArchive:
    return replace(archive, entries=tuple(replace(e, **fields) for e in archive.entries))  # type: ignore[arg-type]


VARIANTS: dict[str, ZipArchive] = {
    ENTRY_ORDER.name: replace(BASE, entries=BASE.entries[::-1]),
    TIMESTAMPS.name: each(BASE, date_time=(2024, 5, 6, 7, 8, 10)),
    COMPRESSION.name: each(
        BASE, compress_type=zipfile.ZIP_STORED, raw_sha256="ab", compress_size=9, flag_bits=0x8
    ),
    PERMISSIONS.name: each(
        BASE, external_attr=0o100755 << 16, create_system=0, create_version=63, extract_version=45
    ),
    ZIP_METADATA.name: replace(
        each(
            BASE,
            extra=b"UT\x05\x00",
            local_extra=b"ux",
            comment=b"c",
            internal_attr=1,
            flag_bits=0x800,
        ),
        comment=b"archive comment",
    ),
}


@pytest.mark.parametrize("stabilizer", [s for s in STABILIZERS if s.name in VARIANTS], ids=str)
def test_each_stabilizer_equates_exactly_its_aspect(stabilizer: Stabilizer) -> None:
    variant = VARIANTS[stabilizer.name]
    assert variant != BASE
    assert stabilizer(variant) == stabilizer(BASE)
    for other in STABILIZERS:
        if other is not stabilizer:
            assert apply_stabilizers(variant, [other]) != apply_stabilizers(BASE, [other])


@pytest.mark.parametrize("stabilizer", STABILIZERS, ids=str)
@pytest.mark.parametrize("variant", list(VARIANTS), ids=str)
def test_stabilizers_never_touch_names_or_data_and_are_idempotent(
    stabilizer: Stabilizer, variant: str
) -> None:
    archive = VARIANTS[variant]
    once = stabilizer(archive)
    assert stabilizer(once) == once
    assert sorted((e.name, e.data) for e in once.entries) == sorted(
        (e.name, e.data) for e in archive.entries
    )


def test_stabilizers_commute(tmp_path: Path) -> None:
    archive = models.model(tmp_path, models.entries()[::-1])
    results = {apply_stabilizers(archive, order) for order in itertools.permutations(STABILIZERS)}
    assert len(results) == 1


def test_all_stabilizers_leave_only_names_and_data() -> None:
    fully = {v: apply_stabilizers(archive, STABILIZERS) for v, archive in VARIANTS.items()}
    assert set(fully.values()) == {apply_stabilizers(BASE, STABILIZERS)}


def test_names_and_versions_are_unique_and_stable() -> None:
    assert [str(s.use) for s in STABILIZERS] == [
        "zip-entry-order@1",
        "zip-timestamps@1",
        "zip-compression@1",
        "zip-permissions@1",
        "zip-metadata@1",
        "wheel-record@1",
        "metadata-field-order@1",
    ]


def _b64(algorithm: str, data: bytes) -> str:
    digest = hashlib.new(algorithm, data).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_a_truthful_record_in_any_form_becomes_canonical(tmp_path: Path) -> None:
    archive = models.model(tmp_path, models.entries())
    canonical = canonical_record(archive, models.RECORD)
    lines = [
        f'"{name}",sha512={_b64("sha512", data)},{len(data)}'
        for name, data in sorted(models.FILES.items(), reverse=True)
    ]
    for name in ("METADATA", "WHEEL"):
        data = archive.get(f"{models.DIST}/{name}").data  # type: ignore[union-attr]
        lines.append(f"{models.DIST}/{name},sha256={_b64('sha256', data)},{len(data)}")
    reformatted = ("\r\n".join(lines) + "\r\n\r\n").encode()
    other = models.model(
        tmp_path, models.with_data(models.entries(), models.RECORD, reformatted), "o.whl"
    )
    assert record_is_truthful(other, models.RECORD)
    assert RECORD(other) == RECORD(archive)
    assert RECORD(archive).get(models.RECORD).data == canonical  # type: ignore[union-attr]
    assert canonical.decode().splitlines() == sorted(canonical.decode().splitlines())


def _lie(record: bytes, how: str) -> bytes:
    text = record.decode()
    lines = text.splitlines()
    if how == "wrong-hash":
        return text.replace("sha256=", "sha256=A", 1).encode()
    if how == "wrong-size":
        first = lines[0].rsplit(",", 1)
        return "\n".join([f"{first[0]},{int(first[1]) + 1}", *lines[1:]]).encode()
    if how == "missing-file":
        return "\n".join(line for line in lines if not line.startswith("demo/util.py")).encode()
    if how == "extra-line":
        return (text + "demo/ghost.py,sha256=AAAA,0\n").encode()
    if how == "duplicate-line":
        return (text + lines[0] + "\n").encode()
    if how == "weak-hash":
        name, _, size = lines[0].split(",")
        md5 = f"md5={_b64('md5', models.FILES[name])}"
        return "\n".join([f"{name},{md5},{size}", *lines[1:]]).encode()
    if how == "hashed-self":
        return text.replace(f"{models.RECORD},,", f"{models.RECORD},sha256=AAAA,10").encode()
    if how == "not-utf8":
        return record + b"\xff\n"
    if how == "two-columns":
        return (text + "a,b\n").encode()
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "wrong-hash",
        "wrong-size",
        "missing-file",
        "extra-line",
        "duplicate-line",
        "weak-hash",
        "hashed-self",
        "not-utf8",
        "two-columns",
    ],
)
def test_an_untruthful_record_is_kept_as_is(tmp_path: Path, how: str) -> None:
    items = models.entries()
    record = next(e.data for e in items if e.name == models.RECORD)
    archive = models.model(tmp_path, models.with_data(items, models.RECORD, _lie(record, how)))
    assert not record_is_truthful(archive, models.RECORD)
    assert RECORD(archive) == archive


def test_record_of_an_unlisted_added_file_is_untruthful(tmp_path: Path) -> None:
    items = [*models.entries(), WheelEntry("demo/extra.py", b"x")]
    archive = models.model(tmp_path, items)
    assert not record_is_truthful(archive, models.RECORD)
    assert RECORD(archive) == archive


def test_signature_lines_and_directories_are_allowed(tmp_path: Path) -> None:
    items = models.entries()
    record = next(e.data for e in items if e.name == models.RECORD)
    record += f"{models.DIST}/RECORD.jws,,\n".encode()
    items = [
        WheelEntry("demo/", b""),
        *models.with_data(items, models.RECORD, record),
        WheelEntry(f"{models.DIST}/RECORD.jws", b"sig"),
    ]
    archive = models.model(tmp_path, items)
    assert record_is_truthful(archive, models.RECORD)
    assert b"RECORD.jws,," in RECORD(archive).get(models.RECORD).data  # type: ignore[union-attr]


def test_no_or_several_records_are_left_alone() -> None:
    assert RECORD(BASE) == BASE
    two = ZipArchive(
        (entry("a-1.dist-info/RECORD", b"garbage"), entry("b-1.dist-info/RECORD", b"x"))
    )
    assert RECORD(two) == two
