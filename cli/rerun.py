"""``rebuilder rerun BUNDLE``: run a recorded rebuild again from its provenance alone.

Nothing is planned and no index page is read: the provenance's ``resolvedDependencies``
name every input by URI and sha256 (the sdist, each build-dependency wheel, the image by
id), its ``externalParameters`` every setting (environment, clock replay, modes, PEP 517
config settings). The inputs are fetched from the recorded URIs and checked against the
recorded digests; the build runs in the very same image; the result is the sha256 of
what it made against the provenance's subject.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rebuilder.archive.tarread import extract_sdist
from rebuilder.attest.bundle import read_bundle
from rebuilder.attest.dsse import open_statement
from rebuilder.attest.environment import ImageDescriber
from rebuilder.attest.errors import AttestationError
from rebuilder.attest.keys import Keyring
from rebuilder.attest.statements import (
    BUILD_TYPE,
    PROVENANCE_PREDICATE_TYPE,
    Statement,
    provenance_commit,
    strategy_from_provenance,
)
from rebuilder.errors import RebuilderError, SandboxError
from rebuilder.index.model import FileKind, IndexFile, PinnedFile
from rebuilder.plan.strategy import Strategy
from rebuilder.sandbox.model import BuildRequest, BuildStatus, Sandbox, SandboxLimits
from rebuilder.settings import Settings

logger = logging.getLogger(__name__)


class RerunError(RebuilderError):
    """The bundle holds no provenance that can be re-run."""


class Downloader(Protocol):
    """Fetches a file from its URL and checks it against its sha256 (the index client)."""

    def download(self, file: IndexFile) -> Path: ...


@dataclass(frozen=True)
class RerunResult:
    """What the re-run made, against what the provenance says was made."""

    filename: str
    recorded_sha256: str
    rebuilt_sha256: str | None
    status: str
    detail: str = ""

    @property
    def same(self) -> bool:
        return self.rebuilt_sha256 == self.recorded_sha256


def provenances(bundle: Path, keyring: Keyring) -> list[Statement]:
    """The signed provenance statements of ``bundle`` (every line must verify)."""
    found = []
    for line, envelope in enumerate(read_bundle(bundle), start=1):
        statement, _ = open_statement(envelope, keyring)
        if statement.predicate_type != PROVENANCE_PREDICATE_TYPE:
            continue
        build_type = statement.predicate["buildDefinition"]["buildType"]
        if build_type != BUILD_TYPE:
            logger.info("line %d: build type %s is not one this rebuilder runs", line, build_type)
            continue
        found.append(statement)
    if not found:
        raise RerunError(f"{bundle}: no provenance of a rebuild in it (a failed rebuild?)")
    return found


def rerun(
    provenance: Statement,
    *,
    downloader: Downloader,
    sandbox: Sandbox,
    work_root: Path,
    limits: SandboxLimits,
    image_present: Callable[[str], bool] = lambda _: True,
) -> RerunResult:
    """Build again what ``provenance`` records and hash what comes out."""
    commit = provenance_commit(provenance.predicate)
    if commit is not None:
        # The git-tag route: the input was the tagged tree, which rerun does not fetch.
        raise RerunError(
            f"the provenance records a rebuild from git commit {commit} (the git-tag route); "
            "rerun rebuilds from the published sdist only: run `rebuilder check "
            "--second-opinion` for the release to rebuild it from git"
        )
    strategy = strategy_from_provenance(provenance.predicate)
    subject = provenance.subjects[0]
    recorded = subject.digest.get("sha256", "")
    if not image_present(strategy.image):
        raise SandboxError(
            f"the image {strategy.image} is not on this host: load its `docker save` tarball "
            "or build it from the recipe the provenance records (images/sandbox, by digest), "
            "then run again"
        )
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rerun-", dir=work_root) as tmp:
        work = Path(tmp)
        sdist = downloader.download(_index_file(strategy, strategy.source, FileKind.SDIST))
        source_dir = extract_sdist(sdist, work / "src")
        wheelhouse = work / "wheelhouse"
        wheelhouse.mkdir()
        for req in strategy.requirements:
            if Path(req.file.filename).name != req.file.filename:
                raise RerunError(f"refusing a wheel with an unsafe filename {req.file.filename!r}")
            local = downloader.download(_index_file(strategy, req.file, FileKind.WHEEL))
            shutil.copyfile(local, wheelhouse / req.file.filename)
        out = work / "out"
        out.mkdir()
        outcome = sandbox.run(_request(strategy, source_dir, wheelhouse, out, limits))
        if outcome.status is not BuildStatus.OK or outcome.artifact is None:
            detail = outcome.detail or f"build ended with status {outcome.status.value}"
            return RerunResult(subject.name, recorded, None, outcome.status.value, detail)
        digest = hashlib.sha256(outcome.artifact.read_bytes()).hexdigest()
        return RerunResult(subject.name, recorded, digest, outcome.status.value)


def _index_file(strategy: Strategy, pinned: PinnedFile, kind: FileKind) -> IndexFile:
    return IndexFile(
        project=strategy.project,
        version=strategy.version,
        filename=pinned.filename,
        url=pinned.url,
        sha256=pinned.sha256,
        kind=kind,
        upload_time=None,
    )


def _request(
    strategy: Strategy, source_dir: Path, wheelhouse: Path, out: Path, limits: SandboxLimits
) -> BuildRequest:
    """The same request the pipeline makes from this strategy."""
    return BuildRequest(
        image=strategy.image,
        source_dir=source_dir,
        wheelhouse=wheelhouse,
        requirements=tuple(r.spec for r in strategy.requirements),
        distribution=strategy.distribution,
        env=strategy.env,
        output_dir=out,
        umask=strategy.archive.umask,
        build_clock=strategy.archive.build_clock,
        source_mtime=strategy.archive.source_mtime,
        source_mode_mask=strategy.archive.source_mode_mask,
        config_settings=dict(strategy.config_settings),
        clock_map=dict(strategy.archive.generated_times),
        limits=limits,
        labels={"org.pypi-rebuilder.file": strategy.target[:200], "org.pypi-cli.rerun": "1"},
    )


def image_describer(settings: Settings) -> ImageDescriber:
    """Describes sandbox images with Docker (cached per image id under the cache folder)."""
    from rebuilder.sandbox.image import describe_image  # noqa: PLC0415
    from rebuilder.sandbox.model import ImageDescription  # noqa: PLC0415

    def describe(image_id: str) -> ImageDescription | None:
        try:
            return describe_image(image_id, settings.cache_dir)
        except SandboxError as exc:
            logger.warning("the provenance will not describe the image: %s", exc.diagnostics())
            return None

    return describe


def docker_has_image(reference: str) -> bool:
    """Whether the local engine has ``reference`` (an image id or name)."""
    import docker  # noqa: PLC0415

    try:
        docker.from_env().images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.DockerException as exc:
        raise SandboxError(f"Docker is not reachable: {exc}") from None
    return True


def rerun_bundle(bundle: Path, keyring: Keyring, settings: Settings) -> list[RerunResult]:
    """``rebuilder rerun``: every provenance of ``bundle`` built again with Docker."""
    from cli.wiring import sandbox_limits  # noqa: PLC0415
    from rebuilder.index.simple import SimpleIndex  # noqa: PLC0415
    from rebuilder.sandbox.docker import DockerSandbox  # noqa: PLC0415

    # Only its hash-checked download is used: URLs come from the provenance, not a page.
    downloader = SimpleIndex(settings.index_url, settings.cache_dir / "index")
    results = []
    for provenance in provenances(bundle, keyring):
        try:
            results.append(
                rerun(
                    provenance,
                    downloader=downloader,
                    sandbox=DockerSandbox(),
                    work_root=settings.cache_dir / "work",
                    limits=sandbox_limits(settings),
                    image_present=docker_has_image,
                )
            )
        except AttestationError as exc:
            raise RerunError(f"{bundle}: {exc.diagnostics()}") from exc
    return results
