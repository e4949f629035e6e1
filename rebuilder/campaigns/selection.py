"""Which published files a campaign rebuilds: every kind of selection, combinable.

A :class:`Selection` holds what the responder asked for:

- ``specs``: ``name==version``, ``pkg:pypi/name@version`` or a bare name (its latest
  release), from arguments, a file or stdin;
- ``locks``: requirements files (with ``--hash``), ``uv.lock``, ``pylock.toml`` and
  ``poetry.lock``. The files a lock vouches for are picked; a hash in the lock that the
  index does not serve is a finding of its own (:data:`FindingKind.LOCK_HASH`);
- ``projects``: every release of these projects, optionally only files uploaded in a
  window (``project_window``);
- ``uploaded``: every recorded file uploaded in a window, among the projects the
  database knows;
- ``backends``: wheels whose ``WHEEL`` Generator names a backend in a version range,
  e.g. ``hatchling>=1.25,<1.27``;
- ``verdicts``: files whose latest verdict is one of these (``mismatch``, ``failed``).

:func:`resolve` reads the index and the database and returns the union of the picks
(each file once, with every reason that picked it) and the findings. It writes nothing,
so it is the dry run; :func:`record_picks` records the files the database does not
know yet, before a campaign is created over them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from rebuilder.campaigns import CampaignError
from rebuilder.campaigns.locks import LockContents, Pin, parse_lock
from rebuilder.campaigns.model import Finding, FindingKind
from rebuilder.campaigns.store import SelectionStore
from rebuilder.errors import NotFoundError, RebuilderError, UsageError
from rebuilder.index.model import Index, IndexFile
from rebuilder.spec import parse_spec
from rebuilder.verdict import Verdict

logger = logging.getLogger(__name__)

Window = tuple[datetime | None, datetime | None]


@dataclass(frozen=True)
class LockInput:
    """A requirements or lock file as given: a name (for messages and format) and text."""

    name: str
    text: str


@dataclass(frozen=True)
class Selection:
    """Everything a responder selected; the kinds combine as a union."""

    specs: tuple[str, ...] = ()
    locks: tuple[LockInput, ...] = ()
    projects: tuple[str, ...] = ()
    project_window: Window = (None, None)
    uploaded: Window | None = None
    backends: tuple[str, ...] = ()
    verdicts: tuple[Verdict, ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.specs
            or self.locks
            or self.projects
            or self.uploaded
            or self.backends
            or self.verdicts
        )

    def to_json(self) -> dict[str, Any]:
        """What ``campaigns.selection`` keeps (locks by name, size and sha256, not text)."""
        out: dict[str, Any] = {}
        if self.specs:
            out["specs"] = list(self.specs)
        if self.locks:
            out["locks"] = [
                {
                    "name": lock.name,
                    "bytes": len(lock.text.encode()),
                    "sha256": hashlib.sha256(lock.text.encode()).hexdigest(),
                }
                for lock in self.locks
            ]
        if self.projects:
            out["projects"] = list(self.projects)
            if self.project_window != (None, None):
                out["project_window"] = _window_json(self.project_window)
        if self.uploaded is not None:
            out["uploaded"] = _window_json(self.uploaded)
        if self.backends:
            out["backends"] = list(self.backends)
        if self.verdicts:
            out["verdicts"] = [v.value for v in self.verdicts]
        return out


def _window_json(window: Window) -> dict[str, str | None]:
    since, until = window
    return {
        "since": None if since is None else since.isoformat(),
        "until": None if until is None else until.isoformat(),
    }


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or time; UTC when no zone is given."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_window(text: str) -> Window:
    """``SINCE..UNTIL`` (either side may be empty): files uploaded in [since, until)."""
    since, sep, until = text.partition("..")
    if not sep:
        raise UsageError(f"not a time window: {text!r} (expected SINCE..UNTIL)")
    window = (
        parse_time(since) if since.strip() else None,
        parse_time(until) if until.strip() else None,
    )
    if window[0] and window[1] and window[0] >= window[1]:
        raise UsageError(f"empty time window: {text!r}")
    return window


def parse_specs_text(text: str) -> list[str]:
    """Specs one per line (or separated by spaces); ``#`` starts a comment."""
    specs = []
    for line in text.splitlines():
        specs.extend(re.sub(r"#.*$", "", line).split())
    return specs


@dataclass(frozen=True)
class BackendRange:
    """A build backend and a version range, e.g. ``hatchling>=1.25,<1.27``."""

    text: str
    name: str  # normalized
    requirement: Requirement

    @classmethod
    def parse(cls, text: str) -> BackendRange:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            raise UsageError(f"not a backend and version range: {text!r}") from None
        if requirement.url or requirement.marker or requirement.extras:
            raise UsageError(f"a backend range is NAME and versions only: {text!r}")
        return cls(text, canonicalize_name(requirement.name), requirement)

    def matches(self, generator: str) -> bool:
        """True when the Generator line (``name version`` / ``name (version)``) is in range."""
        found = parse_generator(generator)
        if found is None or found[0] != self.name:
            return False
        return self.requirement.specifier.contains(found[1], prereleases=True)


_GENERATOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*\(?\s*v?([^\s()]+)\s*\)?")


def parse_generator(line: str) -> tuple[str, Version] | None:
    """(normalized backend name, version) of a WHEEL Generator line, if it has both."""
    match = _GENERATOR.match(line)
    if match is None:
        return None
    try:
        return canonicalize_name(match.group(1)), Version(match.group(2))
    except InvalidVersion:
        return None


@dataclass
class Pick:
    """One selected file; ``file_id`` is None when the database does not know it yet."""

    file: IndexFile
    file_id: int | None
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        return "; ".join(self.notes) if self.notes else None


@dataclass
class Resolved:
    """The files a selection picked, what it found, and how many files each kind gave."""

    picks: dict[str, Pick] = field(default_factory=dict)  # by filename
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def unknown(self) -> int:
        """Files the database does not know yet (they are recorded when the campaign starts)."""
        return sum(p.file_id is None for p in self.picks.values())

    def add(
        self, file: IndexFile, file_id: int | None, reason: str, note: str | None = None
    ) -> None:
        pick = self.picks.get(file.filename)
        if pick is None:
            pick = self.picks[file.filename] = Pick(file, file_id)
        elif pick.file_id is None:
            pick.file_id = file_id
        if reason not in pick.reasons:
            pick.reasons.append(reason)
        if note and note not in pick.notes:
            pick.notes.append(note)

    def to_json(self) -> dict[str, Any]:
        """The dry run's answer."""
        return {
            "files": len(self.picks),
            "unknown_to_database": self.unknown,
            "by_kind": dict(self.counts),
            "findings": [f.to_json() for f in self.findings],
        }


class _Resolver:
    def __init__(self, store: SelectionStore, index: Index) -> None:
        self.store = store
        self.index = index
        self.out = Resolved()

    def _known(self, files: Sequence[IndexFile]) -> dict[str, int]:
        rows = self.store.files_by_filename(f.filename for f in files)
        return {name: row.id for name, row in rows.items()}

    def _add_index_files(
        self, files: Sequence[IndexFile], reason: str, notes: Mapping[str, str] | None = None
    ) -> int:
        known = self._known(files)
        for file in files:
            self.out.add(file, known.get(file.filename), reason, (notes or {}).get(file.filename))
        return len(files)

    def _release(self, project: str, version: str) -> Sequence[IndexFile] | None:
        try:
            return self.index.release_files(project, version)
        except NotFoundError:
            self.out.findings.append(
                Finding(
                    FindingKind.NOT_FOUND,
                    f"{project}=={version}",
                    "the index has no such release",
                )
            )
            return None

    def specs(self, specs: Iterable[str]) -> None:
        total = 0
        for text in specs:
            spec = parse_spec(text)
            version = spec.version or self._latest(spec.project)
            if version is None:
                continue
            files = self._release(spec.project, version)
            if files is not None:
                total += self._add_index_files(files, f"spec {spec.project}=={version}")
        self.out.counts["specs"] = total

    def _latest(self, project: str) -> str | None:
        try:
            files = self.index.project_files(project)
        except NotFoundError:
            self.out.findings.append(
                Finding(FindingKind.NOT_FOUND, project, "the index has no such project")
            )
            return None
        versions = []
        for f in files:
            try:
                parsed = Version(f.version)
            except InvalidVersion:
                continue
            if not f.yanked and not parsed.is_prerelease:
                versions.append((parsed, f.version))
        if not versions:
            self.out.findings.append(
                Finding(FindingKind.NOT_FOUND, project, "no final, unyanked release on the index")
            )
            return None
        return max(versions)[1]

    def lock(self, lock: LockInput) -> None:
        contents: LockContents = parse_lock(lock.name, lock.text)
        for skipped in contents.skipped:
            self.out.findings.append(
                Finding(FindingKind.SKIPPED, skipped.entry, f"{lock.name}: {skipped.reason}")
            )
        total = 0
        for pin in contents.pins:
            total += self._pin(pin, lock.name)
        self.out.counts[f"lock {lock.name}"] = total

    def _pin(self, pin: Pin, lock_name: str) -> int:
        files = self._release(pin.project, pin.version)
        if files is None:
            return 0
        reason = f"lock {lock_name}"
        if not pin.files:  # no hashes: the whole release
            return self._add_index_files(files, reason)
        by_name = {f.filename: f for f in files}
        by_hash = {f.sha256.lower(): f for f in files}
        chosen: dict[str, IndexFile] = {}
        notes: dict[str, str] = {}
        stray: list[str] = []
        for locked in pin.files:
            if locked.filename is not None:
                served = by_name.get(locked.filename)
                if served is None:
                    self.out.findings.append(
                        Finding(
                            FindingKind.NOT_FOUND,
                            locked.filename,
                            f"{lock_name} pins {pin.spec} to this file; the index does not list it",
                        )
                    )
                    continue
                chosen[served.filename] = served
                if served.sha256.lower() != locked.sha256:
                    note = (
                        f"{lock_name} expects sha256 {locked.sha256}, "
                        f"the index serves {served.sha256.lower()}"
                    )
                    notes[served.filename] = note
                    self.out.findings.append(Finding(FindingKind.LOCK_HASH, served.filename, note))
            elif locked.sha256 in by_hash:
                served = by_hash[locked.sha256]
                chosen[served.filename] = served
            else:
                stray.append(locked.sha256)
        if stray:
            detail = (
                f"{lock_name} accepts {len(stray)} sha256 that no file of {pin.spec} on the "
                f"index has: {', '.join(s[:16] + '…' for s in stray[:5])}"
            )
            self.out.findings.append(Finding(FindingKind.LOCK_HASH, pin.spec, detail))
            if not chosen:  # none of the lock's files exist: judge what the index serves
                chosen = dict(by_name)
                notes = dict.fromkeys(by_name, detail)
        return self._add_index_files(list(chosen.values()), reason, notes)

    def projects(self, names: Iterable[str], window: Window) -> None:
        since, until = window
        total = 0
        for name in names:
            project = parse_spec(name).project
            try:
                files = self.index.project_files(project)
            except NotFoundError:
                self.out.findings.append(
                    Finding(FindingKind.NOT_FOUND, project, "the index has no such project")
                )
                continue
            in_window = [f for f in files if _in_window(f.upload_time, since, until)]
            total += self._add_index_files(in_window, f"project {project}")
        self.out.counts["projects"] = total

    def uploaded(self, window: Window) -> None:
        rows = self.store.uploaded_between(*window)
        for row in rows:
            self.out.add(row.to_index_file(), row.id, "uploaded in window")
        self.out.counts["uploaded"] = len(rows)

    def backends(self, ranges: Iterable[str]) -> None:
        total = 0
        for text in ranges:
            wanted = BackendRange.parse(text)
            for row, generator in self.store.wheels_with_generator_like(wanted.name):
                if wanted.matches(generator):
                    self.out.add(row.to_index_file(), row.id, f"backend {wanted.text}")
                    total += 1
        unknown = self.store.wheels_without_generator()
        if unknown:
            self.out.findings.append(
                Finding(
                    FindingKind.NO_GENERATOR,
                    "backend selection",
                    f"{unknown} recorded wheels have no Generator read yet and cannot be "
                    "matched (workers read it when they rebuild a wheel)",
                )
            )
        self.out.counts["backends"] = total

    def verdicts(self, verdicts: Iterable[Verdict]) -> None:
        wanted = list(verdicts)
        rows = self.store.latest_verdict_in(wanted)
        label = "latest verdict " + "/".join(v.value for v in wanted)
        for row in rows:
            self.out.add(row.to_index_file(), row.id, label)
        self.out.counts["verdicts"] = len(rows)


def _in_window(when: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    if since is None and until is None:
        return True
    if when is None:
        return False
    return (since is None or when >= since) and (until is None or when < until)


def resolve(selection: Selection, store: SelectionStore, index: Index) -> Resolved:
    """The files ``selection`` picks and what it found; reads only (the dry run)."""
    if selection.empty:
        raise UsageError("the selection is empty: give at least one --select")
    resolver = _Resolver(store, index)
    try:
        if selection.specs:
            resolver.specs(selection.specs)
        for lock in selection.locks:
            resolver.lock(lock)
        if selection.projects:
            resolver.projects(selection.projects, selection.project_window)
        if selection.uploaded is not None:
            resolver.uploaded(selection.uploaded)
        if selection.backends:
            resolver.backends(selection.backends)
        if selection.verdicts:
            resolver.verdicts(selection.verdicts)
    except UsageError:
        raise
    except RebuilderError as exc:
        raise CampaignError(f"the selection could not be resolved: {exc.diagnostics()}") from exc
    out = resolver.out
    logger.info(
        "selection: %s files (%s new), %s findings", len(out.picks), out.unknown, len(out.findings)
    )
    return out


def record_picks(resolved: Resolved, store: SelectionStore) -> dict[int, str | None]:
    """Record the picked files the database does not know; {file id: note} of every pick."""
    releases: dict[tuple[str, str], list[IndexFile]] = defaultdict(list)
    for pick in resolved.picks.values():
        if pick.file_id is None:
            releases[(pick.file.project, pick.file.version)].append(pick.file)
    for (project, version), files in sorted(releases.items()):
        store.record_release(project, version, files)
    if releases:
        known = store.files_by_filename(p.file.filename for p in resolved.picks.values())
        for pick in resolved.picks.values():
            if pick.file_id is None:
                row = known.get(pick.file.filename)
                if row is None:
                    raise CampaignError(f"{pick.file.filename} could not be recorded")
                pick.file_id = row.id
    return {p.file_id: p.note for p in resolved.picks.values() if p.file_id is not None}
