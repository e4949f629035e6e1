from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rebuilder.errors import IntegrityError
from rebuilder.index.cache import BlobStore, PageCache, is_sha256, sha256_file
from rebuilder.index.model import FileKind, IndexFile

DATA = b"hello wheel\n"
DIGEST = hashlib.sha256(DATA).hexdigest()


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_is_sha256() -> None:
    assert is_sha256(DIGEST)
    assert not is_sha256(DIGEST.upper())
    assert not is_sha256(DIGEST[:-1])
    assert not is_sha256("../" + DIGEST[3:])


def test_blob_layout_and_read_only(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with store.writer(DIGEST) as out:
        out.write(DATA[:4])
        out.write(DATA[4:])
    path = store.path_for(DIGEST)
    assert path == tmp_path / "blobs" / "sha256" / DIGEST[:2] / DIGEST
    assert path.read_bytes() == DATA
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert store.get(DIGEST) == path
    assert all_files(tmp_path) == [path]


def test_mismatch_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with (
        pytest.raises(IntegrityError, match=r"sha256 mismatch for demo.whl"),
        store.writer(DIGEST, label="demo.whl") as out,
    ):
        out.write(b"something else")
    assert all_files(tmp_path) == []
    assert store.get(DIGEST) is None


def test_error_while_writing_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(RuntimeError), store.writer(DIGEST) as out:
        out.write(DATA)
        raise RuntimeError("connection lost")
    assert all_files(tmp_path) == []


def test_corrupt_blob_is_discarded(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with store.writer(DIGEST) as out:
        out.write(DATA)
    path = store.path_for(DIGEST)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    assert store.get(DIGEST) is None
    assert not path.exists()


def test_path_for_refuses_non_digests(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        BlobStore(tmp_path).path_for("../../etc/passwd")


def test_sha256_file(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(DATA)
    assert sha256_file(p) == DIGEST


def make_file(**overrides: object) -> IndexFile:
    fields: dict[str, object] = {
        "project": "demo",
        "version": "1.0",
        "filename": "demo-1.0.tar.gz",
        "url": "http://127.0.0.1:1/files/demo-1.0.tar.gz",
        "sha256": DIGEST,
        "kind": FileKind.SDIST,
        "upload_time": datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        "size": 12,
        "yanked": True,
        "requires_python": ">=3.8",
    }
    fields.update(overrides)
    return IndexFile(**fields)  # type: ignore[arg-type]


def test_page_cache_round_trip(tmp_path: Path) -> None:
    cache = PageCache(tmp_path)
    files = [make_file(), make_file(filename="x.egg", kind=FileKind.OTHER, upload_time=None)]
    stored = cache.store("demo", "http://127.0.0.1:1/simple/demo/", files)
    loaded = cache.load("demo")
    assert loaded == stored
    assert loaded is not None
    assert loaded.files == tuple(files)
    assert 0 <= loaded.age() < 60
    assert [p.name for p in tmp_path.iterdir()] == ["demo.json"]


def test_page_cache_unreadable_is_a_miss(tmp_path: Path) -> None:
    cache = PageCache(tmp_path)
    assert cache.load("demo") is None
    (tmp_path / "demo.json").write_text("{not json")
    assert cache.load("demo") is None
    (tmp_path / "demo.json").write_text('{"schema": 1, "project": "demo"}')
    assert cache.load("demo") is None


def test_page_cache_age_uses_fetch_time(tmp_path: Path) -> None:
    cache = PageCache(tmp_path)
    page = cache.store("demo", "u", [])
    assert page.age(now=page.fetched_at + 100) == pytest.approx(100)
    assert [p.name for p in tmp_path.iterdir()] == ["demo.json"]
