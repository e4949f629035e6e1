"""The evidence blob store: content addressing, atomic writes, hash checks."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import pytest

from rebuilder.store import StoreError
from rebuilder.store.blobs import BlobIntegrityError, BlobStore, store_evidence


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".incoming-*")]


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "store")


def test_blobs_are_addressed_by_their_sha256(blobs: BlobStore) -> None:
    data = b"build log\n"
    digest = blobs.put_bytes(data)

    assert digest == _digest(data)
    path = blobs.path_for(digest)
    assert path == blobs.root / "blobs" / "sha256" / digest[:2] / digest
    assert path.read_bytes() == data
    assert blobs.read_bytes(digest) == data
    assert blobs.has(digest)
    assert path.stat().st_mode & 0o222 == 0  # read-only


def test_put_file_streams_and_deduplicates(blobs: BlobStore, tmp_path: Path) -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)  # several chunks
    source = tmp_path / "rebuilt.whl"
    source.write_bytes(big)

    first = blobs.put_file(source)
    second = blobs.put_bytes(big)

    assert first == second == _digest(big)
    assert blobs.read_bytes(first) == big
    assert len([p for p in blobs.root.rglob("*") if p.is_file()]) == 1


def test_a_wrong_expected_hash_stores_nothing(blobs: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "file"
    source.write_bytes(b"payload")
    wrong = _digest(b"something else")

    with pytest.raises(BlobIntegrityError, match="expected"):
        blobs.put_file(source, expected_sha256=wrong)
    with pytest.raises(BlobIntegrityError):
        blobs.put_bytes(b"payload", expected_sha256=wrong)

    assert not blobs.has(_digest(b"payload"))
    assert not blobs.has(wrong)
    assert _leftovers(blobs.root) == []
    assert blobs.put_file(source, expected_sha256=_digest(b"payload").upper())


def test_an_interrupted_write_leaves_no_blob_and_no_temporary_file(blobs: BlobStore) -> None:
    data = os.urandom(2 * 1024 * 1024 + 1)

    class Torn(io.BytesIO):
        """Hands out the first chunk, then the source 'fails'."""

        calls = 0

        def read(self, size: int | None = -1, /) -> bytes:
            self.calls += 1
            if self.calls > 1:
                raise OSError("device lost")
            return super().read(size)

    with pytest.raises(OSError, match="device lost"):
        blobs.put_stream(Torn(data))

    assert not blobs.has(_digest(data))
    assert [p for p in blobs.root.rglob("*") if p.is_file()] == []
    assert blobs.put_stream(io.BytesIO(data)) == _digest(data)  # the store still works


def test_corruption_is_detected_on_read(blobs: BlobStore) -> None:
    digest = blobs.put_bytes(b"original")
    path = blobs.path_for(digest)
    path.chmod(0o644)
    path.write_bytes(b"tampered")

    assert not blobs.verify(digest)
    with pytest.raises(BlobIntegrityError):
        blobs.read_bytes(digest)
    assert not blobs.verify(_digest(b"never stored"))


def test_concurrent_writers_of_the_same_content_agree(blobs: BlobStore) -> None:
    data = os.urandom(1024 * 1024)
    start = threading.Barrier(8)
    digests: list[str] = []

    def put() -> None:
        start.wait()
        digests.append(blobs.put_bytes(data))

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert digests == [_digest(data)] * 8
    assert blobs.read_bytes(_digest(data)) == data
    assert _leftovers(blobs.root) == []


@pytest.mark.parametrize("bad", ["", "abc", "g" * 64, "../" + "a" * 61])
def test_path_for_refuses_what_is_not_a_digest(blobs: BlobStore, bad: str) -> None:
    with pytest.raises(ValueError, match="sha256"):
        blobs.path_for(bad)


def test_store_evidence_returns_the_manifest(blobs: BlobStore, tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    (folder / "diff").mkdir(parents=True)
    (folder / "build.log").write_bytes(b"log")
    (folder / "diff" / "report.txt").write_bytes(b"report")
    (folder / "strategy.json").write_bytes(b"{}")
    secret = tmp_path / "secret"
    secret.write_bytes(b"do not copy")
    (folder / "link").symlink_to(secret)
    (folder / "dirlink").symlink_to(tmp_path, target_is_directory=True)

    manifest = store_evidence(blobs, folder)

    assert manifest == {
        "build.log": _digest(b"log"),
        "diff/report.txt": _digest(b"report"),
        "strategy.json": _digest(b"{}"),
    }
    assert list(manifest) == sorted(manifest)
    assert all(blobs.read_bytes(d) for d in manifest.values())
    assert not blobs.has(_digest(b"do not copy"))


def test_store_evidence_needs_a_folder(blobs: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no evidence folder"):
        store_evidence(blobs, tmp_path / "missing")
