"""The source-check job on real PostgreSQL, real git and a local fixture index (no Docker).

A maintainer tags a local repository and publishes an sdist of the tagged tree; the
fleet has recorded the release. The worker's job traces it to the tag's commit, keeps
the evidence in the blob store, and records the verdict with its signed statement in
the transparency log. A release with no tag is ``no-source``; an index that answers
errors gives the check back for a retry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.worker import BlobEvidence
from rebuilder.attest.dsse import open_statement, parse_envelope
from rebuilder.attest.keys import KeyAlgorithm, Keyring, LocalKeySigner, generate_key
from rebuilder.index.model import IndexFile
from rebuilder.index.simple import SimpleIndex
from rebuilder.source.checks import SourceCheckVerdict
from rebuilder.source.clone import GitCloner
from rebuilder.source.fleet import RecordedReleaseTracer
from rebuilder.source.job import SourceAttestor, SourceCheckRunner, SourceRunnerConfig
from rebuilder.source.rebuild import FromGit
from rebuilder.source.rules import Regeneration
from rebuilder.source.store import PostgresSourceChecks
from rebuilder.source.trace import SourceConfig
from rebuilder.store.blobs import BlobStore
from rebuilder.store.db import open_pool
from rebuilder.store.migrate import migrate
from rebuilder.store.records import AttemptStatus
from rebuilder.store.repository import PostgresStore
from rebuilder.worker.runner import RetryLaterError
from tests.integration.source.gitrepo import GitRepo, pkg_info, project_files
from tests.support.dists import SdistMember, SdistSpec, write_sdist
from tests.support.index_server import FixtureIndex
from tests.support.postgres import fresh_database

ORIGIN = "test.example/source-jobs"
SETUP_CFG = b"[egg_info]\ntag_build = \ntag_date = 0\n\n"


def _generated(version: str) -> dict[str, bytes]:
    """The files setuptools generates when it makes the sdist of the tagged tree."""
    info = pkg_info(version=version)
    return {
        "PKG-INFO": info,
        "setup.cfg": SETUP_CFG,
        "src/demo.egg-info/PKG-INFO": info,
        "src/demo.egg-info/SOURCES.txt": b"pyproject.toml\nsrc/demo/__init__.py\n",
        "src/demo.egg-info/top_level.txt": b"demo\n",
    }


class RegeneratingBackend:
    """A test double of the sandboxed from-git rebuild (the real one needs Docker and is
    tested in tests/integration/source/test_tamper.py): it "regenerates" what setuptools
    writes for the tagged tree, so a genuine sdist is explained only by that regeneration."""

    def rebuild(self, *, sdist: IndexFile, **_: object) -> FromGit:
        return FromGit((), Regeneration(_generated(sdist.version), "setuptools (test double)", ""))


def _sdist(folder: Path, version: str) -> Path:
    """What setuptools puts in the sdist of the tagged tree: git's files and generated ones."""
    files = project_files(version=version)
    kept = {k: v for k, v in files.items() if not k.startswith((".github/", "tests/"))}
    members = {**kept, **_generated(version)}
    folder.mkdir(exist_ok=True)
    spec = SdistSpec("demo", version, [SdistMember(p, d) for p, d in sorted(members.items())])
    return write_sdist(folder / f"demo-{version}.tar.gz", spec)


@dataclass
class World:
    index: FixtureIndex
    store: PostgresStore
    checks: PostgresSourceChecks
    runner: SourceCheckRunner
    repo: GitRepo
    blobs: BlobStore
    key: LocalKeySigner
    work: Path

    def publish(self, version: str) -> int:
        """Publish the sdist of ``version`` and record the release as the scheduler does."""
        sdist = _sdist(self.work.parent / "published", version)
        self.index.add_path("demo", sdist, datetime.now(UTC))
        files = SimpleIndex(self.index.url, self.work.parent / "listing").refresh("demo")
        rows = self.store.record_release(
            "demo", version, [f for f in files if f.version == version]
        )
        check = self.checks.request_source_check(rows[0].release_id, 5)
        assert check is not None
        return check


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with FixtureIndex() as index, fresh_database() as url:
        migrate(url)
        pool = open_pool(url, max_size=4)
        repo = GitRepo(tmp_path / "upstream")
        key = generate_key(KeyAlgorithm.ED25519)
        checks = PostgresSourceChecks(pool)
        blobs = BlobStore(tmp_path / "blobs")
        tracer = RecordedReleaseTracer(
            index=SimpleIndex(index.url, tmp_path / "cache" / "index"),
            cloner=GitCloner(tmp_path / "cache" / "git"),
            # the metadata names the upstream forge; the operator's mirror maps it here
            config=SourceConfig(mirrors={"https://github.com/example/demo": repo.url}),
            work_root=tmp_path / "cache" / "work",
            git_rebuilder=RegeneratingBackend(),  # type: ignore[arg-type]
        )
        runner = SourceCheckRunner(
            store=checks,
            tracer=tracer,
            signer=SourceAttestor(key, "https://rebuilder.example/builders/test"),
            evidence=BlobEvidence(blobs),
            config=SourceRunnerConfig(
                worker="w1", log_origin=ORIGIN, work_root=tmp_path / "work", heartbeat_seconds=1
            ),
            presence=PostgresStore(pool),
        )
        try:
            yield World(
                index, PostgresStore(pool), checks, runner, repo, blobs, key, tmp_path / "work"
            )
        finally:
            pool.close()


def test_a_tagged_release_is_consistent_signed_and_logged(world: World) -> None:
    commit = world.repo.commit(project_files(version="1.2.3"), "release 1.2.3")
    world.repo.tag("v1.2.3")
    check = world.publish("1.2.3")
    world.runner.run(check)
    row = world.checks.source_check(check)
    assert row is not None and row.status is AttemptStatus.DONE
    assert row.verdict is SourceCheckVerdict.CONSISTENT, row.result
    assert (row.tag, row.commit) == ("v1.2.3", commit)
    assert row.repository == world.repo.url
    assert row.result is not None and row.result["evidence"] == "source"
    # the evidence is in the blob store, byte for byte
    assert row.evidence_manifest is not None and "report.json" in row.evidence_manifest
    report = world.blobs.read_bytes(row.evidence_manifest["report.json"])
    assert commit.encode() in report
    # the signed statement is in the log, about the published sdist
    (line,) = world.checks.source_bundle_lines(row.release_id)
    statement, _ = open_statement(parse_envelope(line), Keyring((world.key.public_key,)))
    sdist = world.index.file("demo-1.2.3.tar.gz")
    assert statement.check_subject(hashlib.sha256(sdist.data).hexdigest(), "demo-1.2.3.tar.gz")
    assert statement.predicate["verdict"] == "consistent"
    assert not list(world.work.iterdir())  # the work folder is cleaned up
    world.runner.run(check)  # a duplicate message: nothing more is logged
    assert len(world.checks.source_bundle_lines(row.release_id)) == 1


def test_a_release_with_no_tag_is_no_source(world: World) -> None:
    world.repo.commit(project_files(version="1.2.4"), "release 1.2.4, never tagged")
    world.repo.tag("v1.2.30")  # not 1.2.4, and not to be taken for it
    check = world.publish("1.2.4")
    world.runner.run(check)
    row = world.checks.source_check(check)
    assert row is not None and row.verdict is SourceCheckVerdict.NO_SOURCE
    assert row.commit is None and row.tag is None
    assert row.reason is not None and "1.2.4" in row.reason
    assert len(world.checks.source_bundle_lines(row.release_id)) == 1  # signed all the same


def test_an_index_in_trouble_gives_the_check_back(world: World) -> None:
    world.repo.commit(project_files(version="1.2.3"), "release 1.2.3")
    world.repo.tag("v1.2.3")
    check = world.publish("1.2.3")
    world.index.hostile.fail_status = 503
    world.index.hostile.fail_count = -1
    with pytest.raises(RetryLaterError):
        world.runner.run(check)
    row = world.checks.source_check(check)
    assert row is not None and row.status is AttemptStatus.QUEUED and row.verdict is None
    world.index.hostile.fail_count = 0
    world.runner.run(check)  # the retry
    row = world.checks.source_check(check)
    assert row is not None and row.verdict is SourceCheckVerdict.CONSISTENT and row.tries == 2
