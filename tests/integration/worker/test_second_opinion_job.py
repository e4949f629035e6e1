"""A fleet worker's rebuild attempt with the second opinion from git, end to end: real
PostgreSQL, real git, a local fixture index and the real Docker sandbox, wired as
`rebuilder worker` wires them (`REBUILDER_SECOND_OPINION=true`).

The maintainer built the wheel from the checkout, where a module lives that the sdist
leaves out: the sdist route mismatches, the worker traces the release to its tag, and
the wheel rebuilt from the tagged tree is recorded, signed and kept as the verdict.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.worker import BlobEvidence, production_judges
from rebuilder.archive.tarread import extract_sdist
from rebuilder.attest.keys import KeyAlgorithm, generate_key
from rebuilder.attest.publish import Attestor
from rebuilder.attest.statements import VSA_EXTENSION_KEY
from rebuilder.index.simple import SimpleIndex
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from rebuilder.settings import Settings
from rebuilder.store.blobs import BlobStore
from rebuilder.store.db import open_pool
from rebuilder.store.migrate import migrate
from rebuilder.store.records import AttemptStatus
from rebuilder.store.repository import PostgresStore
from rebuilder.verdict import Verdict
from rebuilder.worker.runner import AttemptRunner, RunnerConfig
from tests.integration.source.gitrepo import GitRepo, project_files
from tests.integration.source.test_check_source import SETUPTOOLS, _build
from tests.support.index_server import FixtureIndex
from tests.support.postgres import fresh_database
from tests.support.wheelhouse import load_into

pytestmark = pytest.mark.docker


@pytest.fixture
def index() -> Iterator[FixtureIndex]:
    with FixtureIndex() as served:
        load_into(served, only=[SETUPTOOLS])
        yield served


def test_a_worker_takes_the_git_tag_route_and_signs_the_rebuild_from_git(
    tmp_path: Path, index: FixtureIndex, sandbox_image: ImageRef, sandbox: DockerSandbox
) -> None:
    repo = GitRepo(tmp_path / "demo")
    files = project_files()
    files["src/demo/extra.py"] = b"EXTRA = 1\n"
    files["MANIFEST.in"] = b"exclude src/demo/extra.py\n"
    commit = repo.commit(files, "release 1.2.3")
    repo.tag("v1.2.3")
    tar = tmp_path / "tagged.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "--prefix=demo-1.2.3/", "-o", str(tar), "v1.2.3"],
        cwd=repo.path,
        check=True,
    )
    tree = extract_sdist(tar, tmp_path / "tagged")
    sdist = _build(sandbox, sandbox_image, tree, tmp_path / "sdist-out", "sdist")
    wheel = _build(sandbox, sandbox_image, tree, tmp_path / "whl", "wheel")
    for path in (sdist, wheel):
        index.add_file("demo", path.name, path.read_bytes(), datetime.now(UTC))
    settings = Settings(
        index_url=index.url,
        cache_dir=tmp_path / "cache",
        second_opinion=True,
        source_mirrors={"https://github.com/example/": f"{repo.url}/../"},
    )
    key = generate_key(KeyAlgorithm.ED25519)
    with fresh_database() as url:
        migrate(url)
        pool = open_pool(url, max_size=4)
        try:
            store = PostgresStore(pool)
            listed = SimpleIndex(index.url, tmp_path / "listing").refresh("demo")
            rows = store.record_release("demo", "1.2.3", list(listed))
            [row] = [r for r in rows if r.filename == wheel.name]
            attempt = store.request_attempt(row.id, 5)
            assert attempt is not None
            runner = AttemptRunner(
                store=store,
                judges=production_judges(settings),
                signer=Attestor(
                    signer=key, builder_id="https://rebuilder.example/b", root=tmp_path / "att"
                ),
                evidence=BlobEvidence(BlobStore(tmp_path / "blobs")),
                config=RunnerConfig(
                    worker="w1",
                    log_origin="test.example/git-route",
                    work_root=tmp_path / "work",
                    heartbeat_seconds=5,
                ),
            )
            runner.run(attempt)
            done = store.attempt(attempt)
            assert done is not None and done.status is AttemptStatus.DONE
            assert done.verdict is Verdict.REPRODUCIBLE, done
            assert done.evidence_manifest is not None
            assert "sdist-route/strategy.json" in done.evidence_manifest
            lines = store.bundle_lines(row.id)
        finally:
            pool.close()
    provenance, summary = (
        json.loads(base64.b64decode(json.loads(line)["payload"]))["predicate"] for line in lines
    )
    deps = provenance["buildDefinition"]["resolvedDependencies"]
    assert {"gitCommit": commit} in [d["digest"] for d in deps]
    assert summary["verificationResult"] == "PASSED"
    assert summary[VSA_EXTENSION_KEY]["source"] == "git"
    assert summary[VSA_EXTENSION_KEY]["git"]["digest"] == {"gitCommit": commit}
