"""Page parsing and file classification, without any network."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pypi_simple
import pytest

from rebuilder.errors import IndexError_, NotFoundError
from rebuilder.index.model import FileKind, refused_name
from rebuilder.index.simple import (
    ACCEPT_JSON_PREFERRED,
    SimpleIndex,
    classify,
    default_index_url,
    normalize_project,
)

PAGE_URL = "http://127.0.0.1:9/simple/demo-pkg/"
SHA = "a" * 64
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("demo_pkg-1.0-py3-none-any.whl", (FileKind.WHEEL, "demo-pkg", "1.0")),
        (
            "Demo.Pkg-2.0.post1-cp311-cp311-manylinux_2_17_x86_64.whl",
            (FileKind.WHEEL, "demo-pkg", "2.0.post1"),
        ),
        ("demo-pkg-1.0.tar.gz", (FileKind.SDIST, "demo-pkg", "1.0")),
        ("demo_pkg-1.0.zip", (FileKind.SDIST, "demo-pkg", "1.0")),
        ("demo_pkg-1.0-py2.7.egg", (FileKind.OTHER, None, None)),
        ("demo_pkg-1.0.win32.exe", (FileKind.OTHER, None, None)),
        ("demo_pkg-1.0.tar.bz2", (FileKind.OTHER, None, None)),
        ("broken.whl", (FileKind.OTHER, None, None)),
        ("demo-notaversion!.tar.gz", (FileKind.OTHER, None, None)),
    ],
)
def test_classify(filename: str, expected: tuple[FileKind, str | None, str | None]) -> None:
    assert classify(filename) == expected


def test_normalize_project() -> None:
    assert normalize_project("Demo_Pkg.x") == "demo-pkg-x"
    with pytest.raises(NotFoundError, match="not a valid project name"):
        normalize_project("../etc")


def test_default_url_comes_from_the_library() -> None:
    assert default_index_url() == pypi_simple.PYPI_SIMPLE_ENDPOINT


def test_accept_header_is_the_library_s() -> None:
    """Our Accept header (sent before the library is imported) is the library's own."""
    assert ACCEPT_JSON_PREFERRED == pypi_simple.ACCEPT_JSON_PREFERRED


def index(tmp_path: Path) -> SimpleIndex:
    return SimpleIndex("http://127.0.0.1:9/simple", tmp_path)


def page(files: list[dict[str, object]], name: str = "demo-pkg") -> bytes:
    return json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": files}).encode()


def entry(filename: str, **extra: object) -> dict[str, object]:
    return {
        "filename": filename,
        "url": f"../../files/{filename}",
        "hashes": {"sha256": SHA},
        **extra,
    }


def test_index_url_gets_a_trailing_slash(tmp_path: Path) -> None:
    assert index(tmp_path).url == "http://127.0.0.1:9/simple/"
    with pytest.raises(ValueError, match="http"):
        SimpleIndex("file:///x", tmp_path)


def test_json_page_fields(tmp_path: Path) -> None:
    body = page(
        [
            entry(
                "demo_pkg-1.0-py3-none-any.whl",
                **{
                    "upload-time": "2024-01-02T03:04:05.123456Z",
                    "size": 10,
                    "requires-python": ">=3.8",
                    "yanked": "broken",
                },
            ),
            entry("demo-pkg-1.0.tar.gz", hashes={"sha256": SHA.upper()}),
        ]
    )
    wheel, sdist = index(tmp_path)._parse_page("demo-pkg", body, JSON_TYPE, PAGE_URL)
    assert wheel.url == "http://127.0.0.1:9/files/demo_pkg-1.0-py3-none-any.whl"
    assert wheel.kind is FileKind.WHEEL
    assert wheel.project == "demo-pkg"
    assert wheel.version == "1.0"
    assert wheel.upload_time == datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert wheel.size == 10
    assert wheel.requires_python == ">=3.8"
    assert wheel.yanked
    assert sdist.sha256 == SHA  # upper-case hex is normalized
    assert sdist.upload_time is None
    assert not sdist.yanked


def test_files_without_usable_sha256_are_listed_without_one(tmp_path: Path) -> None:
    body = page(
        [
            entry("demo-pkg-1.0.tar.gz", hashes={"md5": "0" * 32}),
            entry("demo-pkg-1.1.tar.gz", hashes={"sha256": "nothex"}),
        ]
    )
    files = index(tmp_path)._parse_page("demo-pkg", body, JSON_TYPE, PAGE_URL)
    assert [f.sha256 for f in files] == ["", ""]


def test_hostile_entries_are_ignored(tmp_path: Path) -> None:
    body = page(
        [
            entry("../evil-1.0.tar.gz"),
            entry(".hidden-1.0.tar.gz"),
            {"filename": "demo-pkg-1.0.tar.gz", "url": "file:///etc/passwd", "hashes": {}},
            entry("other-1.0.tar.gz"),
            entry("demo-pkg-2.0.tar.gz"),
        ]
    )
    files = index(tmp_path)._parse_page("demo-pkg", body, JSON_TYPE, PAGE_URL)
    # These name another project (or have a non-HTTP URL): not files of this release.
    assert [f.filename for f in files] == ["demo-pkg-2.0.tar.gz"]


def test_an_unsafe_name_of_this_project_is_kept_in_its_release(tmp_path: Path) -> None:
    body = page(
        [entry("../../demo_pkg-1.0-py3-none-any.whl"), entry("demo_pkg-1.0-..-none-any.whl")]
    )
    files = index(tmp_path)._parse_page("demo-pkg", body, JSON_TYPE, PAGE_URL)
    assert [(f.version, f.kind) for f in files] == [("1.0", FileKind.OTHER)] * 2
    assert all(refused_name(f.filename) for f in files)


def test_page_for_another_project_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IndexError_, match="is for 'other'"):
        index(tmp_path)._parse_page("demo-pkg", page([], name="other"), JSON_TYPE, PAGE_URL)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"meta": ', "invalid JSON"),
        (b"[1, 2]", "not a valid simple-API page"),
        (
            json.dumps({"meta": {"api-version": "1.0"}, "name": "demo-pkg", "files": {}}).encode(),
            "not a valid",
        ),
        (
            json.dumps({"meta": {"api-version": "9.0"}, "name": "demo-pkg", "files": []}).encode(),
            "9.0",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "demo-pkg"),
    ],
)
def test_malformed_json_pages(tmp_path: Path, body: bytes, message: str) -> None:
    with pytest.raises(IndexError_, match=message):
        index(tmp_path)._parse_page("demo-pkg", body, JSON_TYPE, PAGE_URL)


def test_unknown_content_type(tmp_path: Path) -> None:
    with pytest.raises(IndexError_, match="unsupported type 'application/xml'"):
        index(tmp_path)._parse_page("demo-pkg", b"<x/>", "application/xml", PAGE_URL)


def test_html_page(tmp_path: Path) -> None:
    body = (
        "<html><body>"
        f'<a href="../../files/demo-pkg-1.0.tar.gz#sha256={SHA}" '
        'data-requires-python="&gt;=3.8" data-yanked="">demo-pkg-1.0.tar.gz</a>'
        '<a href="../../files/demo_pkg-1.0-py3-none-any.whl#md5=00">'
        "demo_pkg-1.0-py3-none-any.whl</a>"
        "</body></html>"
    ).encode()
    sdist, wheel = index(tmp_path)._parse_page(
        "demo-pkg", body, "text/html; charset=utf-8", PAGE_URL
    )
    assert sdist.url == "http://127.0.0.1:9/files/demo-pkg-1.0.tar.gz"
    assert sdist.sha256 == SHA
    assert sdist.requires_python == ">=3.8"
    assert sdist.yanked
    assert sdist.upload_time is None
    assert wheel.sha256 == ""
    assert wheel.kind is FileKind.WHEEL
