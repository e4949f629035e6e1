"""A second opinion from git for a mismatch, and the git-tag route for wheels built from
a checkout.

When the sdist route gives ``mismatch`` and the release traces to a git tag (the source
check, ``rebuilder.source``), the wheel rebuilt from that tag is reported beside the
verdict ("reproducible from git tag v1.0 @ abc123"); the verdict stays about the sdist.

The git route *is* the strategy when the wheel rebuilt from the tag is reproducible or
equivalent and either the published wheel holds files the sdist does not contain
(diagnosed ``only-published``, proven by content: no file of the sdist has those bytes),
or the wheel was built from the tagged tree itself, the same strategy on the sdist did
not reproduce it, and the checkout holds files the sdist lacks (a package finder picking
up a folder the sdist leaves out changes ``top_level.txt`` only). The verdict is then the
one of the rebuild from the tag, recorded as such (``route: git``, repository, tag,
commit), the output says which files the sdist lacks, and the file's evidence (hence its
signed statements) describes that rebuild. Nothing here is decided by a name.
:class:`SecondOpinionJudge` gives the same opinion in a fleet worker.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from rebuilder.errors import RebuilderError
from rebuilder.evidence import Evidence
from rebuilder.index.model import IndexFile
from rebuilder.source.result import GitBuild, SourceResult, SourceVerdict
from rebuilder.verdict import Cause, FileResult, StabilizerUse, Verdict

logger = logging.getLogger(__name__)

_GOOD = {Verdict.REPRODUCIBLE.value, Verdict.EQUIVALENT.value}


@dataclass(frozen=True)
class SecondOpinion:
    """The wheel rebuilt from the traced tag, beside the sdist route's verdict."""

    verdict: str
    repository: str | None
    tag: str | None
    commit: str | None
    rebuilt_sha256: str | None = None
    stabilizers: tuple[str, ...] = ()
    differences: tuple[str, ...] = ()
    reason: str | None = None
    route: str = "sdist"  # "git": the rebuild from the tag became the strategy
    sdist_lacks: tuple[str, ...] = ()
    built_from: str = "sdist"  # the wheel from git was built from its sdist or the tree
    # with route "git" by a build from the tree: the checkout's files the sdist lacks
    checkout_only_count: int = 0
    checkout_only: tuple[str, ...] = ()  # their top folders (``docs/``) or top-level files

    def to_json(self) -> dict[str, Any]:
        return {
            "source": "git",
            "verdict": self.verdict,
            "repository": self.repository,
            "tag": self.tag,
            "commit": self.commit,
            "rebuilt_sha256": self.rebuilt_sha256,
            "stabilizers": list(self.stabilizers),
            "differences": list(self.differences),
            "reason": self.reason,
            "route": self.route,
            "sdist_lacks": list(self.sdist_lacks),
            "built_from": self.built_from,
            "checkout_only_count": self.checkout_only_count,
            "checkout_only": list(self.checkout_only),
        }

    def line(self) -> str:
        """``reproducible from git tag v1.0 @ abc123`` (one line for the text output)."""
        where = f"git tag {self.tag} @ {(self.commit or '?')[:12]}" if self.tag else "git"
        text = f"{self.verdict} from {where}"
        if self.reason:
            text += f" ({self.reason})"
        return text


def sdist_lacks(result: FileResult) -> tuple[str, ...]:
    """Files of the published wheel that no file of the sdist holds (by the diagnosis)."""
    return tuple(
        d.path
        for d in result.diagnosis
        if d.cause is Cause.ONLY_PUBLISHED and "sdist does not contain" in d.detail
    )


def checkout_only(source: SourceResult) -> tuple[str, ...]:
    """The top folders (``docs/``) and top-level files of the checkout the sdist lacks."""
    tops = {p.split("/", 1)[0] + "/" if "/" in p else p for p in source.repo_only}
    return tuple(sorted(tops, key=lambda top: (not top.endswith("/"), top)))  # folders first


def _git_build(result: FileResult, source: SourceResult) -> GitBuild | None:
    return next((b for b in source.from_git if b.filename == result.filename), None)


def with_second_opinion(result: FileResult, source: SourceResult) -> FileResult:
    """``result`` with the opinion of the rebuild from git, if there is one to give.

    Only a mismatch gets one; the git-tag route replaces the verdict only as the module
    documentation says.
    """
    if result.verdict is not Verdict.MISMATCH:
        return result
    build = _git_build(result, source)
    if build is None:
        reason = source.reason or "no wheel was rebuilt from git"
        opinion = SecondOpinion("not checked", source.repository, source.tag, source.commit,
                                reason=reason)  # fmt: skip
        return replace(result, second_opinion=opinion.to_json())
    lacking = sdist_lacks(result)
    opinion = SecondOpinion(
        build.verdict,
        source.repository,
        source.tag,
        source.commit,
        build.rebuilt_sha256,
        build.stabilizers,
        build.differences,
        build.reason,
        built_from=build.built_from,
    )
    # The wheel built from the tagged tree reproduces the published one and the same
    # strategy on the sdist does not: the checkout's files the sdist lacks made it so.
    from_checkout = build.built_from == "tree" and bool(source.repo_only)
    if not ((lacking or from_checkout) and build.verdict in _GOOD and source.tag and source.commit):
        return replace(result, second_opinion=opinion.to_json())
    tops = checkout_only(source) if from_checkout and not lacking else ()
    routed = replace(
        opinion, route="git", sdist_lacks=lacking,
        checkout_only_count=len(source.repo_only) if tops else 0, checkout_only=tops,
    )  # fmt: skip
    where = f"built from git tag {source.tag} @ {source.commit[:12]}"
    if lacking:
        why = f"the published wheel holds files the sdist lacks ({_shown(lacking)})"
    else:
        why = (
            f"the wheel built from the checkout reproduces it: the checkout holds "
            f"{len(source.repo_only)} files the sdist lacks (in {_shown(tops)})"
        )
    logger.info("%s: %s: %s", result.filename, where, why)
    return replace(
        result,
        verdict=Verdict(build.verdict),
        rebuilt_sha256=build.rebuilt_sha256,
        stabilizers=tuple(_stabilizer(s) for s in build.stabilizers),
        differences=(),
        diagnosis=(),
        reason=f"{where}: {why}; the sdist route gave mismatch",
        second_opinion=routed.to_json(),
    )


ROUTE_EVIDENCE_FOLDER = "sdist-route"
"""Where a routed file's evidence keeps the sdist route's build (docs/diagnosis.md)."""


def judged_with_opinion(result: FileResult, source: SourceResult) -> FileResult:
    """:func:`with_second_opinion`, and for a file the git-tag route took, its evidence.

    The routed file's evidence folder then describes the rebuild from git: the sdist
    route's strategy, log, reports and wheel move to ``sdist-route/``; the strategy, log
    and wheel of the rebuild from git (found in the source check's ``from-git/`` evidence
    by the wheel's sha256) take their place, so what is signed from the folder
    (``rebuilder.attest``) is the rebuild the verdict is about, and ``result.json`` says
    the same. Without those files the route is not taken: the opinion stays beside the
    sdist route's verdict, saying why.
    """
    judged = with_second_opinion(result, source)
    opinion = judged.second_opinion or {}
    if opinion.get("route") != "git":
        return judged
    try:
        _adopt_route_evidence(judged, source)
    except (RebuilderError, OSError) as exc:
        why = exc.diagnostics() if isinstance(exc, RebuilderError) else str(exc)
        logger.warning("%s: the git-tag route is not taken: %s", result.filename, why)
        kept = {**opinion, "route": "sdist", "reason": f"its evidence is missing: {why}"}
        return replace(result, second_opinion=kept)
    return judged


def _adopt_route_evidence(result: FileResult, source: SourceResult) -> None:
    if not result.evidence or not source.evidence:
        raise RebuilderError("no evidence folder to keep the rebuild from git in")
    folder = Path(source.evidence) / "from-git"
    built_from = (result.second_opinion or {}).get("built_from")
    rebuilt = _rebuilt_wheel(folder / ("tree" if built_from == "tree" else ""), result)
    if rebuilt is None:
        raise RebuilderError(f"the wheel rebuilt from git is not in {folder}")
    log = folder / ("tree-wheel-build.log" if built_from == "tree" else "wheel-build.log")
    evidence = Evidence(Path(result.evidence))
    evidence.adopt(
        ROUTE_EVIDENCE_FOLDER, strategy=folder / "strategy.json", log=log, rebuilt=rebuilt
    )
    evidence.write_result(result)


def _rebuilt_wheel(folder: Path, result: FileResult) -> Path | None:
    for path in sorted((folder / "rebuilt").glob("*.whl")):
        if hashlib.sha256(path.read_bytes()).hexdigest() == result.rebuilt_sha256:
            return path
    return None


def release_opinions(
    results: Sequence[FileResult], trace: Callable[[], SourceResult]
) -> tuple[list[FileResult], SourceResult | None]:
    """The files of one release, each mismatch with its second opinion from git.

    ``trace`` (the source check of the release, which rebuilds from git) is called once,
    and only when a file mismatches; the source result is returned beside the files. A
    file the git-tag route took gets that rebuild's evidence (:func:`judged_with_opinion`).
    """
    if not any(r.verdict is Verdict.MISMATCH for r in results):
        return list(results), None
    source = trace()
    return [judged_with_opinion(r, source) for r in results], source


def _shown(items: tuple[str, ...], limit: int = 5) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _stabilizer(text: str) -> StabilizerUse:
    name, _, version = text.partition("@")
    return StabilizerUse(name, int(version) if version.isdigit() else 0)


def opinion_line(result: FileResult) -> str | None:
    """The text output's line for a second opinion, if the result has one."""
    data = result.second_opinion
    if not data:
        return None
    route = " (the strategy: git route)" if data.get("route") == "git" else ""
    tag = data.get("tag")
    commit = str(data.get("commit") or "?")[:12]
    where = f"git tag {tag} @ {commit}" if tag else "git"
    reason = f" ({data['reason']})" if data.get("reason") else ""
    return f"second opinion: {data.get('verdict')} from {where}{reason}{route}"


class ReleaseTracer(Protocol):
    """Traces a release to its git tag and rebuilds it from there (``SourceTracer``)."""

    def check_release(self, project: str, version: str) -> SourceResult: ...


class ProjectLocks:
    """One lock per project: traces of one project share a cached bare repository."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, project: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(project.lower(), threading.Lock())


class FileJudge(Protocol):
    """Judges one published file (``rebuilder.pipeline.Rebuilder``)."""

    def judge_file(self, file: IndexFile) -> FileResult: ...


class SecondOpinionJudge:
    """A fleet worker's judge that asks git about every mismatch, as ``rebuilder check
    --second-opinion`` does (a :class:`~rebuilder.worker.runner.FileJudge` itself).

    A mismatching wheel has its release traced to its git tag (the source check, which
    rebuilds the wheel from the tagged tree; its evidence below the same root), and the
    opinion is given by :func:`judged_with_opinion`: beside the verdict, or as the
    strategy when the git-tag route takes it, the file's evidence then describing the
    rebuild from git (so what the runner signs and keeps is that rebuild). A repository
    that cannot be reached leaves the opinion ``not checked`` and the verdict as it was.
    """

    def __init__(self, judge: FileJudge, tracer: ReleaseTracer, locks: ProjectLocks) -> None:
        self._judge = judge
        self._tracer = tracer
        self._locks = locks

    def judge_file(self, file: IndexFile) -> FileResult:
        result = self._judge.judge_file(file)
        if result.verdict is not Verdict.MISMATCH:
            return result
        with self._locks(file.project):
            try:
                source = self._tracer.check_release(file.project, file.version)
            except RebuilderError as exc:  # the tracer says so in its result; to be sure
                reason = f"not checked: {exc.diagnostics()}"
                source = SourceResult(
                    file.project, file.version, SourceVerdict.NO_SOURCE, reason=reason
                )
        judged = judged_with_opinion(result, source)
        if result.evidence:
            Evidence(Path(result.evidence)).write_result(judged)
        route = (judged.second_opinion or {}).get("route")
        logger.info("%s: second opinion from git: %s (route %s)", file.filename,
                    (judged.second_opinion or {}).get("verdict"), route)  # fmt: skip
        return judged
