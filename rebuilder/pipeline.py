"""Check one release: fetch, plan, build in the sandbox, compare, keep the evidence.

This is the core every front end uses (``rebuilder check``, the fleet's workers, the
campaigns). It never raises for one file's trouble: every published file ends with a
:class:`FileResult`, and the reason class says what went wrong.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from rebuilder.archive.tarread import extract_sdist
from rebuilder.archive.wheelfile import WheelInfo, read_wheel_info
from rebuilder.archive.zipread import ZipArchive, read_zip
from rebuilder.compare.diagnose import SourceFiles
from rebuilder.compare.diffoscope import run_diffoscope
from rebuilder.compare.judge import compare_files
from rebuilder.compare.stabilizers import METADATA_FIELD_ORDER, sort_metadata_fields
from rebuilder.errors import (
    ArchiveError,
    FailureReason,
    NotFoundError,
    RebuilderError,
    ResolveError,
    UnusableSourceError,
)
from rebuilder.evidence import Evidence
from rebuilder.index.model import FileKind, Index, IndexFile, Resolver, refused_name
from rebuilder.plan.backend import parse_generator
from rebuilder.plan.interpreter import (
    DEFAULT,
    Interpreter,
    InterpreterChoice,
    choose_interpreter,
    older_than,
)
from rebuilder.plan.planner import ImageChoice, dist_info_entry, plan_wheel
from rebuilder.plan.sourcedeps import SandboxSourceBuilder
from rebuilder.plan.strategy import Strategy
from rebuilder.plan.writer import (
    WRITER,
    MetadataCache,
    WriterChoice,
    candidate_versions,
    choose_writer,
    has_license_file,
)
from rebuilder.sandbox.model import BuildOutcome, BuildRequest, BuildStatus, Sandbox, SandboxLimits
from rebuilder.verdict import FileResult, Verdict
from rebuilder.workdirs import owned_dir

logger = logging.getLogger(__name__)

Progress = Callable[[str, str], None]  # (filename, stage)
MAX_REQUIREMENT_ROUNDS = 3  # static requires, then up to two rounds of dynamic ones

_STATUS_REASONS = {
    BuildStatus.FAILED: FailureReason.BUILD,
    BuildStatus.TIMEOUT: FailureReason.TIMEOUT,
    BuildStatus.SANDBOX: FailureReason.SANDBOX,
    BuildStatus.MISSING_REQUIREMENTS: FailureReason.RESOLVE,
    BuildStatus.INTERRUPTED: FailureReason.INFRASTRUCTURE,
}


def _no_progress(filename: str, stage: str) -> None:
    del filename, stage


@dataclass
class _Timer:
    clock: Callable[[], float]
    spent: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = self.clock()
        try:
            yield
        finally:
            self.spent[stage] = self.spent.get(stage, 0.0) + self.clock() - start


def is_pure_wheel(filename: str) -> bool:
    """True for wheels that run anywhere (every tag ``*-none-any``)."""
    try:
        _, _, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return False
    return all(t.abi == "none" and t.platform == "any" for t in tags)


class Rebuilder:
    """Rebuilds and judges the files of releases. Every collaborator is injected."""

    def __init__(
        self,
        *,
        index: Index,
        resolver: Resolver,
        sandbox: Sandbox,
        image: Callable[[], ImageChoice],
        evidence_root: Path,
        work_root: Path,
        limits: SandboxLimits,
        diffoscope_timeout: float = 120.0,
        labels: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        interpreter_image: Callable[[Interpreter], ImageChoice] | None = None,
        metadata_cache: MetadataCache | None = None,
    ) -> None:
        # None: no metadata-writer inference (see rebuilder.plan.writer)
        self._metadata_cache = metadata_cache
        self._interpreter_image = interpreter_image
        self._interpreter_images: dict[str, ImageChoice] = {}
        self._index = index
        self._resolver = resolver
        self._sandbox = sandbox
        self._image_factory = image
        self._image: ImageChoice | None = None
        self._evidence_root = evidence_root
        self._work_root = work_root
        self._limits = limits
        self._diffoscope_timeout = diffoscope_timeout
        self._labels = dict(labels or {})
        self._clock = clock
        # build requirements with no wheel: built from their sdist in the same sandbox
        self._source_builder = SandboxSourceBuilder(
            index=index, resolver=resolver, sandbox=sandbox, limits=limits, labels=self._labels
        )

    def latest_version(self, project: str) -> str:
        """The newest non-yanked version on the index (pre-releases only if nothing else)."""
        files = [f for f in self._index.project_files(project) if not f.yanked]
        versions = set()
        for f in files:
            try:
                versions.add(Version(f.version))
            except InvalidVersion:
                continue
        final = [v for v in versions if not v.is_prerelease] or list(versions)
        if not final:
            raise NotFoundError(f"{project} has no releases on the index")
        return str(max(final))

    def check_release(
        self, project: str, version: str, progress: Progress = _no_progress
    ) -> list[FileResult]:
        """Judge every file of one release. Raises NotFoundError for an unknown release."""
        files = list(self._index.release_files(project, version))
        sdists = _usable_sdists(files)
        results: list[FileResult] = []
        for file in sorted(files, key=lambda f: (f.kind is not FileKind.WHEEL, f.filename)):
            start = self._clock()
            result = self._judge(file, sdists, progress)
            results.append(replace(result, seconds=result.seconds or self._clock() - start))
        return results

    def judge_file(self, file: IndexFile, progress: Progress = _no_progress) -> FileResult:
        """Judge one published file (the fleet's unit of work); never raises RebuilderError.

        The release's sdist is looked up on the index; an index that cannot be read is a
        ``failed`` result with the error's reason class, like any other failure.
        """
        start = self._clock()
        try:
            siblings = self._index.release_files(file.project, file.version)
            sdists = _usable_sdists(siblings)
        except RebuilderError as exc:
            logger.info("%s: %s (%s)", file.filename, exc.diagnostics(), exc.reason)
            return FileResult(
                file.project,
                file.version,
                file.filename,
                Verdict.FAILED,
                file.sha256,
                reason=exc.diagnostics(),
                reason_class=exc.reason,
                seconds=self._clock() - start,
            )
        result = self._judge(file, sdists, progress)
        return replace(result, seconds=result.seconds or self._clock() - start)

    def _judge(
        self, file: IndexFile, sdists: Sequence[IndexFile], progress: Progress
    ) -> FileResult:
        refusal = refused_name(file.filename)
        if refusal is not None:
            logger.info("%s: refused: %s", file.project, refusal)
            return FileResult(
                file.project,
                file.version,
                file.filename,
                Verdict.FAILED,
                file.sha256,
                reason=f"{refusal}; the file was not downloaded",
                reason_class=FailureReason.SANDBOX,
            )
        if file.kind is FileKind.SDIST:
            return _unsupported(file, "source distribution: it is the input of the rebuild")
        if file.kind is not FileKind.WHEEL:
            return _unsupported(file, "not a wheel or sdist (egg, installer or other format)")
        if not is_pure_wheel(file.filename):
            return _unsupported(file, "platform wheel: only pure-Python wheels are rebuilt yet")
        if not sdists:
            return _unsupported(file, "the release has no sdist to rebuild from")
        return self.rebuild_wheel(file, _pick_sdist(sdists), progress)

    def _image_choice(self) -> ImageChoice:
        if self._image is None:
            self._image = self._image_factory()
        return self._image

    def rebuild_wheel(
        self, wheel: IndexFile, sdist: IndexFile, progress: Progress = _no_progress
    ) -> FileResult:
        """Rebuild one pure wheel from ``sdist`` and judge it; never raises a RebuilderError."""
        timer = _Timer(self._clock)
        evidence = Evidence.for_file(
            self._evidence_root, wheel.project, wheel.version, wheel.filename
        )
        base = FileResult(
            wheel.project,
            wheel.version,
            wheel.filename,
            Verdict.FAILED,
            wheel.sha256,
            evidence=str(evidence.path),
        )
        start = self._clock()
        try:
            result = self._rebuild(
                wheel=wheel,
                sdist=sdist,
                evidence=evidence,
                timer=timer,
                base=base,
                progress=progress,
            )
        except RebuilderError as exc:
            logger.info("%s: %s (%s)", wheel.filename, exc.diagnostics(), exc.reason)
            result = replace(base, reason=exc.diagnostics(), reason_class=exc.reason)
        result = replace(result, seconds=self._clock() - start, timings=dict(timer.spent))
        evidence.write_result(result)
        progress(wheel.filename, result.verdict.value)
        return result

    def _rebuild(
        self,
        *,
        wheel: IndexFile,
        sdist: IndexFile,
        evidence: Evidence,
        timer: _Timer,
        base: FileResult,
        progress: Progress,
    ) -> FileResult:
        progress(wheel.filename, "fetch")
        with timer("fetch"):
            published = self._index.download(wheel)
            source_archive = self._index.download(sdist)
        with timer("inspect"):
            try:
                archive = read_zip(published)
                info = read_wheel_info(archive)
            except ArchiveError as exc:
                raise ArchiveError(
                    f"the published wheel cannot be read safely: {exc.diagnostics()}"
                ) from None
        with owned_dir(self._work_root, "rebuild-") as work:
            with timer("extract"):
                try:
                    source_dir = extract_sdist(source_archive, work / "src")
                except ArchiveError as exc:
                    raise UnusableSourceError(
                        f"the sdist {sdist.filename} cannot be used safely: {exc.diagnostics()}"
                    ) from None
            choice = (
                choose_interpreter(archive.entries, wheel.upload_time)
                if self._interpreter_image is not None
                else None
            )
            image, why = self._image_for(choice)
            outcome: BuildOutcome | None
            strategy: Strategy | None = None
            try:
                outcome, strategy = self._build(
                    wheel=wheel, sdist=sdist, info=info, archive=archive,
                    source_dir=source_dir, work=work, image=image, why=why,
                    evidence=evidence, timer=timer, progress=progress,
                )  # fmt: skip
                failed = outcome.status is BuildStatus.FAILED
                failure = (outcome.detail or "the build failed") if failed else None
            except ResolveError as exc:
                failure, outcome = exc.diagnostics(), None
                if not self._may_retry(choice, image):
                    raise
            if failure is not None and choice is not None and self._may_retry(choice, image):
                # A backend too old for this interpreter (or requirements with no wheel
                # for it): one more try, with the next older interpreter of the matrix
                # (or the default one, when the upload date chose the oldest).
                other = _retry_interpreter(choice)
                first = failure.splitlines()[0][:200] if failure else "failed"
                retry_why = f"Python {image.python_version} failed ({first}); tried next"
                retry_image, retry_why = self._image_for(
                    InterpreterChoice(other, retry_why), fallback=other == DEFAULT
                )
                if retry_image.python_version == other.version:
                    shutil.rmtree(work / "wheelhouse", ignore_errors=True)
                    try:
                        outcome, strategy = self._build(
                            wheel=wheel, sdist=sdist, info=info, archive=archive,
                            source_dir=source_dir, work=work, image=retry_image,
                            why=retry_why, evidence=evidence, timer=timer, progress=progress,
                        )  # fmt: skip
                    except ResolveError as exc:
                        # The first answer stands (its evidence is what was written).
                        logger.info(
                            "%s: the retry with Python %s did not resolve: %s",
                            wheel.filename, other.version, exc.diagnostics(),
                        )  # fmt: skip
            if outcome is None:
                raise ResolveError(failure or "resolution failed")
            rebuilt_metadata = _wheel_metadata(outcome.artifact)
            result = self._judge_outcome(
                outcome=outcome,
                published=published,
                evidence=evidence,
                timer=timer,
                base=base,
                progress=progress,
                source_dir=source_dir,
            )
            return self._with_writer(
                result=result, rebuilt_metadata=rebuilt_metadata, strategy=strategy,
                image=image, wheel=wheel, sdist=sdist, info=info, archive=archive,
                source_dir=source_dir, work=work, published=published, evidence=evidence,
                timer=timer, base=base, progress=progress,
            )  # fmt: skip

    def _with_writer(
        self,
        *,
        result: FileResult,
        rebuilt_metadata: bytes | None,
        strategy: Strategy | None,
        image: ImageChoice,
        wheel: IndexFile,
        sdist: IndexFile,
        info: WheelInfo,
        archive: ZipArchive,
        source_dir: Path,
        work: Path,
        published: Path,
        evidence: Evidence,
        timer: _Timer,
        base: FileResult,
        progress: Progress,
    ) -> FileResult:
        """A mismatch whose METADATA differs: rebuilt with the writer that wrote it, if found."""
        published_entry = dist_info_entry(archive.entries, "METADATA")
        if (
            result.verdict is not Verdict.MISMATCH
            or self._metadata_cache is None
            or strategy is None
            or published_entry is None
            or rebuilt_metadata is None
            or rebuilt_metadata == published_entry.data
            or not _setuptools_writes_metadata(info.generator)
        ):
            return result
        # METADATA differs: find the setuptools that wrote it (rebuilder.plan.writer).
        found = self._infer_writer(
            wheel=wheel, sdist=sdist, info=info, archive=archive, source_dir=source_dir,
            work=work, strategy=strategy, published=published_entry.data,
            evidence=evidence, timer=timer, progress=progress,
        )  # fmt: skip
        if found.requirement is None:
            evidence.write_strategy(replace(strategy, notes=(*strategy.notes, found.note)))
            return result
        shutil.rmtree(work / "wheelhouse", ignore_errors=True)
        evidence.set_aside("before-writer")  # the first build's log and reports
        try:
            second: BuildOutcome | None
            second, _ = self._build(
                wheel=wheel, sdist=sdist, info=info, archive=archive,
                source_dir=source_dir, work=work,
                image=self._image_of(strategy, image), why=strategy.interpreter_reason,
                evidence=evidence, timer=timer, progress=progress,
                writer=(found.requirement,), writer_note=found.note,
            )  # fmt: skip
        except ResolveError as exc:
            logger.info("%s: the writer's rebuild did not resolve: %s", wheel.filename, exc)
            second = None
        if second is None or second.status is not BuildStatus.OK:
            # The first answer stands; the strategy says what was tried.
            note = (
                f"{found.note}; but the rebuild with it did not succeed: the first result "
                "kept (its log and reports in before-writer/)"
            )
            evidence.write_strategy(replace(strategy, notes=(*strategy.notes, note)))
            return result
        return self._judge_outcome(
            outcome=second,
            published=published,
            evidence=evidence,
            timer=timer,
            base=base,
            progress=progress,
            source_dir=source_dir,
        )

    def _image_of(self, strategy: Strategy, fallback: ImageChoice) -> ImageChoice:
        """The image a strategy ran in (one of those made so far), else ``fallback``."""
        for known in (self._image_choice(), *self._interpreter_images.values()):
            if known.reference == strategy.image:
                return known
        return fallback

    def _infer_writer(
        self,
        *,
        wheel: IndexFile,
        sdist: IndexFile,
        info: WheelInfo,
        archive: ZipArchive,
        source_dir: Path,
        work: Path,
        strategy: Strategy,
        published: bytes,
        evidence: Evidence,
        timer: _Timer,
        progress: Progress,
    ) -> WriterChoice:
        """Run candidate writers' metadata hooks; the one writing ``published`` wins."""
        current = next((r.version for r in strategy.requirements if r.name == WRITER), None)
        try:
            releases = self._index.project_files(WRITER)
        except RebuilderError as exc:
            logger.info("no %s releases to choose from: %s", WRITER, exc.diagnostics())
            releases = []
        candidates = candidate_versions(
            releases,
            wheel.upload_time,
            current,
            strategy.build_requires,
            license_file=has_license_file(published),
        )
        image = self._image_of(strategy, self._image_choice())

        def produce(version: str) -> tuple[bytes | None, str]:
            shutil.rmtree(work / "wheelhouse", ignore_errors=True)
            try:
                outcome, _ = self._build(
                    wheel=wheel, sdist=sdist, info=info, archive=archive,
                    source_dir=source_dir, work=work, image=image,
                    why=strategy.interpreter_reason, evidence=evidence, timer=timer,
                    progress=progress, writer=(f"{WRITER}=={version}",), metadata_only=True,
                )  # fmt: skip
            except ResolveError:
                return None, "does not resolve with the sdist's requirements"
            if outcome.status is not BuildStatus.OK or outcome.artifact is None:
                return None, f"metadata hook {outcome.status.value}"
            return outcome.artifact.read_bytes(), ""

        progress(wheel.filename, "writer")
        with timer("writer"):
            choice = choose_writer(
                distribution=WRITER,
                candidates=candidates,
                published=published,
                # the output depends on the interpreter too
                sdist_sha256=f"{sdist.sha256}/py{image.python_version}",
                produce=produce,
                cache=self._metadata_cache,
                normalization=(
                    f"{METADATA_FIELD_ORDER.name}@{METADATA_FIELD_ORDER.version}",
                    sort_metadata_fields,
                ),
            )
        logger.info("%s: %s", wheel.filename, choice.note)
        return choice

    def _image_for(
        self, choice: InterpreterChoice | None, *, fallback: bool = True
    ) -> tuple[ImageChoice, str]:
        """The image of the chosen interpreter (built on first need) and why it was chosen.

        An image that cannot be made falls back to the default one (``fallback``), and
        the strategy says so.
        """
        default = self._image_choice()
        if choice is None or self._interpreter_image is None:
            return default, "the configured sandbox image"
        version = choice.interpreter.version
        if version == default.python_version:
            return default, choice.note
        if version not in self._interpreter_images:
            try:
                self._interpreter_images[version] = self._interpreter_image(choice.interpreter)
            except RebuilderError as exc:
                logger.warning("no image for Python %s: %s", version, exc.diagnostics())
                if not fallback:
                    return default, choice.note
                return default, (
                    f"{choice.note}; but its image could not be made "
                    f"({exc.diagnostics()[:200]}): the default image"
                )
        return self._interpreter_images[version], choice.note

    def _may_retry(self, choice: InterpreterChoice | None, image: ImageChoice) -> bool:
        """An older interpreter is tried when no trace in the wheel named this one."""
        if choice is None or choice.traced is not None or self._interpreter_image is None:
            return False
        return image.python_version == choice.interpreter.version and (
            _retry_interpreter(choice) != choice.interpreter
        )

    def _build(
        self,
        *,
        wheel: IndexFile,
        sdist: IndexFile,
        info: WheelInfo,
        archive: ZipArchive,
        source_dir: Path,
        work: Path,
        image: ImageChoice,
        why: str,
        evidence: Evidence,
        timer: _Timer,
        progress: Progress,
        writer: tuple[str, ...] = (),
        writer_note: str = "",
        metadata_only: bool = False,
    ) -> tuple[BuildOutcome, Strategy]:
        """Plan and build with ``image``, adding dynamic requirements for a few rounds.

        ``writer`` pins the metadata writer (see :mod:`rebuilder.plan.writer`);
        ``metadata_only`` runs the metadata hook alone and records no evidence.
        """
        extra: tuple[str, ...] = writer
        for _ in range(MAX_REQUIREMENT_ROUNDS):
            progress(wheel.filename, "resolve")
            with timer("resolve"):
                strategy = plan_wheel(
                    wheel=wheel,
                    sdist=sdist,
                    generator=info.generator,
                    tags=info.tags,
                    entries=archive.entries,
                    source_dir=source_dir,
                    image=image,
                    resolver=self._resolver,
                    index=self._index,
                    wheelhouse=work / "wheelhouse",
                    extra_requires=extra,
                    interpreter_reason=why,
                    source_builder=self._source_builder,
                )
            if writer_note:
                strategy = replace(strategy, notes=(*strategy.notes, writer_note))
            if not metadata_only:
                evidence.write_strategy(strategy)
            progress(wheel.filename, "build")
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            request = BuildRequest(
                image=strategy.image,
                source_dir=source_dir,
                wheelhouse=work / "wheelhouse",
                requirements=strategy.install_specs,
                distribution="metadata" if metadata_only else "wheel",
                env=strategy.env,
                output_dir=out,
                umask=strategy.archive.umask,
                build_clock=strategy.archive.build_clock,
                source_mtime=strategy.archive.source_mtime,
                source_mode_mask=strategy.archive.source_mode_mask,
                config_settings=dict(strategy.config_settings),
                clock_map=dict(strategy.archive.generated_times),
                limits=self._limits,
                labels={**self._labels, "org.pypi-rebuilder.file": wheel.filename[:200]},
            )
            with timer("sandbox"):
                outcome = self._sandbox.run(request)
            if not metadata_only:
                evidence.write_log(outcome.log)
            for stage, seconds in outcome.timings.items():
                timer.spent[f"sandbox.{stage}"] = seconds
            if outcome.status is not BuildStatus.MISSING_REQUIREMENTS:
                break
            new = tuple(r for r in outcome.missing if r not in extra)
            if not new:
                break
            extra = (*extra, *new)
        return outcome, strategy

    def _judge_outcome(
        self,
        *,
        outcome: BuildOutcome,
        published: Path,
        evidence: Evidence,
        timer: _Timer,
        base: FileResult,
        progress: Progress,
        source_dir: Path | None = None,
    ) -> FileResult:
        if outcome.status is not BuildStatus.OK or outcome.artifact is None:
            reason_class = _STATUS_REASONS.get(outcome.status, FailureReason.BUILD)
            detail = outcome.detail or f"build ended with status {outcome.status.value}"
            if outcome.status is BuildStatus.MISSING_REQUIREMENTS:
                missing = ", ".join(outcome.missing)
                raise ResolveError(f"build requirements still missing: {missing}")
            return replace(base, reason=detail, reason_class=reason_class)
        rebuilt = evidence.keep_rebuilt(outcome.artifact)
        progress(base.filename, "compare")
        with timer("compare"):
            comparison = compare_files(published, rebuilt, source=SourceFiles.from_dir(source_dir))
        notes = []
        if rebuilt.name != base.filename:
            notes.append(f"the rebuild is named {rebuilt.name}")
        result = replace(
            base,
            verdict=comparison.verdict,
            rebuilt_sha256=comparison.rebuilt_sha256,
            stabilizers=comparison.stabilizers,
            differences=comparison.differences,
            diagnosis=comparison.diagnosis,
            reason="; ".join(notes) or None,
        )
        if comparison.text_diff:
            evidence.write_text_diff(comparison.text_diff)
        if comparison.verdict is Verdict.MISMATCH:
            progress(base.filename, "diffoscope")
            with timer("diffoscope"):
                report = run_diffoscope(
                    published, rebuilt, evidence.path, timeout_seconds=self._diffoscope_timeout
                )
            logger.info("diffoscope for %s: %s", base.filename, report.status)
        return result


def _wheel_metadata(artifact: Path | None) -> bytes | None:
    """The rebuilt wheel's ``METADATA`` bytes, read safely; None when unreadable."""
    if artifact is None or artifact.suffix != ".whl":
        return None
    try:
        entry = dist_info_entry(read_zip(artifact).entries, "METADATA")
    except ArchiveError:
        return None
    return entry.data if entry is not None else None


def _setuptools_writes_metadata(generator: str | None) -> bool:
    """True when setuptools wrote METADATA and the Generator does not pin its version."""
    pin = parse_generator(generator)
    return pin.distribution == "wheel" or (pin.distribution == WRITER and pin.version is None)


def _retry_interpreter(choice: InterpreterChoice) -> Interpreter:
    """The interpreter tried after ``choice`` failed: the next older, else the default."""
    older = older_than(choice.interpreter)
    return older[0] if older else DEFAULT


def _usable_sdists(files: Sequence[IndexFile]) -> list[IndexFile]:
    return [f for f in files if f.kind is FileKind.SDIST and refused_name(f.filename) is None]


def _pick_sdist(sdists: Sequence[IndexFile]) -> IndexFile:
    """The sdist to build from: ``.tar.gz`` first (the standard form), then others."""
    return sorted(sdists, key=lambda f: (not f.filename.endswith(".tar.gz"), f.filename))[0]


def _unsupported(file: IndexFile, reason: str) -> FileResult:
    return FileResult(
        file.project, file.version, file.filename, Verdict.UNSUPPORTED, file.sha256, reason=reason
    )
