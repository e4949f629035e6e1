"""The text output of a source check lists every finding, with why."""

from __future__ import annotations

from rebuilder.source.clone import one_line
from rebuilder.source.report import MAX_LISTED, source_line, source_row
from rebuilder.source.result import (
    DifferingFile,
    DiffKind,
    ExplainedFile,
    GitBuild,
    SourceResult,
    SourceVerdict,
)


def _result(differing: int) -> SourceResult:
    return SourceResult(
        "demo",
        "1.2.3",
        SourceVerdict.INCONSISTENT,
        sdist="demo-1.2.3.tar.gz",
        repository="https://github.com/example/demo",
        tag="v1.2.3",
        commit="c" * 40,
        explained=(ExplainedFile("setup.cfg", "setup-cfg-egg-info@2", "the same"),),
        differing=(
            DifferingFile("PKG-INFO", DiffKind.CONTENT, "pkg-info@2: requires-dist: +evilpkg"),
            *(DifferingFile(f"src/demo/m{i:02}.py", DiffKind.SDIST_ONLY) for i in range(differing)),
        ),
        from_git=(
            GitBuild("demo-1.2.3.tar.gz", "failed", reason="the build backend failed: boom"),
            GitBuild("demo-1.2.3-py3-none-any.whl", "mismatch", differences=("content:a.py",)),
        ),
        evidence="out/demo/1.2.3/source",
    )


def test_every_differing_file_is_listed_with_why_and_the_from_git_reasons() -> None:
    text = source_line(_result(9))
    lines = text.splitlines()
    assert lines[0].startswith("source inconsistent demo 1.2.3  https://github.com/example/demo")
    assert "10 differing" in lines[0]
    assert "1 explained (setup-cfg-egg-info@2)" in lines[0]
    assert "  content: PKG-INFO (pkg-info@2: requires-dist: +evilpkg)" in lines
    assert all(f"  sdist-only: src/demo/m{i:02}.py" in lines for i in range(9))
    assert "  from git demo-1.2.3.tar.gz: failed (the build backend failed: boom)" in lines
    assert "  from git demo-1.2.3-py3-none-any.whl: mismatch (content:a.py)" in lines
    assert "more" not in text


def test_past_the_limit_it_says_how_many_more_and_where_they_are() -> None:
    text = source_line(_result(MAX_LISTED + 4))
    assert f"src/demo/m{MAX_LISTED - 2:02}.py" in text
    assert f"src/demo/m{MAX_LISTED - 1:02}.py" not in text
    assert "  +5 more: every file is in out/demo/1.2.3/source/report.json" in text.splitlines()


def test_the_source_row_of_the_table() -> None:
    name, verdict, details = source_row(_result(1))
    assert (name, verdict) == ("source of demo-1.2.3.tar.gz", "inconsistent")
    assert "sdist-only: src/demo/m00.py" in details.splitlines()
    assert "from git demo-1.2.3.tar.gz: failed (the build backend failed: boom)" in details


def test_gits_errors_are_one_line() -> None:
    stderr = "  stderr: 'fatal: repository 'file:///x' does not exist\n\nfatal: Could not read\n'"
    assert one_line(stderr) == "fatal: repository 'file:///x' does not exist; fatal: Could not read"


def test_the_terminal_table_has_the_source_as_its_own_row() -> None:
    from rich.console import Console  # noqa: PLC0415 - only this test renders

    from cli.main import _table  # noqa: PLC0415 - the CLI's table, as a terminal shows it

    console = Console(width=200, record=True)
    console.print(_table([], [_result(1)]))
    text = console.export_text()
    assert "source of demo-1.2.3.tar.gz" in text
    assert "inconsistent" in text
    assert "sdist-only: src/demo/m00.py" in text
