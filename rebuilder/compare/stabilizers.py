"""Stabilizers: named, versioned normalizations of one aspect of a zip archive.

Each is a pure function ``ZipArchive -> ZipArchive`` that rewrites fields of one aspect
to a constant (or, for RECORD, to a canonical form) and never touches an entry's name
or decompressed data, with one guarded exception: RECORD is regenerated only when it is
truthful about its own archive, so its canonical form is a function of the other
entries' names and data; and ``metadata-field-order``, which permutes whole header
lines of METADATA (a multiset of lines kept, order-free fields only) and re-hashes
METADATA's row of a truthful RECORD. Hence two archives equal after every stabilizer hold exactly
the same paths with exactly the same decompressed bytes.

The aspects are disjoint, so stabilizers commute and the set needed to equate two
archives is well defined. Change what a stabilizer does: bump its version.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import logging
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from rebuilder.archive.zipread import ZipArchive, ZipEntry
from rebuilder.verdict import StabilizerUse

logger = logging.getLogger(__name__)

ZIP_EPOCH_TIME = (1980, 1, 1, 0, 0, 0)
# Flag bits a writer sets for how it compressed: deflate options (1, 2), data
# descriptor (3), enhanced deflate (4), patched data (5). The rest are zip metadata.
COMPRESSION_FLAGS = 0x3E
_FILE_ATTR = (stat.S_IFREG | 0o644) << 16
_DIR_ATTR = (stat.S_IFDIR | 0o755) << 16 | 0x10  # 0x10: the MS-DOS directory bit
_UNIX = 3
_RECORD_HASHES = frozenset({"sha256", "sha384", "sha512"})
_SIGNATURES = ("RECORD.jws", "RECORD.p7s")

# The bytes differ although every modelled field is equal: local-header copies of
# central-directory fields, the physical order of entries, the data-descriptor form.
# Not a function (nothing in the model to change); the judge names it when needed.
ZIP_LAYOUT = StabilizerUse("zip-layout", 1)


@dataclass(frozen=True)
class Stabilizer:
    """One normalization: its name and version are recorded with every verdict."""

    name: str
    version: int
    description: str
    function: Callable[[ZipArchive], ZipArchive]

    @property
    def use(self) -> StabilizerUse:
        """How a verdict names this stabilizer."""
        return StabilizerUse(self.name, self.version)

    def __call__(self, archive: ZipArchive) -> ZipArchive:
        return self.function(archive)


def _each(archive: ZipArchive, change: Callable[[ZipEntry], ZipEntry]) -> ZipArchive:
    return replace(archive, entries=tuple(change(e) for e in archive.entries))


def sort_entries(archive: ZipArchive) -> ZipArchive:
    """Entries in name order (names are unique in a checked archive)."""
    return replace(archive, entries=tuple(sorted(archive.entries, key=lambda e: e.name)))


def clear_timestamps(archive: ZipArchive) -> ZipArchive:
    """Every entry's date and time set to the zip epoch."""
    return _each(archive, lambda e: replace(e, date_time=ZIP_EPOCH_TIME))


def clear_compression(archive: ZipArchive) -> ZipArchive:
    """Method, compressed bytes and size, and the compression flag bits made constant."""
    return _each(
        archive,
        lambda e: replace(
            e,
            compress_type=zipfile.ZIP_DEFLATED,
            compress_size=0,
            raw_sha256="",
            flag_bits=e.flag_bits & ~COMPRESSION_FLAGS,
        ),
    )


def clear_permissions(archive: ZipArchive) -> ZipArchive:
    """External attributes (0o644 files, 0o755 folders) and the made-by/needed versions."""
    return _each(
        archive,
        lambda e: replace(
            e,
            external_attr=_DIR_ATTR if e.is_dir else _FILE_ATTR,
            create_system=_UNIX,
            create_version=20,
            extract_version=20,
        ),
    )


def clear_zip_metadata(archive: ZipArchive) -> ZipArchive:
    """Extra fields, comments, internal attributes and the remaining flag bits."""
    return replace(
        _each(
            archive,
            lambda e: replace(
                e,
                extra=b"",
                local_extra=b"",
                comment=b"",
                internal_attr=0,
                flag_bits=e.flag_bits & COMPRESSION_FLAGS,
            ),
        ),
        comment=b"",
    )


def canonicalize_record(archive: ZipArchive) -> ZipArchive:
    """Regenerate the wheel's RECORD (sorted, sha256) if it is truthful; else keep it.

    A RECORD that lies about its own archive must stay visible as a difference.
    """
    record = _record_name(archive)
    if record is None or not record_is_truthful(archive, record):
        return archive
    data = canonical_record(archive, record)

    # The stored compressed bytes were those of the old text: they describe nothing now.
    def regenerate(e: ZipEntry) -> ZipEntry:
        if e.name != record:
            return e
        return replace(e, data=data, crc=zlib.crc32(data), raw_sha256="", compress_size=0)

    return _each(archive, regenerate)


def _record_name(archive: ZipArchive) -> str | None:
    """The one ``*.dist-info/RECORD`` at the top of the archive, if exactly one."""
    names = [
        e.name
        for e in archive.entries
        if e.name.count("/") == 1 and e.name.endswith(".dist-info/RECORD")
    ]
    return names[0] if len(names) == 1 else None


def _signatures(record: str) -> frozenset[str]:
    folder = record.rsplit("/", 1)[0]
    return frozenset(f"{folder}/{name}" for name in _SIGNATURES)


def record_is_truthful(archive: ZipArchive, record: str) -> bool:
    """True iff RECORD lists every file once with its true hash and size, and nothing else.

    RECORD itself is listed with no hash or size, or not at all; signature files may be
    listed with no hash, or a true one. Folders must hold no data.
    """
    rows = _record_rows(archive.get(record))
    contents = {e.name: e.data for e in archive.entries}
    if rows is None or any(data for name, data in contents.items() if name.endswith("/")):
        return False
    signatures = _signatures(record)
    listed: set[str] = set()
    for path, digest, size in rows:
        if path in listed:
            return False
        listed.add(path)
        unhashed = not digest and not size
        if (path == record or path in signatures) and unhashed:
            continue
        data = contents.get(path)
        if path == record or data is None or path.endswith("/"):
            return False
        if not _matches(data, digest, size):
            return False
    unlisted = {n for n in contents if not n.endswith("/")} - listed - signatures - {record}
    return not unlisted


def _record_rows(entry: ZipEntry | None) -> list[tuple[str, str, str]] | None:
    """RECORD's non-blank rows, or None if it is missing or not 3-column UTF-8 CSV."""
    if entry is None:
        return None
    try:
        rows = list(csv.reader(io.StringIO(entry.data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error):
        return None
    if any(len(row) != 3 for row in rows if row):
        return None
    return [(row[0], row[1], row[2]) for row in rows if row]


def _matches(data: bytes, digest: str, size: str) -> bool:
    algorithm, _, encoded = digest.partition("=")
    if algorithm not in _RECORD_HASHES or size != str(len(data)):
        return False
    return encoded == _urlsafe_digest(algorithm, data)


def _urlsafe_digest(algorithm: str, data: bytes) -> str:
    raw = hashlib.new(algorithm, data).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def canonical_record(archive: ZipArchive, record: str) -> bytes:
    """The RECORD a careful backend would write for ``archive``: sorted, sha256, LF."""
    signatures = _signatures(record)
    rows: list[tuple[str, str, str]] = []
    for entry in archive.entries:
        if entry.is_dir:
            continue
        if entry.name == record or entry.name in signatures:
            rows.append((entry.name, "", ""))
        else:
            digest = f"sha256={_urlsafe_digest('sha256', entry.data)}"
            rows.append((entry.name, digest, str(len(entry.data))))
    if record not in {row[0] for row in rows}:
        rows.append((record, "", ""))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(sorted(rows))
    return out.getvalue().encode("utf-8")


# Core-metadata fields that may occur many times and whose order no installer reads.
MULTI_USE_FIELDS = frozenset(
    {b"requires-dist", b"project-url", b"classifier", b"provides-extra", b"license-file"}
)


def _metadata_name(archive: ZipArchive) -> str | None:
    names = [
        e.name
        for e in archive.entries
        if e.name.count("/") == 1 and e.name.endswith(".dist-info/METADATA")
    ]
    return names[0] if len(names) == 1 else None


def sort_metadata_fields(data: bytes) -> bytes:
    """METADATA with each multi-use header field's values in sorted order.

    Only the header section (up to the first blank line) is touched, and only the
    single-line occurrences of each multi-use field, among that field's own positions:
    every line ending stays at its position, so the line structure (and where the header
    ends) is unchanged, and the result holds the same multiset of line texts. A field
    with continuation lines is left where it is.
    """
    lines = data.splitlines(keepends=True)
    texts = [line.rstrip(b"\r\n") for line in lines]
    endings = [line[len(text) :] for line, text in zip(lines, texts, strict=True)]
    end = next((i for i, text in enumerate(texts) if not text.strip()), len(texts))
    positions: dict[bytes, list[int]] = {}
    for i in range(end):
        name = texts[i].partition(b":")[0].strip().lower()
        folded = i + 1 < end and texts[i + 1][:1] in {b" ", b"\t"}
        if name in MULTI_USE_FIELDS and not folded and texts[i][:1] not in {b" ", b"\t"}:
            positions.setdefault(name, []).append(i)
    for places in positions.values():
        for i, text in zip(places, sorted(texts[i] for i in places), strict=True):
            texts[i] = text
    return b"".join(text + ending for text, ending in zip(texts, endings, strict=True))


def sort_metadata_field_order(archive: ZipArchive) -> ZipArchive:
    """Multi-use METADATA fields in sorted order; a truthful RECORD follows the change.

    RECORD's row for METADATA gets the new hash and size in place (same algorithm), only
    if that row was true of the old METADATA, so a truthful RECORD stays truthful and a
    lying one keeps lying.
    """
    name = _metadata_name(archive)
    if name is None:
        return archive
    entry = archive.get(name)
    if entry is None:
        return archive
    old = entry.data
    new = sort_metadata_fields(old)
    if new == old:
        return archive
    record = _record_name(archive)
    record_entry = archive.get(record) if record else None
    new_record = _update_record_row(record_entry.data, name, old, new) if record_entry else None

    def change(e: ZipEntry) -> ZipEntry:
        if e.name == name:
            return replace(e, data=new, crc=zlib.crc32(new), raw_sha256="", compress_size=0)
        if record_entry is not None and e.name == record_entry.name and new_record is not None:
            return replace(
                e, data=new_record, crc=zlib.crc32(new_record), raw_sha256="", compress_size=0
            )
        return e

    return _each(archive, change)


def _update_record_row(record: bytes, path: str, old: bytes, new: bytes) -> bytes | None:
    """RECORD with ``path``'s row re-hashed for ``new`` if it was true of ``old``."""
    try:
        text = record.decode("utf-8")
    except UnicodeDecodeError:
        return None
    out: list[str] = []
    changed = False
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        try:
            rows = list(csv.reader([body]))
        except csv.Error:
            return None
        row = rows[0] if rows else []
        if len(row) == 3 and row[0] == path and _matches(old, row[1], row[2]):
            algorithm = row[1].partition("=")[0]
            digest = f"{algorithm}={_urlsafe_digest(algorithm, new)}"
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow([row[0], digest, str(len(new))])
            out.append(buf.getvalue() + ending)
            changed = True
        else:
            out.append(line)
    return "".join(out).encode("utf-8") if changed else None


ENTRY_ORDER = Stabilizer("zip-entry-order", 1, "entries sorted by name", sort_entries)
TIMESTAMPS = Stabilizer("zip-timestamps", 1, "entry times set to 1980-01-01", clear_timestamps)
COMPRESSION = Stabilizer(
    "zip-compression", 1, "compression method, bytes and flags ignored", clear_compression
)
PERMISSIONS = Stabilizer(
    "zip-permissions", 1, "file modes and made-by/needed versions ignored", clear_permissions
)
ZIP_METADATA = Stabilizer(
    "zip-metadata", 1, "extra fields, comments and other flags ignored", clear_zip_metadata
)
RECORD = Stabilizer("wheel-record", 1, "a truthful RECORD regenerated", canonicalize_record)
METADATA_FIELD_ORDER = Stabilizer(
    "metadata-field-order",
    1,
    "multi-use METADATA fields (Requires-Dist, Project-URL, Classifier, Provides-Extra, "
    "License-File) compared as multisets within the header; RECORD follows",
    sort_metadata_field_order,
)

STABILIZERS: tuple[Stabilizer, ...] = (
    ENTRY_ORDER,
    TIMESTAMPS,
    COMPRESSION,
    PERMISSIONS,
    ZIP_METADATA,
    RECORD,
    METADATA_FIELD_ORDER,
)


def apply_stabilizers(archive: ZipArchive, stabilizers: Iterable[Stabilizer]) -> ZipArchive:
    """``archive`` after each of ``stabilizers`` in turn (their order does not matter)."""
    for stabilizer in stabilizers:
        archive = stabilizer(archive)
    return archive
