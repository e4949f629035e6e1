"""Rebuild a release from its git checkout: the sdist, then the pure wheel from it.

The strategy is the one the core infers for the published wheel (same backend pin, same
build requirements resolved as of the upload time, same clock, umask and environment);
only the source differs: ``git archive`` of the tagged commit instead of the published
sdist. The tree has no ``.git``, so tools that read the version from git are told it
(``SETUPTOOLS_SCM_PRETEND_VERSION``). The built sdist is judged against the published one
(identical bytes: ``reproducible``; the same files with the same contents:
``equivalent`` after ``tar-metadata@1``; else ``mismatch``), and the wheel built from it
against the published wheel exactly as the core does.

A release with no pure wheel (only platform wheels, or none) has no wheel to infer the
strategy from: the sdist alone is rebuilt, planned from the published sdist's own
``[build-system]`` (setuptools' legacy default when it declares none), its requirements
resolved as of the sdist's upload time, on the commit's clock. Its regenerated files are
there for the rules all the same; no wheel is judged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rebuilder.archive.tarread import extract_sdist
from rebuilder.archive.wheelfile import read_wheel_info
from rebuilder.archive.zipread import ZipArchive, read_zip
from rebuilder.compare.judge import Comparison, compare_files
from rebuilder.errors import ArchiveError, RebuilderError
from rebuilder.evidence import Evidence
from rebuilder.index.model import Index, IndexFile, Resolver
from rebuilder.plan.interpreter import Interpreter, choose_interpreter
from rebuilder.plan.planner import ImageChoice, plan_sdist, plan_wheel
from rebuilder.plan.sourcedeps import SandboxSourceBuilder
from rebuilder.plan.strategy import Strategy
from rebuilder.sandbox.model import BuildOutcome, BuildRequest, BuildStatus, Sandbox, SandboxLimits
from rebuilder.source.checkout import dress_like_checkout
from rebuilder.source.compare import sdist_files
from rebuilder.source.result import GitBuild
from rebuilder.source.rules import Regeneration
from rebuilder.workdirs import owned_dir

logger = logging.getLogger(__name__)

TAR_METADATA_STABILIZER = "tar-metadata@1"
_ROUNDS = 3
_REGENERATED_BYTES = 1024**2  # generated files larger than this are not kept to compare


@dataclass(frozen=True)
class FromGit:
    """What rebuilding from git gave: the judged builds and the regenerated files."""

    builds: tuple[GitBuild, ...]
    regeneration: Regeneration


def not_rebuilt(builds: tuple[GitBuild, ...]) -> FromGit:
    """No sdist was built: the rules get the reason of the (first) failed build."""
    why = next((b.reason for b in builds if b.reason), None) or "the sdist was not rebuilt"
    return FromGit(builds, Regeneration(why=f"rebuilding the sdist from git: {why}"))


def regenerated_files(tree: Path) -> dict[str, bytes]:
    """The files of an extracted sdist up to a size (those the rules may compare)."""
    return {
        path: file.read_bytes()
        for path, file in sdist_files(tree).items()
        if file.stat().st_size <= _REGENERATED_BYTES
    }


def pin_gzip_time(path: Path, when: int) -> None:
    """Give a gzip file's header ``when`` as its time (the backend writes "now" there).

    The header's time is not covered by the checksum: the archive's content is unchanged.
    """
    with path.open("r+b") as f:
        head = f.read(8)
        if len(head) == 8 and head[:3] == b"\x1f\x8b\x08":
            f.seek(4)
            f.write(when.to_bytes(4, "little"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def judge_sdist(published: Path, rebuilt: Path, work: Path, filename: str) -> GitBuild:
    """The rebuilt sdist against the published ``filename`` (see the module documentation)."""
    upstream, ours = _sha256(published), _sha256(rebuilt)
    if upstream == ours:
        return GitBuild(filename, "reproducible", ours)
    try:
        a = extract_sdist(published, work / "published")
        b = extract_sdist(rebuilt, work / "rebuilt")
    except ArchiveError as exc:
        return GitBuild(filename, "failed", ours, reason=exc.diagnostics())
    files_a = {p: _sha256(f) for p, f in sdist_files(a).items()}
    files_b = {p: _sha256(f) for p, f in sdist_files(b).items()}
    differences = sorted(
        f"{'added' if p not in files_b else 'removed' if p not in files_a else 'content'}:{p}"
        for p in files_a.keys() | files_b.keys()
        if files_a.get(p) != files_b.get(p)
    )
    if not differences and a.name == b.name:
        return GitBuild(filename, "equivalent", ours, (TAR_METADATA_STABILIZER,))
    return GitBuild(filename, "mismatch", ours, differences=tuple(differences))


_GOOD = frozenset({"reproducible", "equivalent"})


def _wheel_build(filename: str, comparison: Comparison, built_from: str = "sdist") -> GitBuild:
    return GitBuild(
        filename,
        comparison.verdict.value,
        comparison.rebuilt_sha256,
        tuple(str(s) for s in comparison.stabilizers),
        tuple(f"{d.kind.value}:{d.path}" for d in comparison.differences),
        built_from=built_from,
    )


class GitRebuilder:
    """Builds the sdist and the pure wheel of a release from a git tree, in the sandbox."""

    def __init__(
        self,
        *,
        index: Index,
        resolver: Resolver,
        sandbox: Sandbox,
        image: Callable[[], ImageChoice],
        work_root: Path,
        limits: SandboxLimits,
        interpreter_image: Callable[[Interpreter], ImageChoice] | None = None,
    ) -> None:
        # None: the one configured image (no interpreter matrix), as in the core
        self._interpreter_image = interpreter_image
        self._index = index
        self._resolver = resolver
        self._sandbox = sandbox
        self._image = image
        self._work_root = work_root
        self._limits = limits
        # build requirements with no wheel: built from their sdist, as in the core
        self._source_builder = SandboxSourceBuilder(
            index=index, resolver=resolver, sandbox=sandbox, limits=limits
        )

    def rebuild(
        self,
        *,
        git_tar: Path,
        subdir: str,
        sdist: IndexFile,
        sdist_path: Path,
        wheels: Sequence[IndexFile],
        evidence: Path,
        commit_time: int | None = None,
    ) -> FromGit:
        """Build from ``git_tar`` (``subdir`` in it); one result for the sdist and the wheel.

        ``commit_time`` (the tagged commit's, seconds) is the clock of the sdist build.
        Without a pure wheel, the sdist alone is built, planned from its own
        ``[build-system]`` (:func:`plan_sdist`): its regenerated files are still there
        for the rules, and no wheel is judged.
        """
        wheel = wheels[0] if wheels else None
        with owned_dir(self._work_root, "from-git-") as work:
            try:
                return self._rebuild(
                    work, git_tar, subdir, (sdist, sdist_path), wheel, evidence, commit_time
                )
            except RebuilderError as exc:
                logger.info("from-git rebuild of %s: %s", sdist.filename, exc.diagnostics())
                return not_rebuilt((GitBuild(sdist.filename, "failed", reason=exc.diagnostics()),))

    def _rebuild(  # noqa: PLR0917 - one private step of rebuild()
        self,
        work: Path,
        git_tar: Path,
        subdir: str,
        published: tuple[IndexFile, Path],
        wheel: IndexFile | None,
        evidence: Path,
        commit_time: int | None,
    ) -> FromGit:
        sdist, sdist_path = published
        try:
            top = extract_sdist(git_tar, work / "git", directory_links=True)
            published_src = extract_sdist(sdist_path, work / "published-src")
        except ArchiveError as exc:
            reason = f"unusable tree: {exc.diagnostics()}"
            return not_rebuilt((GitBuild(sdist.filename, "failed", reason=reason),))
        tree = top / subdir if subdir else top
        plan = self._planner(work, sdist, published_src, wheel)
        extra: tuple[str, ...] = ()
        outcome: BuildOutcome | None = None
        strategy: Strategy | None = None
        for _ in range(_ROUNDS):
            strategy = plan(extra)
            outcome = self._build_sdist(strategy, tree, work / "sdist-out", commit_time)
            if outcome.status is not BuildStatus.MISSING_REQUIREMENTS:
                break
            new = tuple(r for r in outcome.missing if r not in extra)
            if not new:
                break
            extra = (*extra, *new)
        assert outcome is not None and strategy is not None  # noqa: S101 - _ROUNDS > 0
        folder = evidence / "from-git"
        folder.mkdir(parents=True, exist_ok=True)
        Evidence(folder).write_strategy(strategy)
        (folder / "sdist-build.log").write_text(outcome.log, encoding="utf-8", errors="replace")
        if outcome.status is not BuildStatus.OK or outcome.artifact is None:
            reason = outcome.detail or f"sdist build ended {outcome.status.value}"
            return not_rebuilt((GitBuild(sdist.filename, "failed", reason=reason),))
        if commit_time is not None:
            pin_gzip_time(outcome.artifact, commit_time)
        built_sdist = Evidence(folder).keep_rebuilt(outcome.artifact)
        sdist_result = judge_sdist(sdist_path, built_sdist, work / "judge", sdist.filename)
        try:
            wheel_src = extract_sdist(built_sdist, work / "built-src")
        except ArchiveError as exc:
            reason = exc.diagnostics()
            failed = () if wheel is None else (GitBuild(wheel.filename, "failed", reason=reason),)
            return FromGit(
                (sdist_result, *failed),
                Regeneration(why=f"rebuilding the sdist from git: {reason}"),
            )
        pins = ", ".join(r.spec for r in strategy.requirements) or "no build requirements"
        clock = f", SOURCE_DATE_EPOCH={commit_time}" if commit_time is not None else ""
        regeneration = Regeneration(
            regenerated_files(wheel_src), f"sdist rebuilt from git with {pins}{clock}", ""
        )
        if wheel is None:  # nothing published to judge a wheel against
            return FromGit((sdist_result,), regeneration)
        # The regenerated files are read: now the wheel's inputs take the modes and times
        # of the maintainer's checkout, as far as the published files show them.
        for source in (wheel_src, tree):
            dress_like_checkout(
                source, published_src, umask=strategy.archive.umask,
                entry_times=strategy.archive.generated_times,
            )  # fmt: skip
        wheel_result = self._wheel(strategy, wheel, (wheel_src, tree), work, folder)
        return FromGit((sdist_result, wheel_result), regeneration)

    def _wheel(
        self,
        strategy: Strategy,
        wheel: IndexFile,
        sources: tuple[Path, Path],
        work: Path,
        folder: Path,
    ) -> GitBuild:
        """The wheel built from the sdist built from git (or from the tree), judged."""
        wheel_src, tree = sources
        published_wheel = self._index.download(wheel)
        outcome = self._build(strategy, wheel_src, work / "wheel-out", "wheel")
        (folder / "wheel-build.log").write_text(outcome.log, encoding="utf-8", errors="replace")
        if outcome.status is not BuildStatus.OK or outcome.artifact is None:
            reason = outcome.detail or f"wheel build ended {outcome.status.value}"
            return GitBuild(wheel.filename, "failed", reason=reason)
        rebuilt = Evidence(folder).keep_rebuilt(outcome.artifact)
        from_sdist = _wheel_build(wheel.filename, compare_files(published_wheel, rebuilt))
        if from_sdist.verdict != "mismatch":
            return from_sdist
        # The wheel may have been built from a checkout, which holds files the sdist does
        # not (modules, package data, folders a package finder picks up). Build the wheel
        # from the tagged tree itself, and keep that build if it matches (docs/diagnosis.md,
        # the git-tag route).
        from_tree = self._tree_wheel(strategy, tree, work, folder, published_wheel, wheel)
        return from_tree if from_tree is not None and from_tree.verdict in _GOOD else from_sdist

    def _planner(
        self, work: Path, sdist: IndexFile, published_src: Path, wheel: IndexFile | None
    ) -> Callable[[tuple[str, ...]], Strategy]:
        """Plans the build given the requirements the backend asked for dynamically.

        From the published pure wheel when there is one (the core's inference), else
        from the sdist's own ``[build-system]``.
        """
        wheelhouse = work / "wheelhouse"
        if wheel is None:
            return lambda extra: plan_sdist(
                sdist=sdist, source_dir=published_src, image=self._image(),
                resolver=self._resolver, index=self._index, wheelhouse=wheelhouse,
                extra_requires=extra, source_builder=self._source_builder,
            )  # fmt: skip
        archive = read_zip(self._index.download(wheel))
        info = read_wheel_info(archive)
        image, why = self._wheel_image(archive, wheel)
        return lambda extra: plan_wheel(
            wheel=wheel, sdist=sdist, generator=info.generator, tags=info.tags,
            entries=archive.entries, source_dir=published_src, image=image,
            resolver=self._resolver, index=self._index, wheelhouse=wheelhouse,
            extra_requires=extra, interpreter_reason=why,
            source_builder=self._source_builder,
        )  # fmt: skip

    def _wheel_image(self, archive: ZipArchive, wheel: IndexFile) -> tuple[ImageChoice, str]:
        """The interpreter the core chooses for the published wheel, and why.

        Its traces (namespace ``.pth`` names, versioned scripts, the upload date) say
        the same about a build from git; an image that cannot be made falls back to the
        default one, and the strategy says so.
        """
        default = self._image()
        if self._interpreter_image is None:
            return default, "the configured sandbox image"
        choice = choose_interpreter(archive.entries, wheel.upload_time)
        if choice.interpreter.version == default.python_version:
            return default, choice.note
        try:
            return self._interpreter_image(choice.interpreter), choice.note
        except RebuilderError as exc:
            logger.warning("no image for Python %s: %s", choice.interpreter.version,
                           exc.diagnostics())  # fmt: skip
            why = f"{choice.note}; but its image could not be made: the default image"
            return default, why

    def _tree_wheel(  # noqa: PLR0917 - one private step of _rebuild()
        self,
        strategy: Strategy,
        tree: Path,
        work: Path,
        folder: Path,
        published_wheel: Path,
        wheel: IndexFile,
    ) -> GitBuild | None:
        """The wheel built from the tagged tree itself, judged; None if it did not build."""
        outcome = self._build(strategy, tree, work / "tree-wheel-out", "wheel", checkout=True)
        log = folder / "tree-wheel-build.log"
        log.write_text(outcome.log, encoding="utf-8", errors="replace")
        if outcome.status is not BuildStatus.OK or outcome.artifact is None:
            return None
        (folder / "tree").mkdir(exist_ok=True)
        built = Evidence(folder / "tree").keep_rebuilt(outcome.artifact)
        return _wheel_build(wheel.filename, compare_files(published_wheel, built), "tree")

    def _build_sdist(
        self, strategy: Strategy, source: Path, out: Path, commit_time: int | None
    ) -> BuildOutcome:
        """The sdist, on the commit's clock (deterministic: see the module documentation)."""
        if commit_time is None:
            return self._build(strategy, source, out, "sdist")
        out.mkdir(parents=True, exist_ok=True)
        env = {**strategy.env, "SOURCE_DATE_EPOCH": str(commit_time)}
        env.setdefault("SETUPTOOLS_SCM_PRETEND_VERSION", strategy.version)
        request = BuildRequest(
            image=strategy.image,
            source_dir=source,
            wheelhouse=out.parent / "wheelhouse",
            requirements=strategy.install_specs,
            distribution="sdist",
            env=env,
            output_dir=out,
            umask=strategy.archive.umask,
            build_clock=commit_time,
            source_mtime=commit_time,
            limits=self._limits,
            labels={"org.pypi-rebuilder.file": f"from-git:{strategy.target}"[:200]},
        )
        return self._sandbox.run(request)

    def _build(
        self,
        strategy: Strategy,
        source: Path,
        out: Path,
        distribution: str,
        *,
        checkout: bool = False,
    ) -> BuildOutcome:
        """Build ``distribution`` from ``source``; a wheel with the strategy's replayed inputs.

        ``checkout``: ``source`` is the tagged tree, not an extracted sdist, so the modes
        that extracting an sdist clears (``source_mode_mask``) stay as the checkout had them.
        """
        out.mkdir(parents=True, exist_ok=True)
        env = dict(strategy.env)
        env.setdefault("SETUPTOOLS_SCM_PRETEND_VERSION", strategy.version)
        wheel_only = distribution == "wheel"
        request = BuildRequest(
            image=strategy.image,
            source_dir=source,
            wheelhouse=out.parent / "wheelhouse",
            requirements=strategy.install_specs,
            distribution=distribution,
            env=env,
            output_dir=out,
            umask=strategy.archive.umask,
            build_clock=strategy.archive.build_clock if wheel_only else None,
            source_mtime=strategy.archive.source_mtime if wheel_only else None,
            source_mode_mask=0 if checkout or not wheel_only else strategy.archive.source_mode_mask,
            config_settings=dict(strategy.config_settings) if wheel_only else {},
            clock_map=dict(strategy.archive.generated_times) if wheel_only else {},
            limits=self._limits,
            labels={"org.pypi-rebuilder.file": f"from-git:{strategy.target}"[:200]},
        )
        return self._sandbox.run(request)
