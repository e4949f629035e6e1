"""A published file whose name is unsafe is a verdict, not a warning (issue 17, item 7).

Each refused file gets exactly one result line (``failed``, reason class ``sandbox``),
is never downloaded, and the other files keep their results and attestations.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from rebuilder.attest.bundle import bundle_path
from tests.support.dists import make_wheel
from tests.support.index_server import FixtureIndex

UNSAFE = ("../../x-1.0-py3-none-any.whl", "x-1.0-..-none-any.whl")


def _check(
    specs: list[str], index: FixtureIndex, tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> tuple[int, list[dict[str, Any]]]:
    monkeypatch.setenv("REBUILDER_CACHE_DIR", str(tmp / "cache"))
    code = main(["check", *specs, "--index-url", index.url, "--out", str(tmp / "out"), "--json"])
    lines = capsys.readouterr().out.splitlines()
    return code, [json.loads(line) for line in lines if line.startswith("{")]


def test_each_refused_name_has_one_failed_line_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    now = datetime.now(UTC)
    made = tmp_path / "made"
    made.mkdir()
    with FixtureIndex() as index:
        good = make_wheel(made, "x", "1.0")
        index.add_file("x", good.name, good.read_bytes(), now)
        for name in UNSAFE:
            index.add_file("x", name, b"not fetched", now)
        other = make_wheel(made, "y", "2.0")
        index.add_file("y", other.name, other.read_bytes(), now)

        code, lines = _check(["x==1.0", "y==2.0"], index, tmp_path, monkeypatch, capsys)

        assert code == 2
        by_name: dict[str, list[dict[str, Any]]] = {}
        for line in lines:
            by_name.setdefault(line["filename"], []).append(line)
        assert set(by_name) == {*UNSAFE, good.name, other.name}
        assert all(len(results) == 1 for results in by_name.values()), by_name
        for name in UNSAFE:
            refused = by_name[name][0]
            assert (refused["verdict"], refused["reason_class"]) == ("failed", "sandbox")
            assert "unsafe file name" in refused["reason"]
        # the other files are judged (no sdist: unsupported) and attested as before
        assert by_name[good.name][0]["verdict"] == "unsupported"
        assert by_name[other.name][0]["verdict"] == "unsupported"
        for project, version, name in (("x", "1.0", good.name), ("y", "2.0", other.name)):
            assert (tmp_path / "out" / bundle_path(project, version, name)).is_file()
        # a refused file is never fetched, and nothing was written outside the evidence
        assert not any("x-1.0-" in p and "/files/" in p for p in index.paths_requested())
        written = {p for p in tmp_path.rglob("x-1.0-*") if made not in p.parents}
        assert all(p.is_dir() and p.parent.name == "1.0" for p in written), written


def test_a_release_of_only_safe_names_still_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The twin: without the unsafe names the same release is fine."""
    with FixtureIndex() as index:
        good = make_wheel(tmp_path, "x", "1.0")
        index.add_file("x", good.name, good.read_bytes(), datetime.now(UTC))

        code, lines = _check(["x==1.0"], index, tmp_path, monkeypatch, capsys)

        assert code == 0
        assert [line["filename"] for line in lines] == [good.name]
