"""`rebuilder rerun`: a build made again from the provenance alone (fakes for the
downloader and the sandbox; the real Docker run is in tests/integration/test_check.py)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.rerun import RerunError, provenances, rerun
from rebuilder.attest.bundle import dumps_bundle, sign_bundle, statements_for
from rebuilder.attest.errors import AttestationError
from rebuilder.attest.keys import Keyring, generate_key
from rebuilder.attest.statements import BuildRun, Verification, validate_statement
from rebuilder.errors import SandboxError
from rebuilder.index.model import BuildRequirement, IndexFile, PinnedFile
from rebuilder.plan.strategy import ArchiveInputs, BackendPin, Strategy
from rebuilder.sandbox.model import BuildOutcome, BuildRequest, BuildStatus, SandboxLimits
from rebuilder.verdict import FileResult, Verdict

WHEEL = "demo-1.0-py3-none-any.whl"
BUILT = b"the wheel the build makes"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _sdist() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"[build-system]\nrequires = ['setuptools']\n"
        info = tarfile.TarInfo("demo-1.0/pyproject.toml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


SDIST = _sdist()
SETUPTOOLS = b"setuptools wheel bytes"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class FakeDownloader:
    """Serves bytes by URL; checks the sha256 like the index client does."""

    root: Path
    files: dict[str, bytes]
    fetched: list[str] = field(default_factory=list)

    def download(self, file: IndexFile) -> Path:
        data = self.files[file.url]
        assert sha(data) == file.sha256
        self.fetched.append(file.url)
        path = self.root / file.filename
        path.write_bytes(data)
        return path


@dataclass
class FakeSandbox:
    makes: bytes = BUILT
    requests: list[BuildRequest] = field(default_factory=list)

    def run(self, request: BuildRequest) -> BuildOutcome:
        self.requests.append(request)
        assert (request.source_dir / "pyproject.toml").is_file()
        artifact = request.output_dir / WHEEL
        artifact.write_bytes(self.makes)
        return BuildOutcome(BuildStatus.OK, artifact, "log")


@pytest.fixture
def strategy() -> Strategy:
    return Strategy(
        project="demo",
        version="1.0",
        target=WHEEL,
        distribution="wheel",
        source=PinnedFile("demo-1.0.tar.gz", "https://files.example/demo-1.0.tar.gz", sha(SDIST)),
        backend=BackendPin("setuptools (75.0.0)", "setuptools", "75.0.0"),
        requirements=(
            BuildRequirement(
                "setuptools",
                "75.0.0",
                PinnedFile(
                    "setuptools-75.0.0-py3-none-any.whl",
                    "https://files.example/st.whl",
                    sha(SETUPTOOLS),
                ),
            ),
        ),
        archive=ArchiveInputs(
            source_date_epoch=None,
            build_clock=1700000000,
            tz="Europe/Berlin",
            generated_times=(("demo/_version.py", 1700000001),),
        ),
        image="sha256:" + "ab" * 32,
        image_digest="sha256:" + "ab" * 32,
        python_version="3.11",
        resolved_as_of=None,
        config_settings=(("--build-option", ("--quiet",)),),
    )


def _bundle(tmp_path: Path, strategy: Strategy, rebuilt: bytes = BUILT) -> tuple[Path, Keyring]:
    key = generate_key()
    result = FileResult(
        "demo", "1.0", WHEEL, Verdict.REPRODUCIBLE, sha(rebuilt), rebuilt_sha256=sha(rebuilt)
    )
    run = BuildRun("https://rebuilder.example/op", "inv", NOW, NOW)
    statements = statements_for(result, strategy, run, Verification("https://r.example", NOW))
    path = tmp_path / "rebuild.intoto.jsonl"
    path.write_text(dumps_bundle(sign_bundle(statements, key)))
    return path, Keyring.of([key.public_key])


def _downloader(tmp_path: Path) -> FakeDownloader:
    (tmp_path / "dl").mkdir()
    return FakeDownloader(
        tmp_path / "dl",
        {
            "https://files.example/demo-1.0.tar.gz": SDIST,
            "https://files.example/st.whl": SETUPTOOLS,
        },
    )


def test_rerun_builds_from_the_provenance_alone_and_compares_the_digest(
    tmp_path: Path, strategy: Strategy
) -> None:
    bundle, keyring = _bundle(tmp_path, strategy)
    (provenance,) = provenances(bundle, keyring)
    downloader, sandbox = _downloader(tmp_path), FakeSandbox()
    result = rerun(
        provenance,
        downloader=downloader,
        sandbox=sandbox,
        work_root=tmp_path / "work",
        limits=SandboxLimits(),
    )
    assert result.same
    assert result.rebuilt_sha256 == sha(BUILT)
    assert sorted(downloader.fetched) == sorted(downloader.files)
    (request,) = sandbox.requests
    assert request.image == strategy.image
    assert request.requirements == ("setuptools==75.0.0",)
    assert dict(request.env) == strategy.env
    assert request.build_clock == 1700000000
    assert dict(request.clock_map) == {"demo/_version.py": 1700000001}
    assert dict(request.config_settings) == {"--build-option": ("--quiet",)}


def test_a_different_build_output_is_reported_different(tmp_path: Path, strategy: Strategy) -> None:
    bundle, keyring = _bundle(tmp_path, strategy)
    (provenance,) = provenances(bundle, keyring)
    result = rerun(
        provenance,
        downloader=_downloader(tmp_path),
        sandbox=FakeSandbox(makes=b"something else"),
        work_root=tmp_path / "work",
        limits=SandboxLimits(),
    )
    assert not result.same
    assert result.recorded_sha256 == sha(BUILT)


def test_a_missing_image_says_how_to_get_it(tmp_path: Path, strategy: Strategy) -> None:
    bundle, keyring = _bundle(tmp_path, strategy)
    (provenance,) = provenances(bundle, keyring)
    with pytest.raises(SandboxError, match="docker save"):
        rerun(
            provenance,
            downloader=_downloader(tmp_path),
            sandbox=FakeSandbox(),
            work_root=tmp_path / "work",
            limits=SandboxLimits(),
            image_present=lambda _: False,
        )


def test_a_provenance_of_the_git_tag_route_is_not_rebuilt_from_the_sdist(
    tmp_path: Path, strategy: Strategy
) -> None:
    key = generate_key()
    opinion = {"route": "git", "repository": "https://forge.invalid/demo.git",
               "tag": "v1.0", "commit": "c" * 40, "built_from": "tree"}  # fmt: skip
    result = FileResult("demo", "1.0", WHEEL, Verdict.REPRODUCIBLE, sha(BUILT),
                        rebuilt_sha256=sha(BUILT), second_opinion=opinion)  # fmt: skip
    run = BuildRun("https://rebuilder.example/op", "inv", NOW, NOW)
    statements = statements_for(result, strategy, run, Verification("https://r.example", NOW))
    path = tmp_path / "rebuild.intoto.jsonl"
    path.write_text(dumps_bundle(sign_bundle(statements, key)))
    (provenance,) = provenances(path, Keyring.of([key.public_key]))
    sandbox = FakeSandbox()
    with pytest.raises(RerunError, match=r"git commit c{40} \(the git-tag route\)"):
        rerun(provenance, downloader=_downloader(tmp_path), sandbox=sandbox,
              work_root=tmp_path / "work", limits=SandboxLimits())  # fmt: skip
    assert sandbox.requests == []


def test_a_bundle_without_provenance_cannot_be_rerun(tmp_path: Path) -> None:
    key = generate_key()
    failed = FileResult("demo", "1.0", WHEEL, Verdict.FAILED, sha(b"x"), reason="crashed")
    statements = statements_for(failed, None, None, Verification("https://r.example", NOW))
    path = tmp_path / "rebuild.intoto.jsonl"
    path.write_text(dumps_bundle(sign_bundle(statements, key)))
    with pytest.raises(RerunError, match="no provenance"):
        provenances(path, Keyring.of([key.public_key]))


def test_a_provenance_missing_an_input_is_refused(tmp_path: Path, strategy: Strategy) -> None:
    bundle, keyring = _bundle(tmp_path, strategy)
    (provenance,) = provenances(bundle, keyring)
    predicate = dict(provenance.predicate)
    definition = dict(predicate["buildDefinition"])
    definition["resolvedDependencies"] = [
        d for d in definition["resolvedDependencies"] if d["annotations"]["role"] != "source"
    ]
    predicate["buildDefinition"] = definition
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": WHEEL, "digest": {"sha256": sha(BUILT)}}],
        "predicateType": provenance.predicate_type,
        "predicate": predicate,
    }
    with pytest.raises(AttestationError, match="exactly one source"):
        rerun(
            validate_statement(statement),
            downloader=_downloader(tmp_path),
            sandbox=FakeSandbox(),
            work_root=tmp_path / "work",
            limits=SandboxLimits(),
        )
