"""Every stabilizer preserves every entry's name and data, over generated archives whose
data carries CRLF, lone CR, a BOM, trailing whitespace and blank lines; and every
diagnosis rule is sound: a benign cause is only given when its claim holds.

The two documented exceptions are checked exactly: ``wheel-record`` may rewrite only a
truthful RECORD, and ``metadata-field-order`` may only permute METADATA's header lines
(the same multiset of lines, byte for byte) and re-hash METADATA's RECORD row.
"""

from __future__ import annotations

import zipfile
from collections import Counter

from hypothesis import example, given, settings
from hypothesis import strategies as st

from rebuilder.archive.zipread import ZipArchive, ZipEntry
from rebuilder.compare.diagnose import _both_sides, _text_cause
from rebuilder.compare.stabilizers import (
    METADATA_FIELD_ORDER,
    RECORD,
    STABILIZERS,
    record_is_truthful,
    sort_metadata_fields,
)
from rebuilder.verdict import Cause, Diagnosis, DifferenceKind, Risk
from tests.support.dists import record_line

DIST = "demo-1.0.dist-info"

_piece = st.sampled_from(
    [b"a", b"b", b"x = 1", b" ", b"\t", b"\r\n", b"\n", b"\r", b"\xef\xbb\xbf", b"  \n", b"\xff"]
)
_data = st.lists(_piece, max_size=12).map(b"".join)
_field = st.sampled_from(
    [
        b"Requires-Dist: a",
        b"Requires-Dist: b>=1",
        b"requires-dist: c ; extra == 'x'",
        b"Project-URL: Home, https://example.invalid",
        b"Classifier: Z",
        b"Classifier: A",
        b"License-File: LICENSE",
        b"Provides-Extra: x",
        b"Name: demo",
        b"Summary: s ",
        b"Description: line\r\n        |more",
        b" continued",
    ]
)
_ending = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def metadata(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(_field, _ending), max_size=10))
    header = b"".join(f + e for f, e in lines)
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    body = draw(_data)
    blank = draw(st.sampled_from([b"", b"\n", b"\r\n"]))
    return bom + header + blank + body


@st.composite
def archives(draw: st.DrawFn) -> ZipArchive:
    names = draw(
        st.lists(
            st.from_regex(r"demo/[a-z]{1,5}\.(py|txt)", fullmatch=True), max_size=4, unique=True
        )
    )
    entries = [ZipEntry(n, draw(_data), compress_type=zipfile.ZIP_DEFLATED) for n in names]
    entries.append(ZipEntry(f"{DIST}/METADATA", draw(metadata())))
    if draw(st.booleans()):
        listed = "".join(record_line(e.name, e.data) + "\n" for e in entries)
        entries.append(ZipEntry(f"{DIST}/RECORD", f"{listed}{DIST}/RECORD,,\n".encode()))
    order = draw(st.permutations(entries))
    return ZipArchive(tuple(order), b"")


def _endings(data: bytes) -> list[bytes]:
    return [line[len(line.rstrip(b"\r\n")) :] for line in data.splitlines(keepends=True)]


def _same_lines(after: bytes, before: bytes) -> bool:
    """The same line texts (as a multiset) and the very same line endings in order."""
    return Counter(after.splitlines()) == Counter(before.splitlines()) and _endings(
        after
    ) == _endings(before)


def _contents(archive: ZipArchive) -> dict[str, bytes]:
    return {e.name: e.data for e in archive.entries}


@settings(max_examples=150, deadline=None)
@given(archives())
@example(
    ZipArchive(
        (
            ZipEntry("demo/a.py", b"x = 1\r\n\xef\xbb\xbf  \r\n"),
            ZipEntry(f"{DIST}/METADATA", b"Requires-Dist: b\r\nRequires-Dist: a \r\n\r\nbody \r\n"),
        ),
        b"",
    )
)
def test_every_stabilizer_preserves_names_and_data(archive: ZipArchive) -> None:
    before = _contents(archive)
    record = f"{DIST}/RECORD"
    meta = f"{DIST}/METADATA"
    for stabilizer in STABILIZERS:
        after = _contents(stabilizer(archive))
        assert after.keys() == before.keys(), stabilizer
        for name, data in before.items():
            if after[name] == data:
                continue
            if stabilizer is RECORD:
                assert name == record and record_is_truthful(archive, record), name
            elif stabilizer is METADATA_FIELD_ORDER and name == meta:
                assert _same_lines(after[name], data)
            elif stabilizer is METADATA_FIELD_ORDER and name == record:
                assert record_is_truthful(archive, record)
            else:
                raise AssertionError(f"{stabilizer.use} changed the data of {name}")
        if stabilizer is METADATA_FIELD_ORDER and record in before:
            # a truthful RECORD stays truthful, a lying one keeps lying
            truthful = record_is_truthful(archive, record)
            assert record_is_truthful(stabilizer(archive), record) == truthful


@settings(max_examples=200, deadline=None)
@given(metadata())
def test_field_order_is_idempotent_and_keeps_lines_and_endings(data: bytes) -> None:
    once = sort_metadata_fields(data)
    assert sort_metadata_fields(once) == once
    assert _same_lines(once, data)


@given(metadata(), st.integers(0, 10_000), st.integers(1, 255))
def test_field_order_never_equates_a_changed_byte(data: bytes, at: int, flip: int) -> None:
    if not data:
        return
    changed = bytearray(data)
    changed[at % len(data)] ^= flip
    assert sort_metadata_fields(bytes(changed)) != sort_metadata_fields(data)


# --- diagnosis rules are sound ----------------------------------------------------------


def _normalized(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def _stripped(data: bytes) -> list[bytes]:
    data = data.removeprefix(b"\xef\xbb\xbf")
    lines = [line.rstrip(b" \t\r") for line in _normalized(data).split(b"\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


@settings(max_examples=300, deadline=None)
@given(_data, _data)
@example(b"a\r\nb", b"a\nb")
@example(b"\xef\xbb\xbfa  \n\n", b"a")
@example(b"a\nb\n", b"b\na\n")
def test_text_causes_hold_when_given(a: bytes, b: bytes) -> None:
    cause = _text_cause(a, b)
    if cause is Cause.LINE_ENDINGS:
        assert _normalized(a) == _normalized(b)
    elif cause is Cause.WHITESPACE:
        assert _stripped(a) == _stripped(b)
    elif cause is Cause.ORDER_ONLY:
        assert Counter(_stripped(a)) == Counter(_stripped(b))
    else:
        assert cause is None
        assert Counter(_stripped(a)) != Counter(_stripped(b))


def _diag(path: str, a: bytes, b: bytes) -> Diagnosis:
    def make(cause: Cause, detail: str, risk: Risk) -> Diagnosis:
        return Diagnosis(path, DifferenceKind.CONTENT, cause, detail, risk)

    return _both_sides(path, a, b, make)


@settings(max_examples=300, deadline=None)
@given(_data, _data)
@example(b"x = 1\r\n", b"x = 1\n")
@example(b"x = 1 \n", b"x = 1\n")
def test_a_module_is_packaging_only_for_line_endings(a: bytes, b: bytes) -> None:
    d = _diag("demo/m.py", a, b)
    if d.risk is Risk.PACKAGING:
        assert d.cause is Cause.LINE_ENDINGS
        assert _normalized(a) == _normalized(b)
    else:
        assert (d.cause, d.risk) == (Cause.CODE, Risk.REVIEW)


@settings(max_examples=300, deadline=None)
@given(metadata(), metadata())
def test_metadata_is_packaging_only_when_installer_fields_are_equal(a: bytes, b: bytes) -> None:
    from rebuilder.compare.diagnose import parse_headers  # noqa: PLC0415

    d = _diag(f"{DIST}/METADATA", a, b)
    pa, pb = parse_headers(a), parse_headers(b)
    if pa is None or pb is None:
        assert d.risk is Risk.REVIEW
        return
    requires = (
        Counter(v.replace(" ", "") for n, v in pa[0] if n == "requires-dist"),
        Counter(v.replace(" ", "") for n, v in pb[0] if n == "requires-dist"),
    )
    if requires[0] != requires[1]:
        assert d.risk is Risk.REVIEW, d


@settings(max_examples=200, deadline=None)
@given(_data, st.sampled_from(["gzip", "bz2", "xz"]), st.integers(0, 10_000), st.integers(1, 255))
@example(b"a\r\n", "gzip", 0, 1)
def test_transformed_equal_holds_only_for_the_same_decoded_bytes(
    data: bytes, codec: str, at: int, flip: int
) -> None:
    import bz2  # noqa: PLC0415
    import gzip  # noqa: PLC0415
    import lzma  # noqa: PLC0415

    compress = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[codec]
    d = _diag("demo/data.bin", compress(data), data)
    assert (d.cause, d.risk) == (Cause.TRANSFORMED_EQUAL, Risk.PACKAGING)
    if data:
        changed = bytearray(data)
        changed[at % len(data)] ^= flip
        d = _diag("demo/data.bin", compress(bytes(changed)), data)
        assert d.cause is not Cause.TRANSFORMED_EQUAL


_ep_line = st.sampled_from([b"a = demo:a", b"b = demo:b", b"c = evil:c", b"a = demo:z"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_ep_line, max_size=4), st.lists(_ep_line, max_size=4), _ending)
def test_entry_points_are_packaging_only_when_equal_once_parsed(
    a: list[bytes], b: list[bytes], ending: bytes
) -> None:
    from rebuilder.compare.diagnose import _parse_ini  # noqa: PLC0415

    left = b"[console_scripts]" + ending + ending.join(a) + ending
    right = b"[console_scripts]\n" + b"\n".join(b) + b"\n"
    d = _diag(f"{DIST}/entry_points.txt", left, right)
    parsed = _parse_ini(left), _parse_ini(right)
    if d.risk is Risk.PACKAGING:
        assert parsed[0] is not None and parsed[0] == parsed[1]
    else:
        assert d.cause is Cause.CODE
        assert parsed[0] is None or parsed[0] != parsed[1]
