from __future__ import annotations

import pytest

from rebuilder.source.errors import NoRepositoryError
from rebuilder.source.locate import (
    apply_mirrors,
    forge_repository,
    locate_repository,
    normalize_label,
)


def _metadata(*lines: str, body: str = "") -> str:
    return (
        "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
        + "".join(f"{line}\n" for line in lines)
        + f"\n{body}"
    )


def test_pep753_label_normalization() -> None:
    assert normalize_label("Source Code") == "sourcecode"
    assert normalize_label("source-code") == "sourcecode"
    assert normalize_label(" Repository: ") == "repository"
    assert normalize_label("Home_Page") == "homepage"


def test_source_label_wins_over_homepage_and_description() -> None:
    text = _metadata(
        "Home-page: https://github.com/home/page",
        "Project-URL: Documentation, https://demo.readthedocs.io",
        "Project-URL: Source Code, https://github.com/pallets/demo/tree/main/src",
        body="See https://gitlab.com/other/thing for more.",
    )
    where = locate_repository("demo", text)
    assert (where.url, where.found_in) == (
        "https://github.com/pallets/demo",
        "Project-URL: Source Code",
    )


def test_homepage_on_a_forge_then_description() -> None:
    assert (
        locate_repository("demo", _metadata("Home-page: https://github.com/a/b.git")).url
        == "https://github.com/a/b"
    )
    where = locate_repository(
        "demo", _metadata(body="Code at <https://codeberg.org/team/demo/issues>.")
    )
    assert (where.url, where.found_in) == ("https://codeberg.org/team/demo", "description")


def test_gitlab_groups_are_kept() -> None:
    assert forge_repository("https://gitlab.com/g/sub/proj/-/tree/main") == (
        "https://gitlab.com/g/sub/proj"
    )
    assert forge_repository("https://github.com/owner") is None
    assert forge_repository("https://example.org/a/b") is None
    assert forge_repository("https://github.com/../etc") is None


def test_overrides_by_normalized_name_and_mirrors() -> None:
    overrides = {"Demo_Pkg": "https://github.com/x/demo"}
    mirrors = {"https://github.com/": "https://git.internal/mirror/github/"}
    where = locate_repository("demo-pkg", None, overrides=overrides, mirrors=mirrors)
    assert where.url == "https://git.internal/mirror/github/x/demo"
    assert where.declared == "https://github.com/x/demo"
    assert where.found_in == "override"


def test_longest_mirror_prefix_wins() -> None:
    mirrors = {"https://github.com/": "file:///a/", "https://github.com/org/": "file:///b/"}
    assert apply_mirrors("https://github.com/org/x", mirrors) == "file:///b/x"
    assert apply_mirrors("https://gitlab.com/org/x", mirrors) == "https://gitlab.com/org/x"


def test_nothing_found_says_what_was_tried() -> None:
    text = _metadata("Project-URL: Docs, https://docs.example.org")
    with pytest.raises(NoRepositoryError, match=r"Docs: https://docs\.example\.org"):
        locate_repository("demo", text)
