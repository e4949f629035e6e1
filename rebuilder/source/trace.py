"""Trace one release back to its git source: :func:`trace_release` and :class:`SourceTracer`.

:func:`trace_release` is the unit the fleet runs: given the published sdist (already
downloaded and hash-checked) and a :class:`~rebuilder.source.clone.Cloner`, it finds the
repository and the tag, compares, writes the evidence (``source/report.json``,
``source/diff.patch``) and returns a :class:`SourceResult`. Trouble with the release
(no repository, no tag, a refused URL, a limit) ends as ``no-source`` with the reason;
a repository host that does not answer raises :class:`RepositoryUnreachableError`
(infrastructure), so the fleet retries instead of recording a verdict.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from rebuilder.archive.tarread import extract_sdist, read_sdist_text
from rebuilder.errors import ArchiveError, RebuilderError
from rebuilder.evidence import Evidence
from rebuilder.index.model import FileKind, Index, IndexFile
from rebuilder.source.clone import Cloner
from rebuilder.source.compare import (
    choose_subdir,
    compare_tree,
    git_tar_time,
    read_git_tar,
    sdist_digests,
    sdist_files,
)
from rebuilder.source.errors import NoRepositoryError, RepositoryUnreachableError
from rebuilder.source.locate import locate_repository
from rebuilder.source.rebuild import FromGit, GitRebuilder
from rebuilder.source.result import SourceResult, SourceVerdict
from rebuilder.source.rules import Regeneration
from rebuilder.source.tags import match_tag
from rebuilder.workdirs import owned_dir

logger = logging.getLogger(__name__)

#: Called with the git tar, the project's folder in it and the commit's time (seconds),
#: before the comparison: the rules compare generated files with what it regenerated.
FromGitStep = Callable[[Path, str, int | None], FromGit]


@dataclass(frozen=True)
class SourceConfig:
    """The operator's knobs of source tracing (from :class:`~rebuilder.settings.Settings`)."""

    overrides: Mapping[str, str] = field(default_factory=dict)
    mirrors: Mapping[str, str] = field(default_factory=dict)


def source_evidence(root: Path, project: str, version: str) -> Path:
    """``{root}/{project}/{version}/source/``."""
    return Evidence.for_file(root, project, version, "source").path


def trace_release(
    *,
    project: str,
    version: str,
    sdist_path: Path,
    cloner: Cloner,
    config: SourceConfig,
    work_dir: Path,
    evidence_dir: Path | None = None,
    sdist_sha256: str | None = None,
    sdist_filename: str | None = None,
    from_git: FromGitStep | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SourceResult:
    """Judge the sdist at ``sdist_path`` against its git tag (see the module documentation).

    ``sdist_filename`` is the published name (default: the name of ``sdist_path``).
    """
    start = clock()
    base = SourceResult(
        project,
        version,
        SourceVerdict.NO_SOURCE,
        sdist=sdist_filename or sdist_path.name,
        sdist_sha256=sdist_sha256,
    )
    timings: dict[str, float] = {}
    with owned_dir(work_dir, "source-") as tmp:
        try:
            result = _trace(base, sdist_path, cloner, config, tmp, timings, clock, from_git)
        except RepositoryUnreachableError:
            raise  # an outage is not a verdict about the release: the caller retries
        except RebuilderError as exc:
            logger.info("source of %s %s: %s", project, version, exc.diagnostics())
            result = replace(base, reason=exc.diagnostics())
        result = replace(result, seconds=clock() - start, timings=timings)
        if evidence_dir is not None:
            result = write_evidence(result, evidence_dir, tmp / "diff.patch")
    return result


def _trace(  # noqa: PLR0911, PLR0917 - the body of trace_release: one return per ending
    base: SourceResult,
    sdist_path: Path,
    cloner: Cloner,
    config: SourceConfig,
    work: Path,
    timings: dict[str, float],
    clock: Callable[[], float],
    from_git: FromGitStep | None,
) -> SourceResult:
    project, version = base.project, base.version
    mark = clock()
    try:
        metadata = read_sdist_text(sdist_path, "PKG-INFO")
    except ArchiveError as exc:
        return replace(base, reason=f"the sdist cannot be read: {exc.diagnostics()}")
    try:
        where = locate_repository(
            project, metadata, overrides=config.overrides, mirrors=config.mirrors
        )
    except NoRepositoryError as exc:
        return replace(base, reason=exc.diagnostics())
    result = replace(
        base, repository=where.url, declared_repository=where.declared, found_in=where.found_in
    )
    try:
        repo = cloner.open(where.url)
        tags = repo.tags()
    except RepositoryUnreachableError:
        raise  # an outage is not a verdict about the release
    except RebuilderError as exc:
        return replace(result, reason=exc.diagnostics())
    timings["tags"] = clock() - mark
    match = match_tag(tags, project, version)
    if match.tag is None or match.commit is None:
        tried = (*match.tried, *(f"matched: {c}" for c in match.candidates))
        return replace(result, tried=tried, reason=match.reason)
    mark = clock()
    result = replace(result, tag=match.tag, commit=match.commit)
    try:
        commit = repo.fetch_tag(match.tag)
    except RepositoryUnreachableError:
        raise
    except RebuilderError as exc:
        return replace(result, reason=exc.diagnostics())
    if commit != match.commit:
        return replace(result, commit=commit, reason=f"tag {match.tag} moved while fetched")
    tar = repo.archive(commit, work / "git.tar", f"{project}-{version}/")
    timings["fetch"] = clock() - mark
    mark = clock()
    git_files = read_git_tar(tar)
    try:
        sdist_root = extract_sdist(sdist_path, work / "sdist")
    except ArchiveError as exc:
        return replace(result, reason=f"the sdist cannot be used safely: {exc.diagnostics()}")
    regeneration = Regeneration(why="no rebuild from git was asked for")
    if from_git is not None:
        timings["compare"] = clock() - mark
        mark = clock()
        subdir = choose_subdir(sdist_digests(sdist_files(sdist_root)), git_files)
        rebuilt = from_git(tar, subdir, git_tar_time(tar))
        result = replace(result, from_git=rebuilt.builds)
        regeneration = rebuilt.regeneration
        timings["from_git"] = clock() - mark
        mark = clock()

    def blob(path: str) -> bytes | None:
        return repo.blob(commit, path)

    comparison = compare_tree(
        sdist_root,
        git_files,
        project=project,
        version=version,
        regeneration=regeneration,
        blob=blob,
    )
    timings["compare"] = timings.get("compare", 0.0) + clock() - mark
    (work / "diff.patch").write_text(comparison.diff, encoding="utf-8")
    return replace(
        result,
        verdict=comparison.verdict,
        subdir=comparison.subdir,
        explained=comparison.explained,
        differing=comparison.differing,
        repo_only=comparison.repo_only,
    )


def write_evidence(result: SourceResult, folder: Path, diff: Path) -> SourceResult:
    """Write ``report.json`` (and ``diff.patch`` when there is one) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    result = replace(result, evidence=str(folder))
    if diff.is_file() and diff.stat().st_size:
        (folder / "diff.patch").write_bytes(diff.read_bytes())
    report = {**result.to_json(), "repo_only": list(result.repo_only)}
    text = json.dumps(report, indent=2, sort_keys=True)
    (folder / "report.json").write_text(text + "\n", encoding="utf-8")
    return result


class SourceTracer:
    """Runs the source check of releases on an index (``rebuilder check --source``)."""

    def __init__(
        self,
        *,
        index: Index,
        cloner: Cloner,
        config: SourceConfig,
        evidence_root: Path,
        work_root: Path,
        git_rebuilder: GitRebuilder | None = None,
    ) -> None:
        self._index = index
        self._cloner = cloner
        self._config = config
        self._evidence_root = evidence_root
        self._work_root = work_root
        self._git_rebuilder = git_rebuilder

    def check_release(self, project: str, version: str) -> SourceResult:
        """Trace one release; ``no-source`` when it has no sdist. Never raises RebuilderError.

        An unreachable repository is reported as ``no-source`` "not checked" here (a
        one-shot check exits 2 for it).
        """
        try:
            files = list(self._index.release_files(project, version))
            sdists = sorted(
                (f for f in files if f.kind is FileKind.SDIST),
                key=lambda f: (not f.filename.endswith(".tar.gz"), f.filename),
            )
            if not sdists:
                return SourceResult(
                    project, version, SourceVerdict.NO_SOURCE, reason="the release has no sdist"
                )
            sdist = sdists[0]
            sdist_path = self._index.download(sdist)
        except RebuilderError as exc:
            return SourceResult(project, version, SourceVerdict.NO_SOURCE, reason=exc.diagnostics())
        evidence = source_evidence(self._evidence_root, project, version)
        try:
            return trace_release(
                project=project,
                version=version,
                sdist_path=sdist_path,
                cloner=self._cloner,
                config=self._config,
                work_dir=self._work_root,
                evidence_dir=evidence,
                sdist_sha256=sdist.sha256,
                sdist_filename=sdist.filename,
                from_git=self._from_git(sdist, sdist_path, files, evidence),
            )
        except RepositoryUnreachableError as exc:
            # One-shot: reported as not checked (exit 2), with why. The fleet lets it
            # propagate and retries: an outage is never a verdict about the release.
            reason = f"not checked: {exc.diagnostics()}"
            return SourceResult(project, version, SourceVerdict.NO_SOURCE, reason=reason)

    def _from_git(
        self, sdist: IndexFile, sdist_path: Path, files: list[IndexFile], evidence: Path
    ) -> FromGitStep | None:
        return from_git_step(self._git_rebuilder, sdist, sdist_path, files, evidence)


def pure_wheels(files: Sequence[IndexFile]) -> list[IndexFile]:
    """The release's pure wheels, those still offered first."""
    from rebuilder.pipeline import is_pure_wheel  # noqa: PLC0415 - pipeline imports much

    return sorted(
        (f for f in files if f.kind is FileKind.WHEEL and is_pure_wheel(f.filename)),
        key=lambda f: (f.yanked, f.filename),
    )


def from_git_step(
    rebuilder: GitRebuilder | None,
    sdist: IndexFile,
    sdist_path: Path,
    files: Sequence[IndexFile],
    evidence: Path,
) -> FromGitStep | None:
    """The "rebuild from git" step of :func:`trace_release` (None: not asked for)."""
    if rebuilder is None:
        return None
    wheels = pure_wheels(files)

    def run(tar: Path, subdir: str, commit_time: int | None) -> FromGit:
        return rebuilder.rebuild(
            git_tar=tar,
            subdir=subdir,
            sdist=sdist,
            sdist_path=sdist_path,
            wheels=wheels,
            evidence=evidence,
            commit_time=commit_time,
        )

    return run
