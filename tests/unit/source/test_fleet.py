"""Tracing a release the fleet recorded: the recorded sdist, trouble fetching it raised."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rebuilder.errors import IndexError_
from rebuilder.index.model import FileKind, IndexFile
from rebuilder.source.errors import RepositoryUnreachableError
from rebuilder.source.fleet import (
    BackoffPolicy,
    HostBackoff,
    HostOutageError,
    RecordedReleaseTracer,
)
from rebuilder.source.result import SourceVerdict
from rebuilder.source.trace import SourceConfig
from tests.support.dists import SdistMember, SdistSpec, write_sdist
from tests.unit.source.fakes import FakeCloner, FakeRepository

URL = "https://github.com/example/demo"
PKG_INFO = f"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nProject-URL: Source, {URL}\n"
TREE = {"pyproject.toml": b"[project]\nname = 'demo'\n", "demo/__init__.py": b"X = 1\n"}
COMMIT = "c" * 40


@dataclass
class FakeDownloads:
    """Serves local files by name, or fails like an index that is down."""

    paths: dict[str, Path]
    down: bool = False
    asked: list[str] = field(default_factory=list)

    def download(self, file: IndexFile) -> Path:
        self.asked.append(file.filename)
        if self.down:
            raise IndexError_(f"GET {file.url}: 503")
        return self.paths[file.filename]


def _published(tmp: Path) -> tuple[IndexFile, Path]:
    members = [
        SdistMember(p, d) for p, d in sorted({**TREE, "PKG-INFO": PKG_INFO.encode()}.items())
    ]
    path = write_sdist(tmp / "demo-1.0.tar.gz", SdistSpec("demo", "1.0", members))
    sdist = IndexFile(
        project="demo",
        version="1.0",
        filename=path.name,
        url="http://127.0.0.1:9/demo-1.0.tar.gz",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        kind=FileKind.SDIST,
        upload_time=None,
    )
    return sdist, path


def _tracer(tmp: Path, downloads: FakeDownloads, cloner: FakeCloner) -> RecordedReleaseTracer:
    return RecordedReleaseTracer(
        index=downloads, cloner=cloner, config=SourceConfig(), work_root=tmp / "work"
    )


def test_the_recorded_sdist_is_traced_with_evidence_where_asked(tmp_path: Path) -> None:
    sdist, path = _published(tmp_path)
    cloner = FakeCloner({URL: FakeRepository(URL, {COMMIT: TREE}, {"v1.0": COMMIT})})
    downloads = FakeDownloads({sdist.filename: path})
    evidence = tmp_path / "evidence" / "source"
    result = _tracer(tmp_path, downloads, cloner).trace(sdist, [sdist], evidence)
    # no rebuild from git here: the generated PKG-INFO is not taken on trust
    assert result.verdict is SourceVerdict.INCONSISTENT
    assert [(d.path, d.kind.value) for d in result.differing] == [("PKG-INFO", "unexplained")]
    assert "no rebuild from git was asked for" in result.differing[0].detail
    assert (result.commit, result.sdist, result.sdist_sha256) == (
        COMMIT,
        sdist.filename,
        sdist.sha256,
    )
    assert result.evidence == str(evidence)
    assert json.loads((evidence / "report.json").read_text())["commit"] == COMMIT
    assert downloads.asked == [sdist.filename]


def test_an_index_that_is_down_raises_instead_of_a_verdict(tmp_path: Path) -> None:
    sdist, path = _published(tmp_path)
    downloads = FakeDownloads({sdist.filename: path}, down=True)
    tracer = _tracer(tmp_path, downloads, FakeCloner())
    with pytest.raises(IndexError_):
        tracer.trace(sdist, [sdist], tmp_path / "evidence")


def test_releases_of_one_project_are_traced_one_at_a_time(tmp_path: Path) -> None:
    sdist, path = _published(tmp_path)
    inside = 0
    most = 0
    guard = threading.Lock()

    class SlowRepository(FakeRepository):
        def tags(self) -> dict[str, str]:
            nonlocal inside, most
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.05)
            with guard:
                inside -= 1
            return super().tags()

    cloner = FakeCloner({URL: SlowRepository(URL, {COMMIT: TREE}, {"v1.0": COMMIT})})
    tracer = _tracer(tmp_path, FakeDownloads({sdist.filename: path}), cloner)
    threads = [
        threading.Thread(target=tracer.trace, args=(sdist, [sdist], tmp_path / f"ev{i}"))
        for i in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1
    assert len(cloner.opened) == 3


@dataclass
class UnreachableCloner(FakeCloner):
    """A forge with no route to it: every open fails like git's 'Could not resolve host'."""

    down: bool = True

    def open(self, url: str) -> FakeRepository:
        self.opened.append(url)
        if self.down:
            raise RepositoryUnreachableError(f"git ls-remote {url}: Could not resolve host")
        return FakeRepository(url, {COMMIT: TREE}, {"v1.0": COMMIT})


def test_a_host_that_does_not_answer_is_backed_off_per_host(tmp_path: Path) -> None:
    sdist, path = _published(tmp_path)
    other = IndexFile(
        project="demo",
        version="0.9",
        filename=sdist.filename,
        url=sdist.url,
        sha256=sdist.sha256,
        kind=FileKind.SDIST,
        upload_time=None,
    )
    now = [0.0]
    backoff = HostBackoff(BackoffPolicy(first=60, longest=600), clock=lambda: now[0])
    cloner = UnreachableCloner()
    downloads = FakeDownloads({sdist.filename: path})
    tracer = RecordedReleaseTracer(
        index=downloads,
        cloner=cloner,
        config=SourceConfig(),
        work_root=tmp_path / "work",
        backoff=backoff,
    )
    with pytest.raises(HostOutageError) as first:
        tracer.trace(sdist, [sdist], tmp_path / "ev1")
    assert first.value.tried and first.value.retry_after == 60
    assert (first.value.host, first.value.url) == ("github.com", URL)
    # Another release on the same host: deferred before its sdist is even downloaded.
    with pytest.raises(HostOutageError) as second:
        tracer.trace(other, [other], tmp_path / "ev2")
    assert not second.value.tried and 0 < second.value.retry_after <= 60
    assert (len(downloads.asked), len(cloner.opened)) == (1, 1)
    # After the wait the host is tried again; still down, the wait doubles.
    now[0] = 61
    with pytest.raises(HostOutageError) as third:
        tracer.trace(other, [other], tmp_path / "ev3")
    assert third.value.tried and third.value.retry_after == 120
    assert len(cloner.opened) == 2
    # Back up: the check runs and the backoff is forgotten.
    now[0] = 200
    cloner.down = False
    result = tracer.trace(sdist, [sdist], tmp_path / "ev4")
    # a verdict, not an outage (no rebuild from git here, so PKG-INFO stays unexplained)
    assert result.commit == COMMIT and result.verdict is SourceVerdict.INCONSISTENT
    assert backoff.remaining("github.com") == 0 and backoff.failures("github.com") == 0
