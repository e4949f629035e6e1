"""SimpleIndex against the fixture index server on 127.0.0.1."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rebuilder.errors import IndexError_, IntegrityError, NotFoundError
from rebuilder.index.http import HttpSettings, make_session, user_agent
from rebuilder.index.model import FileKind
from rebuilder.index.simple import SimpleIndex
from tests.support.dists import make_sdist, make_wheel
from tests.support.index_server import FixtureIndex

T1 = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
T2 = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture
def published(fixture_index: FixtureIndex, tmp_path: Path) -> FixtureIndex:
    src = tmp_path / "src"
    src.mkdir()
    fixture_index.add_path("demo", make_wheel(src, "demo", "1.0"), T1, requires_python=">=3.8")
    fixture_index.add_path("demo", make_sdist(src, "demo", "1.0"), T1)
    fixture_index.add_path("demo", make_wheel(src, "demo", "2.0"), T2, yanked="bad build")
    fixture_index.add_file("demo", "demo-0.1-py2.7.egg", b"egg", T1)
    return fixture_index


def client(index: FixtureIndex, tmp_path: Path, **kwargs: object) -> SimpleIndex:
    session = make_session(HttpSettings(retries=0))
    return SimpleIndex(index.url, tmp_path / "cache", session=session, **kwargs)  # type: ignore[arg-type]


def blobs(tmp_path: Path) -> list[Path]:
    root = tmp_path / "cache" / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_json_page(published: FixtureIndex, tmp_path: Path) -> None:
    files = {f.filename: f for f in client(published, tmp_path).project_files("Demo")}
    assert set(files) == {
        "demo-1.0-py3-none-any.whl",
        "demo-1.0.tar.gz",
        "demo-2.0-py3-none-any.whl",
        "demo-0.1-py2.7.egg",
    }
    wheel = files["demo-1.0-py3-none-any.whl"]
    served = published.file(wheel.filename)
    assert wheel.url == published.base + served.path  # relative URL resolved
    assert wheel.sha256 == served.sha256
    assert wheel.upload_time == T1
    assert wheel.size == len(served.data)
    assert wheel.requires_python == ">=3.8"
    assert wheel.kind is FileKind.WHEEL
    assert files["demo-1.0.tar.gz"].kind is FileKind.SDIST
    assert files["demo-0.1-py2.7.egg"].kind is FileKind.OTHER
    assert files["demo-2.0-py3-none-any.whl"].yanked
    [request] = published.requests
    assert request.path == "/simple/demo/"
    assert request.headers["Accept"].startswith("application/vnd.pypi.simple.v1+json")
    assert request.headers["User-Agent"] == user_agent()


def test_html_page(published: FixtureIndex, tmp_path: Path) -> None:
    published.hostile.force_html = True
    files = {f.filename: f for f in client(published, tmp_path).project_files("demo")}
    wheel = files["demo-1.0-py3-none-any.whl"]
    served = published.file(wheel.filename)
    assert wheel.url == published.base + served.path
    assert wheel.sha256 == served.sha256
    assert wheel.upload_time is None  # HTML pages carry no upload time
    assert wheel.requires_python == ">=3.8"
    assert files["demo-2.0-py3-none-any.whl"].yanked
    assert files["demo-1.0.tar.gz"].kind is FileKind.SDIST


def test_release_files_normalizes(published: FixtureIndex, tmp_path: Path) -> None:
    index = client(published, tmp_path)
    names = sorted(f.filename for f in index.release_files("DEMO", "1.0.0"))
    assert names == ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]


def test_unknown_project_and_release(published: FixtureIndex, tmp_path: Path) -> None:
    index = client(published, tmp_path)
    with pytest.raises(NotFoundError, match="'nothing' not found"):
        index.project_files("nothing")
    with pytest.raises(NotFoundError, match=r"demo 3.0: no such release"):
        index.release_files("demo", "3.0")


def test_page_ttl(published: FixtureIndex, tmp_path: Path) -> None:
    index = client(published, tmp_path, page_ttl_seconds=3600)
    index.project_files("demo")
    index.project_files("demo")
    client(published, tmp_path, page_ttl_seconds=3600).project_files("demo")  # from disk
    assert published.paths_requested() == ["/simple/demo/"]
    client(published, tmp_path, page_ttl_seconds=0).project_files("demo")
    assert published.paths_requested() == ["/simple/demo/"] * 2


def test_warm_page_needs_no_server(published: FixtureIndex, tmp_path: Path) -> None:
    client(published, tmp_path).project_files("demo")
    published.stop()
    assert len(client(published, tmp_path).project_files("demo")) == 4


def test_cached_page_missing_a_version_is_refreshed_once(
    published: FixtureIndex, tmp_path: Path
) -> None:
    index = client(published, tmp_path, page_ttl_seconds=3600)
    index.project_files("demo")
    published.add_file("demo", "demo-3.0.tar.gz", b"new", T2)
    assert [f.filename for f in index.release_files("demo", "3.0")] == ["demo-3.0.tar.gz"]
    assert published.paths_requested() == ["/simple/demo/"] * 2
    with pytest.raises(NotFoundError):
        index.release_files("demo", "4.0")
    assert published.paths_requested() == ["/simple/demo/"] * 3


def test_download_and_cache_hit_without_server(published: FixtureIndex, tmp_path: Path) -> None:
    index = client(published, tmp_path)
    [wheel] = [f for f in index.release_files("demo", "1.0") if f.kind is FileKind.WHEEL]
    path = index.download(wheel)
    assert path.read_bytes() == published.file(wheel.filename).data
    assert path.parent.parent.name == "sha256"
    assert path.name == wheel.sha256
    published.stop()
    fresh = client(published, tmp_path)
    assert fresh.download(wheel) == path
    assert fresh.cached_path(wheel) == path


def test_hash_mismatch_refused(published: FixtureIndex, tmp_path: Path) -> None:
    index = client(published, tmp_path)
    [wheel] = [f for f in index.release_files("demo", "1.0") if f.kind is FileKind.WHEEL]
    published.hostile.corrupt.add(wheel.filename)
    with pytest.raises(IntegrityError, match=r"sha256 mismatch for demo-1.0-py3-none-any.whl"):
        index.download(wheel)
    assert blobs(tmp_path) == []
    published.hostile.corrupt.clear()
    assert index.download(wheel).is_file()


def test_truncated_download(published: FixtureIndex, tmp_path: Path) -> None:
    index = client(published, tmp_path)
    [sdist] = [f for f in index.release_files("demo", "1.0") if f.kind is FileKind.SDIST]
    published.hostile.truncate.add(sdist.filename)
    with pytest.raises(IndexError_, match="truncated") as info:
        index.download(sdist)
    assert not isinstance(info.value, IntegrityError)
    assert blobs(tmp_path) == []


def test_unhashed_file_is_listed_but_never_downloaded(
    published: FixtureIndex, tmp_path: Path
) -> None:
    published.hostile.unhashed.add("demo-1.0.tar.gz")
    index = client(published, tmp_path)
    [sdist] = [f for f in index.release_files("demo", "1.0") if f.kind is FileKind.SDIST]
    assert sdist.sha256 == ""
    with pytest.raises(IntegrityError, match="no sha256"):
        index.download(sdist)
    assert published.paths_requested() == ["/simple/demo/"]


def test_slow_server_times_out(published: FixtureIndex, tmp_path: Path) -> None:
    published.hostile.delay = 3.0
    index = client(published, tmp_path, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(IndexError_, match=r"timed out after 0.3s"):
        index.project_files("demo")
    assert time.monotonic() - started < 2.5


def test_trickling_download_hits_the_deadline(published: FixtureIndex, tmp_path: Path) -> None:
    data = bytes(range(256)) * 200  # 51 KiB: 13 chunks of 4 KiB
    published.add_file("demo", "demo-5.0.tar.gz", data, T2)
    index = client(published, tmp_path, download_deadline=0.5)
    [sdist] = index.release_files("demo", "5.0")
    published.hostile.trickle = 0.1
    with pytest.raises(IndexError_, match=r"not complete after 0.5s"):
        index.download(sdist)
    assert blobs(tmp_path) == []


def test_size_cap(published: FixtureIndex, tmp_path: Path) -> None:
    index = client(published, tmp_path, max_download_bytes=100)
    [sdist] = [f for f in index.release_files("demo", "1.0") if f.kind is FileKind.SDIST]
    with pytest.raises(IndexError_, match="over the 100 byte limit"):
        index.download(sdist)
    assert published.paths_requested() == ["/simple/demo/"]  # refused from the listed size


def test_redirect_to_another_host(published: FixtureIndex, tmp_path: Path) -> None:
    published.hostile.redirect_files_to = f"http://localhost:{published.port}/mirror"
    index = client(published, tmp_path)
    [sdist] = [f for f in index.release_files("demo", "1.0") if f.kind is FileKind.SDIST]
    with pytest.raises(IndexError_, match="refused redirect to another host"):
        index.download(sdist)
    assert blobs(tmp_path) == []
    allowed = client(published, tmp_path, allow_cross_host_redirects=True)
    assert allowed.download(sdist).read_bytes() == published.file(sdist.filename).data


def test_same_host_redirect_is_followed(published: FixtureIndex, tmp_path: Path) -> None:
    index = client(published, tmp_path)
    files = index.refresh("DeMo")
    published.hostile.redirect_files_to = published.base + "/mirror"
    [sdist] = [f for f in files if f.kind is FileKind.SDIST and f.version == "1.0"]
    assert index.download(sdist).is_file()
    assert published.paths_requested() == [
        "/simple/demo/",
        published.file(sdist.filename).path,
        "/mirror" + published.file(sdist.filename).path,
    ]


def test_invalid_json(published: FixtureIndex, tmp_path: Path) -> None:
    published.hostile.invalid_json = True
    with pytest.raises(IndexError_, match="invalid JSON"):
        client(published, tmp_path).project_files("demo")


def test_json_breaking_the_schema(published: FixtureIndex, tmp_path: Path) -> None:
    published.hostile.bad_schema = True
    with pytest.raises(IndexError_, match="not a valid simple-API page"):
        client(published, tmp_path).project_files("demo")


@pytest.mark.parametrize("announced", [True, False])
def test_gigantic_json(published: FixtureIndex, tmp_path: Path, announced: bool) -> None:
    published.hostile.page_padding = 2_000_000
    published.hostile.no_content_length = not announced
    index = client(published, tmp_path, max_page_bytes=1_000_000)
    with pytest.raises(IndexError_, match="1000000 byte limit"):
        index.project_files("demo")
    assert client(published, tmp_path).project_files("demo")  # the default cap is larger


def test_server_errors_are_retried(published: FixtureIndex, tmp_path: Path) -> None:
    session = make_session(HttpSettings(retries=2, backoff_factor=0.01))
    index = SimpleIndex(published.url, tmp_path / "cache", session=session)
    published.hostile.fail_count = 2
    assert len(index.project_files("demo")) == 4
    assert published.paths_requested() == ["/simple/demo/"] * 3


def test_persistent_server_errors(published: FixtureIndex, tmp_path: Path) -> None:
    published.hostile.fail_count = -1
    published.hostile.fail_status = 503
    with pytest.raises(IndexError_, match="HTTP 503") as info:
        client(published, tmp_path).project_files("demo")
    assert not isinstance(info.value, NotFoundError)


def test_connection_refused(tmp_path: Path) -> None:
    with FixtureIndex() as stopped:
        url = stopped.url
    index = SimpleIndex(url, tmp_path, session=make_session(HttpSettings(retries=0)))
    with pytest.raises(IndexError_, match="cannot reach"):
        index.project_files("demo")


def test_pages_of_two_indexes_do_not_mix(published: FixtureIndex, tmp_path: Path) -> None:
    with FixtureIndex() as other:
        other.add_file("demo", "demo-9.0.tar.gz", b"nine", T2)
        a = client(published, tmp_path, page_ttl_seconds=3600)
        b = client(other, tmp_path, page_ttl_seconds=3600)
        assert len(a.project_files("demo")) == 4
        assert [f.filename for f in b.project_files("demo")] == ["demo-9.0.tar.gz"]
