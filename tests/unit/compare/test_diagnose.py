"""Diagnosis of mismatches: each cause with a benign wheel and its malicious twin.

Every wheel here is built in the test (published vs rebuilt), compared with the real
judge, and the diagnosis and the file's risk checked.
"""

from __future__ import annotations

import gzip
import lzma
import zipfile
from pathlib import Path

import pytest

from rebuilder.compare.diagnose import SourceFiles, file_role, parse_headers
from rebuilder.compare.judge import Comparison, compare_files
from rebuilder.verdict import Cause, Diagnosis, Risk, Verdict, file_risk
from tests.support.dists import WheelEntry, wheel_entries, write_wheel
from tests.unit.compare.models import rewrite_record

DIST = "demo-1.0.dist-info"
META = f"{DIST}/METADATA"
HEADER = (
    "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nSummary: a demo\n"
    "Requires-Python: >=3.8\nRequires-Dist: alpha>=1\nRequires-Dist: beta; extra == 'x'\n"
    "Provides-Extra: x\nPlatform: any\n"
)
BODY = "A demo project.\n\nIt does things.\n"
CODE = b'"""demo."""\n\ndef f(x):\n    return x * 2\n\nVALUE = 3\n'


def wheel(
    files: dict[str, bytes] | None = None, metadata: str = HEADER + "\n" + BODY
) -> list[WheelEntry]:
    items = wheel_entries(files=files or {"demo/__init__.py": CODE})
    items = [WheelEntry(e.name, metadata.encode()) if e.name == META else e for e in items]
    return rewrite_record(items)


def judge(
    tmp_path: Path,
    published: list[WheelEntry],
    rebuilt: list[WheelEntry],
    sdist: dict[str, bytes] | None = None,
) -> Comparison:
    source = None
    if sdist is not None:
        root = tmp_path / "sdist"
        for name, data in sdist.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        source = SourceFiles.from_dir(root)
    p = write_wheel(tmp_path / "p.whl", published)
    r = write_wheel(tmp_path / "r.whl", rebuilt)
    return compare_files(p, r, source=source)


def only(comparison: Comparison, path: str) -> Diagnosis:
    assert comparison.verdict is Verdict.MISMATCH
    found = [d for d in comparison.diagnosis if d.path == path]
    assert len(found) == 1, comparison.diagnosis
    return found[0]


def risk(comparison: Comparison) -> Risk | None:
    return file_risk(comparison.verdict, comparison.diagnosis)


def test_every_difference_gets_a_diagnosis_and_record_follows(tmp_path: Path) -> None:
    c = judge(tmp_path, wheel({"demo/__init__.py": CODE}), wheel({"demo/__init__.py": b"x=1\n"}))
    assert {d.path for d in c.diagnosis} == {d.path for d in c.differences}
    assert only(c, f"{DIST}/RECORD").cause is Cause.RECORD


# --- line endings ------------------------------------------------------------------


def test_crlf_description_is_line_endings_packaging(tmp_path: Path) -> None:
    crlf = (HEADER + "\n" + BODY).replace("\n", "\r\n")
    c = judge(tmp_path, wheel(metadata=crlf), wheel())
    assert only(c, META).cause is Cause.LINE_ENDINGS
    assert risk(c) is Risk.PACKAGING


def test_crlf_plus_an_added_requirement_is_review(tmp_path: Path) -> None:
    evil = (HEADER + "Requires-Dist: evil\n\n" + BODY).replace("\n", "\r\n")
    d = only(judge(tmp_path, wheel(metadata=evil), wheel()), META)
    assert d.cause is Cause.METADATA_FIELD
    assert d.risk is Risk.REVIEW
    assert "requires-dist" in d.detail and "evil" in d.detail


def test_crlf_in_a_module_is_packaging_but_a_code_change_is_review(tmp_path: Path) -> None:
    benign = judge(tmp_path, wheel({"demo/__init__.py": CODE.replace(b"\n", b"\r\n")}), wheel())
    assert only(benign, "demo/__init__.py").cause is Cause.LINE_ENDINGS
    assert risk(benign) is Risk.PACKAGING
    evil_code = CODE.replace(b"x * 2", b"x * 3").replace(b"\n", b"\r\n")
    evil = judge(tmp_path, wheel({"demo/__init__.py": evil_code}), wheel())
    d = only(evil, "demo/__init__.py")
    assert (d.cause, d.risk) == (Cause.CODE, Risk.REVIEW)


# --- whitespace and order ------------------------------------------------------------


def test_trailing_blank_lines_in_metadata_are_whitespace(tmp_path: Path) -> None:
    c = judge(tmp_path, wheel(metadata=HEADER + "\n" + BODY + "\n\n"), wheel())
    assert only(c, META).cause is Cause.WHITESPACE
    assert risk(c) is Risk.PACKAGING


def test_reordered_module_lines_are_code_not_order(tmp_path: Path) -> None:
    shuffled = CODE.replace(b"VALUE = 3", b"@@").replace(b'"""demo."""', b"VALUE = 3")
    shuffled = shuffled.replace(b"@@", b'"""demo."""')
    d = only(judge(tmp_path, wheel({"demo/__init__.py": shuffled}), wheel()), "demo/__init__.py")
    assert (d.cause, d.risk) == (Cause.CODE, Risk.REVIEW)
    assert "order-only" in d.detail


def test_data_file_whitespace_is_packaging_order_and_content_are_review(tmp_path: Path) -> None:
    base = {"demo/__init__.py": CODE, "demo/words.txt": b"one\ntwo\nthree\n"}
    moved = {**base, "demo/words.txt": b"three\none\ntwo\n"}
    spaced = {**base, "demo/words.txt": b"\xef\xbb\xbfone  \ntwo\nthree\n\n"}
    changed = {**base, "demo/words.txt": b"one\ntwo\nfour\n"}
    d = only(judge(tmp_path, wheel(moved), wheel(base)), "demo/words.txt")
    assert (d.cause, d.risk) == (Cause.ORDER_ONLY, Risk.REVIEW)  # order may be behaviour
    assert only(judge(tmp_path, wheel(spaced), wheel(base)), "demo/words.txt").cause is (
        Cause.WHITESPACE
    )
    d = only(judge(tmp_path, wheel(changed), wheel(base)), "demo/words.txt")
    assert (d.cause, d.risk) == (Cause.DATA, Risk.REVIEW)


def test_a_line_moved_from_the_description_into_the_headers_is_review(tmp_path: Path) -> None:
    # The same multiset of lines, but one now is a header field: not "order-only".
    hidden = HEADER + "\nRequires-Dist: evil\n" + BODY
    shown = HEADER + "Requires-Dist: evil\n\n" + BODY
    d = only(judge(tmp_path, wheel(metadata=shown), wheel(metadata=hidden)), META)
    assert (d.cause, d.risk) == (Cause.METADATA_FIELD, Risk.REVIEW)


# --- metadata fields -----------------------------------------------------------------


def test_writer_drift_fields_are_packaging(tmp_path: Path) -> None:
    drift = HEADER + "Platform: UNKNOWN\nLicense-File: LICENSE\n\n" + BODY
    d = only(judge(tmp_path, wheel(metadata=drift), wheel()), META)
    assert (d.cause, d.risk) == (Cause.METADATA_FIELD, Risk.PACKAGING)
    assert "platform" in d.detail and "license-file" in d.detail
    version = HEADER.replace("Metadata-Version: 2.1", "Metadata-Version: 2.4") + "\n" + BODY
    d = only(judge(tmp_path, wheel(metadata=version), wheel()), META)
    assert d.risk is Risk.PACKAGING
    major = HEADER.replace("Metadata-Version: 2.1", "Metadata-Version: 3.0") + "\n" + BODY
    assert only(judge(tmp_path, wheel(metadata=major), wheel()), META).risk is Risk.REVIEW


def test_description_text_is_packaging(tmp_path: Path) -> None:
    d = only(judge(tmp_path, wheel(metadata=HEADER + "\nOther words.\n"), wheel()), META)
    assert (d.cause, d.risk) == (Cause.METADATA_FIELD, Risk.PACKAGING)
    assert "description" in d.detail


def test_requirements_written_differently_are_the_same_set(tmp_path: Path) -> None:
    spaced = HEADER.replace("alpha>=1", "alpha >= 1").replace("'x'", '"x"') + "\n" + BODY
    d = only(judge(tmp_path, wheel(metadata=spaced), wheel()), META)
    assert d.risk is Risk.PACKAGING


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Requires-Dist: alpha>=1\n", "Requires-Dist: alpha>=1\nRequires-Dist: evil\n"),
        ("Requires-Dist: alpha>=1\n", ""),
        ("Requires-Dist: alpha>=1\n", "Requires-Dist: alpha>=0.1\n"),
        ("Requires-Python: >=3.8\n", "Requires-Python: >=2.7\n"),
        ("Provides-Extra: x\n", "Provides-Extra: y\n"),
        ("Version: 1.0\n", "Version: 1.1\n"),
    ],
)
def test_installer_fields_are_review(tmp_path: Path, old: str, new: str) -> None:
    published = HEADER.replace(old, new) + "\n" + BODY
    c = judge(tmp_path, wheel(metadata=published), wheel())
    d = only(c, META)
    assert (d.cause, d.risk) == (Cause.METADATA_FIELD, Risk.REVIEW)
    assert risk(c) is Risk.REVIEW


def test_wheel_file_generator_is_packaging_tag_is_review(tmp_path: Path) -> None:
    def with_wheel(text: str) -> list[WheelEntry]:
        items = [
            WheelEntry(e.name, text.encode()) if e.name == f"{DIST}/WHEEL" else e for e in wheel()
        ]
        return rewrite_record(items)

    base = "Wheel-Version: 1.0\nGenerator: a (1)\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n"
    gen = base.replace("a (1)", "b (2)")
    tag = base.replace("py3-none-any", "py2.py3-none-any")
    assert only(judge(tmp_path, with_wheel(gen), with_wheel(base)), f"{DIST}/WHEEL").risk is (
        Risk.PACKAGING
    )
    assert only(judge(tmp_path, with_wheel(tag), with_wheel(base)), f"{DIST}/WHEEL").risk is (
        Risk.REVIEW
    )


# --- transforms ----------------------------------------------------------------------

DATA = b'{"key": "value", "list": [1, 2, 3]}\n' * 20


@pytest.mark.parametrize("codec", [gzip.compress, lzma.compress])
def test_compressed_copy_of_a_sdist_file_is_transformed_equal(tmp_path: Path, codec) -> None:  # type: ignore[no-untyped-def]
    base = {"demo/__init__.py": CODE}
    published = {**base, "demo/data.json.gz": codec(DATA)}
    c = judge(tmp_path, wheel(published), wheel(base), sdist={"demo/data.json": DATA})
    d = only(c, "demo/data.json.gz")
    assert (d.cause, d.risk) == (Cause.TRANSFORMED_EQUAL, Risk.PACKAGING)
    assert risk(c) is Risk.PACKAGING


def test_compressed_file_with_other_content_is_review(tmp_path: Path) -> None:
    base = {"demo/__init__.py": CODE}
    published = {**base, "demo/data.json.gz": gzip.compress(DATA + b"evil")}
    c = judge(tmp_path, wheel(published), wheel(base), sdist={"demo/data.json": DATA})
    d = only(c, "demo/data.json.gz")
    assert (d.cause, d.risk) == (Cause.ONLY_PUBLISHED, Risk.REVIEW)


def test_gzip_streams_with_other_headers_but_equal_data(tmp_path: Path) -> None:
    base = {"demo/__init__.py": CODE, "demo/d.gz": gzip.compress(DATA, mtime=1)}
    other = {**base, "demo/d.gz": gzip.compress(DATA, mtime=2)}
    evil = {**base, "demo/d.gz": gzip.compress(DATA[:-1], mtime=2)}
    assert only(judge(tmp_path, wheel(other), wheel(base)), "demo/d.gz").cause is (
        Cause.TRANSFORMED_EQUAL
    )
    assert only(judge(tmp_path, wheel(evil), wheel(base)), "demo/d.gz").risk is Risk.REVIEW


# --- one side only -------------------------------------------------------------------


def test_only_published_file_in_the_sdist_is_packaging(tmp_path: Path) -> None:
    base = {"demo/__init__.py": CODE}
    published = {**base, "demo/extra.py": b"X = 1\n"}
    c = judge(tmp_path, wheel(published), wheel(base), sdist={"src/demo/extra.py": b"X = 1\n"})
    d = only(c, "demo/extra.py")
    assert (d.cause, d.risk) == (Cause.ONLY_PUBLISHED, Risk.PACKAGING)
    assert "src/demo/extra.py" in d.detail


def test_only_published_file_the_sdist_lacks_is_review(tmp_path: Path) -> None:
    base = {"demo/__init__.py": CODE}
    published = {**base, "demo/extra.py": b"X = 2\n"}
    c = judge(tmp_path, wheel(published), wheel(base), sdist={"src/demo/extra.py": b"X = 1\n"})
    d = only(c, "demo/extra.py")
    assert (d.cause, d.risk) == (Cause.ONLY_PUBLISHED, Risk.REVIEW)
    assert "does not contain" in d.detail


def test_only_published_pth_is_review_even_if_in_the_sdist(tmp_path: Path) -> None:
    base = {"demo/__init__.py": CODE}
    pth = b"import os; os.system('true')\n"
    c = judge(tmp_path, wheel({**base, "demo.pth": pth}), wheel(base), sdist={"demo.pth": pth})
    assert only(c, "demo.pth").risk is Risk.REVIEW


def test_without_the_sdist_an_only_published_file_is_review(tmp_path: Path) -> None:
    base = {"demo/__init__.py": CODE}
    c = judge(tmp_path, wheel({**base, "demo/x.txt": b"x"}), wheel(base))
    assert only(c, "demo/x.txt").risk is Risk.REVIEW


def test_only_rebuilt_data_is_packaging_code_is_review(tmp_path: Path) -> None:
    base = {"demo/__init__.py": CODE}
    c = judge(tmp_path, wheel(base), wheel({**base, "demo/x.txt": b"x"}), sdist={"x.txt": b"x"})
    d = only(c, "demo/x.txt")
    assert (d.cause, d.risk) == (Cause.ONLY_REBUILT, Risk.PACKAGING)
    c = judge(tmp_path, wheel(base), wheel({**base, "demo/check.py": b"x"}))
    assert only(c, "demo/check.py").risk is Risk.REVIEW


# --- entry points and lying RECORDs --------------------------------------------------


def test_entry_points_reordered_are_packaging_changed_are_review(tmp_path: Path) -> None:
    ep = f"{DIST}/entry_points.txt"
    base = b"[console_scripts]\na = demo:a\nb = demo:b\n"

    def with_ep(data: bytes) -> list[WheelEntry]:
        items = wheel()
        return rewrite_record([*items[:-1], WheelEntry(ep, data), items[-1]])

    moved = b"[console_scripts]\nb = demo:b\na = demo:a\n"
    evil = b"[console_scripts]\na = demo:a\nb = evil:b\n"
    assert only(judge(tmp_path, with_ep(moved), with_ep(base)), ep).risk is Risk.PACKAGING
    d = only(judge(tmp_path, with_ep(evil), with_ep(base)), ep)
    assert (d.cause, d.risk) == (Cause.CODE, Risk.REVIEW)
    assert "evil:b" in d.detail


def test_a_lying_record_is_review(tmp_path: Path) -> None:
    items = wheel()
    lying = [
        e if not e.name.endswith("RECORD") else WheelEntry(e.name, e.data + b"x,,\n") for e in items
    ]
    assert only(judge(tmp_path, lying, items), f"{DIST}/RECORD").risk is Risk.REVIEW


def test_roles_come_from_install_semantics() -> None:
    assert file_role("demo.pth") == "pth"
    assert file_role("demo/sub/x.pth") == "data"  # not processed by site
    assert file_role("demo-1.0.data/scripts/run") == "script"
    assert file_role("demo/_speed.cpython-311-x86_64-linux-gnu.so") == "extension"
    assert file_role(f"{DIST}/entry_points.txt") == "entry-points"


def test_headers_parse_folded_values_and_bom() -> None:
    parsed = parse_headers(b"\xef\xbb\xbfName: a\nDescription: x\n  y\n\nbody\n")
    assert parsed == ([("name", "a"), ("description", "x\ny")], "body\n")
    assert parse_headers(b"not a header\n") is None


# --- metadata-field-order@1 ------------------------------------------------------------


def test_reordered_multi_use_fields_are_equivalent_by_field_order(tmp_path: Path) -> None:
    reordered = (
        HEADER.replace(
            "Requires-Dist: alpha>=1\nRequires-Dist: beta; extra == 'x'\n",
            "Requires-Dist: beta; extra == 'x'\nRequires-Dist: alpha>=1\n",
        )
        + "\n"
        + BODY
    )
    assert reordered != HEADER + "\n" + BODY
    c = judge(tmp_path, wheel(metadata=reordered), wheel())
    assert c.verdict is Verdict.EQUIVALENT
    assert "metadata-field-order@1" in {str(s) for s in c.stabilizers}
    assert risk(c) is Risk.NONE


@pytest.mark.parametrize(
    "requires",
    [
        "Requires-Dist: beta; extra == 'x'\nRequires-Dist: alpha>=1\nRequires-Dist: evil\n",
        "Requires-Dist: beta; extra == 'x'\n",
        "Requires-Dist: beta; extra == 'x'\nRequires-Dist: alpha>=0\n",
        "Requires-Dist: beta\nRequires-Dist: alpha>=1\n",
    ],
    ids=["added", "removed", "altered", "marker-dropped"],
)
def test_a_changed_requirement_set_is_never_equivalent(tmp_path: Path, requires: str) -> None:
    published = (
        HEADER.replace("Requires-Dist: alpha>=1\nRequires-Dist: beta; extra == 'x'\n", requires)
        + "\n"
        + BODY
    )
    c = judge(tmp_path, wheel(metadata=published), wheel())
    assert c.verdict is Verdict.MISMATCH
    assert risk(c) is Risk.REVIEW
    assert only(c, META).cause is Cause.METADATA_FIELD


def test_field_order_never_moves_a_field_into_the_description(tmp_path: Path) -> None:
    # Same lines, but a Requires-Dist line sits in the body on one side: not equivalent.
    published = HEADER + "\nRequires-Dist: zzz\n" + BODY
    rebuilt = HEADER + "Requires-Dist: zzz\n\n" + BODY
    c = judge(tmp_path, wheel(metadata=published), wheel(metadata=rebuilt))
    assert c.verdict is Verdict.MISMATCH
    assert risk(c) is Risk.REVIEW


# --- renamed .pth, other dist-info files, small files ---------------------------------


def test_a_pth_renamed_with_the_same_bytes_is_packaging(tmp_path: Path) -> None:
    base = {"demo/__init__.py": CODE}
    pth = b"import sys; sys.path.append('x')\n"
    c = judge(tmp_path, wheel({**base, "demo-py3.6-nspkg.pth": pth}),
              wheel({**base, "demo-py3.11-nspkg.pth": pth}))  # fmt: skip
    assert only(c, "demo-py3.6-nspkg.pth").risk is Risk.PACKAGING
    assert only(c, "demo-py3.11-nspkg.pth").risk is Risk.PACKAGING
    assert risk(c) is Risk.PACKAGING
    evil = judge(tmp_path, wheel({**base, "demo-py3.6-nspkg.pth": pth + b"import evil\n"}),
                 wheel({**base, "demo-py3.11-nspkg.pth": pth}))  # fmt: skip
    assert only(evil, "demo-py3.6-nspkg.pth").risk is Risk.REVIEW
    assert risk(evil) is Risk.REVIEW


def test_same_bytes_under_a_module_name_is_not_a_rename(tmp_path: Path) -> None:
    base = {"demo/__init__.py": CODE}
    c = judge(tmp_path, wheel({**base, "demo/evil.py": b"X = 1\n"}),
              wheel({**base, "demo/good.py": b"X = 1\n"}))  # fmt: skip
    assert only(c, "demo/evil.py").risk is Risk.REVIEW


def test_dist_info_files_no_installer_reads_are_packaging(tmp_path: Path) -> None:
    def with_file(name: str, data: bytes) -> list[WheelEntry]:
        items = wheel()
        return rewrite_record([*items[:-1], WheelEntry(f"{DIST}/{name}", data), items[-1]])

    d = only(judge(tmp_path, with_file("top_level.txt", b"demo\ntests\n"),
                   with_file("top_level.txt", b"demo\n")), f"{DIST}/top_level.txt")  # fmt: skip
    assert (d.cause, d.risk) == (Cause.METADATA_FIELD, Risk.PACKAGING)
    assert "tests" in d.detail
    ns = f"{DIST}/namespace_packages.txt"
    d = only(judge(tmp_path, with_file("namespace_packages.txt", b"demo\nevil\n"),
                   with_file("namespace_packages.txt", b"demo\n")), ns)  # fmt: skip
    assert (d.cause, d.risk) == (Cause.CODE, Risk.REVIEW)


def test_an_empty_file_in_the_sdist_must_have_the_same_name(tmp_path: Path) -> None:
    base = {"demo/__init__.py": CODE}
    published = {**base, "demo/py.typed": b""}
    lacking = judge(tmp_path, wheel(published), wheel(base), sdist={"tests/__init__.py": b""})
    assert only(lacking, "demo/py.typed").risk is Risk.REVIEW
    there = judge(tmp_path, wheel(published), wheel(base), sdist={"src/demo/py.typed": b""})
    assert only(there, "demo/py.typed").risk is Risk.PACKAGING


def _as_if_written_on_windows(path: Path) -> None:
    """Rewrite ``path`` with every entry made by system 0 (MS-DOS/Windows), mode 0666."""
    with zipfile.ZipFile(path) as zf:
        items = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in items:
            info.create_system = 0
            info.external_attr = (0o100666 << 16) | 0x20  # the archive bit
            zf.writestr(info, data)


def test_crlf_metadata_of_a_wheel_written_on_windows_names_that_origin(tmp_path: Path) -> None:
    crlf = (HEADER + "\n" + BODY).replace("\n", "\r\n")
    p = write_wheel(tmp_path / "p.whl", wheel(metadata=crlf))
    r = write_wheel(tmp_path / "r.whl", wheel())
    _as_if_written_on_windows(p)

    found = only(compare_files(p, r), META)

    assert (found.cause, found.risk) == (Cause.LINE_ENDINGS, Risk.PACKAGING)
    assert "written on Windows" in found.detail


def test_crlf_metadata_of_a_wheel_not_written_on_windows_says_nothing_of_it(
    tmp_path: Path,
) -> None:
    crlf = (HEADER + "\n" + BODY).replace("\n", "\r\n")
    found = only(judge(tmp_path, wheel(metadata=crlf), wheel()), META)

    assert found.cause is Cause.LINE_ENDINGS
    assert "Windows" not in found.detail
