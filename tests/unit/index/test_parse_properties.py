"""Property tests: any page body gives a list of checked files or IndexError_, nothing else."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rebuilder.errors import IndexError_
from rebuilder.index.model import FileKind, IndexFile, refused_name
from rebuilder.index.simple import HTML_CONTENT_TYPES, JSON_CONTENT_TYPE, SimpleIndex

PAGE_URL = "http://127.0.0.1:9/simple/demo-pkg/"
SCALE = max(1, settings().max_examples // 100)
EXAMPLES = settings(
    max_examples=100 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["demo-pkg", "1.1", "1.0", "9.0", "http://[::1", "file:///etc/passwd"]),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_filenames = st.sampled_from(
    ["demo_pkg-1.0-py3-none-any.whl", "demo-pkg-1.0.tar.gz", "../x.tar.gz", "", "a\x00b"]
)


_OPTIONAL: dict[str, st.SearchStrategy[object]] = {
    "upload-time": st.sampled_from(["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.5+02:00"]),
    "size": st.integers(-1, 2**64),
    "yanked": st.one_of(st.booleans(), st.text(max_size=5)),
    "requires-python": st.sampled_from([">=3.8", "", "garbage"]),
    "dist-info-metadata": st.one_of(st.booleans(), st.just({"sha256": "b" * 64})),
}


def mostly(valid: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """``valid`` four times in five, arbitrary JSON otherwise."""
    return st.integers(0, 4).flatmap(lambda pick: valid if pick else _json)


@st.composite
def page_like(draw: st.DrawFn) -> object:
    """A page with the right shape and arbitrary values where the fields go."""
    file = {
        "filename": draw(mostly(_filenames)),
        "url": draw(mostly(st.sampled_from(["x.whl", "x.whl", "http://[::1", "//h/x"]))),
        "hashes": draw(mostly(st.just({"sha256": "a" * 64}))),
    }
    for key, valid in _OPTIONAL.items():
        if draw(st.integers(0, 2)) == 0:
            file[key] = draw(st.one_of(valid, _json) if draw(st.booleans()) else valid)
    meta = draw(mostly(st.just({"api-version": "1.1"})))
    return {"meta": meta, "name": draw(mostly(st.just("demo-pkg"))), "files": [file]}


def parse(body: bytes, content_type: str) -> list[IndexFile] | None:
    with tempfile.TemporaryDirectory() as tmp:
        index = SimpleIndex("http://127.0.0.1:9/simple", Path(tmp))
        try:
            files = index._parse_page("demo-pkg", body, content_type, PAGE_URL)
        except IndexError_ as exc:
            event(f"refused: {str(exc).split(': ', 1)[-1][:40]}")
            return None
    event(f"{len(files)} files")
    for f in files:
        assert f.project == "demo-pkg"
        assert "/" not in f.filename or (refused_name(f.filename) and f.kind is FileKind.OTHER)
        assert f.url.startswith(("http://", "https://"))
        assert f.sha256 == "" or len(f.sha256) == 64
    return files


@EXAMPLES
@given(data=st.one_of(_json, page_like(), page_like()))
def test_any_json_page_gives_files_or_index_error(data: object) -> None:
    parse(json.dumps(data).encode(), JSON_CONTENT_TYPE)


@EXAMPLES
@given(body=st.binary(max_size=200))
def test_any_bytes_as_json_give_files_or_index_error(body: bytes) -> None:
    parse(body, JSON_CONTENT_TYPE)


_HTML_BITS = st.sampled_from(
    [
        '<a href="../../files/demo-pkg-1.0.tar.gz#sha256=' + "a" * 64 + '">demo-pkg-1.0.tar.gz</a>',
        '<a href="http://[::1">demo-pkg-1.0.tar.gz</a>',
        '<a data-yanked="" data-requires-python="&gt;=3">demo_pkg-1.0-py3-none-any.whl</a>',
        '<meta name="pypi:repository-version" content="9.0">',
        '<meta name="pypi:repository-version" content="x">',
        "<a href='#sha256=zz'>x</a>",
        "<!--",
        "<a",
        "&#xffffff;",
    ]
)


@EXAMPLES
@given(
    parts=st.lists(st.one_of(_HTML_BITS, st.text(max_size=10)), max_size=8),
    charset=st.sampled_from(["", "; charset=utf-8", "; charset=nonsense", "; charset=utf-16"]),
    mime=st.sampled_from(sorted(HTML_CONTENT_TYPES)),
)
def test_any_html_page_gives_files_or_index_error(
    parts: list[str], charset: str, mime: str
) -> None:
    parse("".join(parts).encode("utf-8", "surrogatepass"), mime + charset)
