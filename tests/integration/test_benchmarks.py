"""Every benchmark in docs/benchmarks.md runs once at a tiny size, so none of them rots.

Each documented command is run as a user would run it (``python -m benchmarks.NAME``,
a fresh process) against local fixtures only: the corpus benchmarks read a fixture
index (``REBUILDER_INDEX_URL``), the fleet ones build their own releases, the web one
fills its own database. The test fails when the documentation names a benchmark mode
this file does not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from tests.support.index_server import FixtureIndex
from tests.support.postgres import server_url
from tests.support.releases import SETUPTOOLS, maintainer_build, publish
from tests.support.wheelhouse import load_into

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "benchmarks.md"
FLEET_MODES = ("--corpus", "--backfill", "--campaign-latency", "--soak-minutes")

# (module, mode) -> the tiny arguments and what the output must contain.
TINY: dict[tuple[str, str], tuple[list[str], str]] = {
    ("corpus", ""): (["{corpus}", "--out", "{tmp}/out", "--runs", "1"], "reproducible: 1"),
    ("web", ""): (
        ["--attempts", "3000", "--requests", "1", "--warmup", "0", "--database", "{database}"],
        "| page: home |",
    ),
    ("startup", ""): (["--runs", "1"], "| `rebuilder --help` |"),
    ("fleet", ""): (["--releases", "2", "--workers", "1", "--timeout", "300"], "2 wheels"),
    ("fleet", "--corpus"): (["--corpus", "{corpus}", "--workers", "1", "--timeout", "300"], "1"),
    ("fleet", "--backfill"): (["--backfill", "200"], "200"),
    ("fleet", "--campaign-latency"): (
        ["--campaign-latency", "--backlog", "3", "--workers", "1", "--timeout", "300"],
        "Campaign latency",
    ),
    ("fleet", "--soak-minutes"): (
        ["--soak-minutes", "0.4", "--publish-every", "8", "--workers", "1"],
        "Soak",
    ),
}


def documented() -> set[tuple[str, str]]:
    """Every (module, mode) docs/benchmarks.md gives a command for."""
    found = set()
    for args in re.findall(r"python -m benchmarks\.(\w+)([^`\n]*)", DOCS.read_text()):
        module, rest = args
        mode = next((m for m in FLEET_MODES if m in rest.split()), "") if module == "fleet" else ""
        found.add((module, mode))
    return found


def test_every_documented_benchmark_has_a_tiny_run() -> None:
    docs = documented()
    assert ("web", "") in docs  # the parser reads the real document
    assert docs <= set(TINY), f"benchmarks without a smoke run: {sorted(docs - set(TINY))}"


@pytest.fixture(scope="module")
def corpus_index(
    tmp_path_factory: pytest.TempPathFactory, sandbox_image: ImageRef, docker_client: object
) -> Iterator[tuple[FixtureIndex, Path]]:
    tmp = tmp_path_factory.mktemp("bench-corpus")
    with FixtureIndex() as index:
        load_into(index, only=[SETUPTOOLS])
        sandbox = DockerSandbox(client=docker_client)
        release = maintainer_build(
            tmp, sandbox_image, sandbox, "1.0", {"SOURCE_DATE_EPOCH": "1700000000"}
        )
        publish(index, release)
        corpus = tmp / "corpus.txt"
        corpus.write_text("demo==1.0  # one genuine release\n")
        yield index, corpus


@pytest.fixture
def database() -> Iterator[str]:
    name = f"rebuilder_bench_smoke_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.mark.timeout(420)
@pytest.mark.parametrize("case", sorted(TINY), ids=lambda c: "-".join(filter(None, c)))
def test_benchmark_runs_at_a_tiny_size(
    case: tuple[str, str],
    corpus_index: tuple[FixtureIndex, Path],
    database: str,
    tmp_path: Path,
) -> None:
    index, corpus = corpus_index
    module, _ = case
    template, expected = TINY[case]
    values = {"corpus": str(corpus), "tmp": str(tmp_path), "database": database}
    args = [a.format(**values) for a in template]
    report = tmp_path / "report.md"
    env = {
        **os.environ,
        "REBUILDER_INDEX_URL": index.url,
        "REBUILDER_CACHE_DIR": str(tmp_path / "cache"),
        "REBUILDER_DATA_DIR": str(tmp_path / "data"),
    }
    if module == "web":
        args += ["--data-dir", str(tmp_path / "web")]
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args, "--report", str(report)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert report.is_file(), done.stdout[-2000:]
    assert expected in report.read_text(), report.read_text()
