"""Source tracing in the fleet for real: scheduler and worker processes on PostgreSQL,
RabbitMQ and Docker, a local git repository reached through the operator's override
setting, and a local fixture index.

The maintainer tags 1.2.3, builds its sdist from the tagged tree and the wheel from that
sdist, and publishes both; 1.3.0 is built from a commit no tag names. The fleet must
record 1.2.3 ``consistent`` with the tag's commit (and its wheel rebuilt from git bit for
bit), 1.3.0 ``no-source``, each with its signed statement in the transparency log.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from rebuilder.archive.tarread import extract_sdist
from rebuilder.attest.dsse import open_statement, parse_envelope
from rebuilder.attest.keys import Keyring
from rebuilder.attest.publish import load_or_create_key
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from rebuilder.sandbox.model import BuildRequest, BuildStatus
from rebuilder.source.checks import SourceCheckVerdict, SourceVerdictRow
from rebuilder.source.store import PostgresSourceChecks
from rebuilder.store.repository import PostgresStore
from rebuilder.verdict import Verdict
from tests.integration.fleet.conftest import FleetSetup
from tests.integration.source.gitrepo import GitRepo, project_files
from tests.support.fleet import Fleet, wait_for
from tests.support.index_server import FixtureIndex
from tests.support.releases import SETUPTOOLS
from tests.support.wheelhouse import require

pytestmark = pytest.mark.docker

ENV = {"TZ": "UTC", "SOURCE_DATE_EPOCH": "1700000000"}


@dataclass
class Setup:
    env: dict[str, str]
    index: FixtureIndex
    store: PostgresStore
    checks: PostgresSourceChecks
    repo: GitRepo


@pytest.fixture
def setup(fleet_setup: FleetSetup) -> Setup:
    repo = GitRepo(fleet_setup.root / "upstream" / "demo")
    env = {
        **fleet_setup.env,
        "REBUILDER_CLAIM_TIMEOUT": "30",
        "REBUILDER_BUILD_TIMEOUT": "120",
        # the operator points the project at its repository (here a local one)
        "REBUILDER_SOURCE_OVERRIDES": json.dumps({"demo": repo.url}),
    }
    return Setup(
        env,
        fleet_setup.index,
        fleet_setup.store,
        PostgresSourceChecks(fleet_setup.pool),
        repo,
    )


def _build(
    sandbox: DockerSandbox, image: ImageRef, source: Path, out: Path, distribution: str
) -> Path:
    wheelhouse = out.parent / "wheelhouse"
    wheelhouse.mkdir(exist_ok=True)
    wheels = require()
    name = next(n for n in wheels if n.startswith("setuptools-84.2.1"))
    (wheelhouse / name).write_bytes(wheels[name].read_bytes())
    out.mkdir(parents=True)
    outcome = sandbox.run(
        BuildRequest(
            image=image.reference,
            source_dir=source,
            wheelhouse=wheelhouse,
            requirements=(SETUPTOOLS,),
            distribution=distribution,
            env=ENV,
            output_dir=out,
        )
    )
    assert outcome.status is BuildStatus.OK, outcome.log
    assert outcome.artifact is not None
    return outcome.artifact


def _release(
    tmp: Path, setup: Setup, sandbox: DockerSandbox, image: ImageRef, version: str, rev: str
) -> dict[str, bytes]:
    """The usual `python -m build` of the tree at ``rev``, published; name -> bytes."""
    work = tmp / f"maintainer-{version}"
    work.mkdir()
    tar = work / "tree.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", f"--prefix=demo-{version}/", "-o", str(tar), rev],
        cwd=setup.repo.path,
        check=True,
    )
    tree = extract_sdist(tar, work / "tree")
    sdist = _build(sandbox, image, tree, work / "sdist", "sdist")
    wheel = _build(sandbox, image, extract_sdist(sdist, work / "src"), work / "wheel", "wheel")
    now = datetime.now(UTC)
    published = {}
    for path in (sdist, wheel):
        setup.index.add_file("demo", path.name, path.read_bytes(), now)
        published[path.name] = path.read_bytes()
    return published


def _source_verdicts(checks: PostgresSourceChecks) -> dict[str, SourceVerdictRow]:
    return {row.version: row for row in checks.latest_source_checks(project="demo")}


def test_the_fleet_traces_every_release_to_its_source(
    tmp_path: Path,
    setup: Setup,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    commit = setup.repo.commit(project_files(version="1.2.3"), "release 1.2.3")
    setup.repo.tag("v1.2.3")
    tagged = _release(tmp_path, setup, sandbox, sandbox_image, "1.2.3", "v1.2.3")
    setup.repo.commit(project_files(version="1.3.0"), "1.3.0, released but never tagged")
    _release(tmp_path, setup, sandbox, sandbox_image, "1.3.0", "HEAD")

    logs = tmp_path / "logs"
    logs.mkdir()
    fleet = Fleet(setup.env, logs)
    try:
        fleet.start("scheduler", "scheduler")
        fleet.start("worker-1", "worker")
        setup.store.watch_add(["demo"])

        found = wait_for(
            "the source checks of demo 1.2.3 and 1.3.0",
            lambda: (
                _source_verdicts(setup.checks) if len(_source_verdicts(setup.checks)) == 2 else None
            ),
            timeout=420,
        )
        assert {v: r.verdict for v, r in found.items()} == {
            "1.2.3": SourceCheckVerdict.CONSISTENT,
            "1.3.0": SourceCheckVerdict.NO_SOURCE,
        }, fleet.log_text()

        # 1. the tagged release: its commit, and its wheel rebuilt from git bit for bit
        consistent = found["1.2.3"]
        assert (consistent.tag, consistent.commit) == ("v1.2.3", commit)
        assert consistent.repository == setup.repo.url
        row = setup.checks.source_check(consistent.check_id)
        assert row is not None and row.result is not None and row.evidence_manifest
        assert "report.json" in row.evidence_manifest
        wheel_name = next(n for n in tagged if n.endswith(".whl"))
        from_git = {b["filename"]: b for b in row.result["from_git"]}
        assert from_git[wheel_name]["verdict"] == "reproducible", from_git
        assert (
            from_git[wheel_name]["rebuilt_sha256"] == hashlib.sha256(tagged[wheel_name]).hexdigest()
        )

        # 2. the untagged release: no-source, with what was looked for
        untagged = found["1.3.0"]
        assert untagged.commit is None and untagged.reason and "1.3.0" in untagged.reason

        # 3. both verdicts are signed and in the log; the consistent one names the commit
        public = load_or_create_key(Path(setup.env["REBUILDER_SIGNING_KEY"])).public_key
        keyring = Keyring((public,))
        sdist_name = next(n for n in tagged if n.endswith(".tar.gz"))
        lines = setup.checks.source_bundle_lines(consistent.release_id)
        statements = [open_statement(parse_envelope(line), keyring)[0] for line in lines]
        assert statements[0].check_subject(hashlib.sha256(tagged[sdist_name]).hexdigest())
        assert statements[0].predicate["verdict"] == "consistent"
        assert commit in json.dumps(statements[0].predicate["source"])
        assert len(statements) == 2  # and the provenance of the wheel rebuilt from git
        (line,) = setup.checks.source_bundle_lines(untagged.release_id)
        assert open_statement(parse_envelope(line), keyring)[0].predicate["verdict"] == "no-source"

        # 4. the wheels themselves were rebuilt as usual
        wheels = {
            r.filename: r.verdict
            for r in wait_for(
                "both wheel verdicts",
                lambda: (
                    [
                        r
                        for r in setup.store.latest_verdicts(project="demo")
                        if r.filename.endswith(".whl")
                    ]
                    if len(setup.store.latest_verdicts(project="demo")) == 2
                    else None
                ),
                timeout=240,
            )
        }
        assert set(wheels.values()) == {Verdict.REPRODUCIBLE}, fleet.log_text()

        # 5. every logged envelope belongs to exactly one recorded outcome
        with setup.store.connection() as conn:
            counted = conn.execute(
                "SELECT (SELECT count(*) FROM log_entries), "
                "(SELECT count(*) FROM attestations) + (SELECT count(*) FROM source_attestations), "
                "(SELECT count(*) FROM source_checks)"
            ).fetchone()
        assert counted is not None and counted[0] == counted[1]
        assert counted[2] == 2  # one check per release, however many ticks ran

        # 6. `rebuilder status` counts them
        monkeypatch.setenv("REBUILDER_DATABASE_URL", setup.env["REBUILDER_DATABASE_URL"])
        capsys.readouterr()
        assert main(["status"]) == 0
        out = capsys.readouterr().out
        assert "source checks: consistent 1, inconsistent 0, no-source 1, failed 0" in out
    finally:
        codes = fleet.stop_all()
    assert all(code == 0 for code in codes.values()), (codes, fleet.log_text())
