"""``rebuilder campaign ...`` and ``rebuilder audit``: incident response from the terminal.

Selections are given as ``--select KIND:ARGUMENT`` (repeatable, combined as a union):

=====================  ===================================================================
``NAME==VERSION``      a release (also ``pkg:pypi/NAME@VERSION``, or a bare NAME: latest)
``specs:FILE``         specs one per line from a file (``-``: stdin)
``lock:FILE``          requirements.txt / uv.lock / pylock.toml / poetry.lock (``-``: stdin)
``project:A,B``        every release of these projects (``--window`` narrows by upload time)
``uploaded:S..U``      every recorded file uploaded in [S, U) (ISO 8601; a side may be empty)
``backend:RANGE``      wheels whose Generator is in range, e.g. ``hatchling>=1.25,<1.27``
``verdict:V[,V]``      files whose latest verdict is one of these (mismatch, failed)
=====================  ===================================================================
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rebuilder.errors import UsageError
from rebuilder.verdict import Risk, Verdict
from reports.formats import ReportFormat

if TYPE_CHECKING:
    from rich.console import Console

    from rebuilder.campaigns.audit import AuditLine, AuditResult
    from rebuilder.campaigns.model import Finding, Progress
    from rebuilder.campaigns.selection import LockInput, Selection
    from rebuilder.campaigns.store import CampaignStore, PostgresCampaignStore
    from rebuilder.index.model import IndexFile
    from rebuilder.index.simple import SimpleIndex
    from rebuilder.settings import Settings
    from rebuilder.worker.queue import Dispatcher, JobRunner

logger = logging.getLogger(__name__)

_KINDS = ("specs", "lock", "project", "uploaded", "backend", "verdict", "spec")


def add_campaign_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``campaign`` and ``audit`` on the main parser."""
    campaign = sub.add_parser(
        "campaign",
        help="incident response: bulk-rebuild a selection at top priority",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = campaign.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")

    start = actions.add_parser("start", help="select files and rebuild them at top priority")
    start.add_argument("--name", required=True, help="what the campaign is about")
    start.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="KIND:ARG",
        help="a selection (repeatable): NAME==VERSION, specs:FILE, lock:FILE, project:A,B, "
        "uploaded:SINCE..UNTIL, backend:RANGE, verdict:mismatch,failed",
    )
    start.add_argument(
        "--window", metavar="SINCE..UNTIL", help="only files uploaded then (project: selections)"
    )
    start.add_argument("--dry-run", action="store_true", help="count the files, start nothing")
    start.add_argument(
        "--force", action="store_true", help="rebuild even files that already have a verdict"
    )
    start.add_argument("--image", metavar="REF", help="rebuild on this sandbox image (by digest)")
    start.add_argument("--wait", action="store_true", help="follow until every file is judged")
    start.add_argument("--json", action="store_true", help="print JSON")

    status = actions.add_parser("status", help="progress of a campaign")
    status.add_argument("id", type=int)
    status.add_argument("--follow", action="store_true", help="follow with a progress bar")
    status.add_argument("--json", action="store_true", help="print JSON")

    cancel = actions.add_parser("cancel", help="withdraw a campaign's queued rebuilds")
    cancel.add_argument("id", type=int)

    report = actions.add_parser("report", help="the campaign's report")
    report.add_argument("id", type=int)
    report.add_argument("--format", choices=[f.value for f in ReportFormat], default="md")
    report.add_argument("--out", type=Path, help="write here instead of stdout")
    report.add_argument("--base-url", default="", help="status site URL for the links")

    listing = actions.add_parser("list", help="campaigns, newest first")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print JSON")

    audit_parser = sub.add_parser(
        "audit",
        help="do the dependencies a lock file pins verify? (CI gate)",
        description="Look up every file a requirements.txt, uv.lock, pylock.toml or "
        "poetry.lock pins (hashes checked against the index) in the fleet's verdicts. "
        "Exit status: 0 when every pinned file is reproducible, equivalent or unsupported; "
        "1 when any mismatch has risk 'review' or a lock hash differs from the index; 2 when "
        "some could not be checked (never rebuilt, failed, pending, not on the index). "
        "Mismatches whose differences are all benign packaging are reported separately "
        "and fail only with --fail-on-packaging. "
        "With --local, no fleet: every pinned file is rebuilt on this machine.",
    )
    audit_parser.add_argument(
        "--fail-on-packaging",
        action="store_true",
        help="mismatches of risk 'packaging' fail the gate too (exit 1)",
    )
    audit_parser.add_argument("file", metavar="FILE", help="the lock file (-: stdin)")
    audit_parser.add_argument(
        "--rebuild", action="store_true", help="start a campaign for the pinned files first"
    )
    audit_parser.add_argument("--wait", action="store_true", help="with --rebuild: wait for it")
    audit_parser.add_argument(
        "--timeout", type=float, default=None, help="with --wait: give up after this many s"
    )
    audit_parser.add_argument("--json", action="store_true", help="print JSON")
    audit_parser.add_argument(
        "--local",
        action="store_true",
        help="no fleet: rebuild every pinned file here with the one-shot engine "
        "(as `rebuilder check`); settled verdicts are cached by sha256",
    )
    audit_parser.add_argument(
        "--jobs", type=int, default=2, metavar="N", help="with --local: rebuilds at a time"
    )
    audit_parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="with --local: the verdict cache (default: REBUILDER_CACHE_DIR/audit)",
    )


# -- wiring ------------------------------------------------------------------------------


@dataclass
class _Fleet:
    store: PostgresCampaignStore
    index: SimpleIndex
    dispatcher: Dispatcher | None


def _no_runner() -> JobRunner:
    from rebuilder.campaigns import CampaignError  # noqa: PLC0415 - per command

    raise CampaignError("the command line only sends attempts; workers run them")


@contextmanager
def _fleet(settings: Settings, *, dispatch: bool = False) -> Iterator[_Fleet]:
    import dramatiq.errors  # noqa: PLC0415 - each command imports what it uses

    from cli.broker import rabbitmq_broker  # noqa: PLC0415
    from rebuilder.campaigns.store import PostgresCampaignStore  # noqa: PLC0415
    from rebuilder.index.simple import SimpleIndex  # noqa: PLC0415
    from rebuilder.store.db import open_pool  # noqa: PLC0415
    from rebuilder.worker.queue import (  # noqa: PLC0415
        ActorDispatcher,
        declare_rebuild_actor,
    )

    pool = open_pool(settings.database_url, max_size=4, timeout=10.0)
    broker = None
    try:
        dispatcher: Dispatcher | None = None
        if dispatch:
            try:
                broker = rabbitmq_broker(settings.broker_url)
                actor = declare_rebuild_actor(broker, _no_runner, queue_name=settings.queue_name)
                dispatcher = ActorDispatcher(actor)
            except (
                dramatiq.errors.DramatiqError,
                OSError,
            ) as exc:  # the scheduler sends the unsent ones
                logger.warning("no broker (%s): the scheduler will send the rebuilds", exc)
        index = SimpleIndex(
            settings.index_url, settings.cache_dir / "index", page_ttl_seconds=settings.page_ttl
        )
        yield _Fleet(PostgresCampaignStore(pool), index, dispatcher)
    finally:
        if broker is not None:
            broker.close()
        pool.close()


def _read(path: str, stdin: TextIO) -> LockInput:
    from rebuilder.campaigns.selection import LockInput  # noqa: PLC0415 - per command

    if path == "-":
        return LockInput("-", stdin.read())
    try:
        return LockInput(Path(path).name, Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None


def selection_from_args(
    selects: list[str], window: str | None, stdin: TextIO = sys.stdin
) -> Selection:
    """A :class:`Selection` from ``--select`` values."""
    from rebuilder.campaigns.selection import (  # noqa: PLC0415 - per command
        Selection,
        parse_specs_text,
        parse_window,
    )

    specs: list[str] = []
    locks: list[LockInput] = []
    projects: list[str] = []
    uploaded = None
    backends: list[str] = []
    verdicts: list[Verdict] = []
    for value in selects:
        kind, sep, arg = value.partition(":")
        if not sep or kind not in _KINDS:  # a spec (pkg:pypi/... included)
            specs.append(value)
            continue
        if not arg.strip():
            raise UsageError(f"--select {value!r}: nothing after {kind}:")
        if kind == "spec":
            specs.append(arg)
        elif kind == "specs":
            specs += parse_specs_text(_read(arg, stdin).text)
        elif kind == "lock":
            locks.append(_read(arg, stdin))
        elif kind == "project":
            projects += [p.strip() for p in arg.split(",") if p.strip()]
        elif kind == "uploaded":
            uploaded = parse_window(arg)
        elif kind == "backend":
            backends.append(arg)
        else:
            try:
                verdicts += [Verdict(v.strip()) for v in arg.split(",") if v.strip()]
            except ValueError:
                raise UsageError(f"not a verdict in {value!r}") from None
    if window and not projects:
        raise UsageError("--window narrows project: selections; give one")
    return Selection(
        specs=tuple(specs),
        locks=tuple(locks),
        projects=tuple(projects),
        project_window=parse_window(window) if window else (None, None),
        uploaded=uploaded,
        backends=tuple(backends),
        verdicts=tuple(verdicts),
    )


# -- commands ----------------------------------------------------------------------------


def campaign_command(args: argparse.Namespace, settings: Settings) -> int:
    """``rebuilder campaign ACTION``."""
    handlers = {
        "start": _start,
        "status": _status,
        "cancel": _cancel,
        "report": _report,
        "list": _list,
    }
    return handlers[args.campaign_command](args, settings)


def _start(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses
    from rich.markup import escape  # noqa: PLC0415

    from rebuilder.campaigns import campaign as campaigns  # noqa: PLC0415
    from rebuilder.campaigns.selection import resolve  # noqa: PLC0415

    console = Console()
    selection = selection_from_args(args.select, args.window)
    with _fleet(settings, dispatch=not args.dry_run) as fleet:
        if args.dry_run:
            resolved = resolve(selection, fleet.store, fleet.index)
            if args.json:
                print(json.dumps(resolved.to_json(), indent=2))
                return 0
            console.print(
                f"would rebuild {len(resolved.picks)} files "
                f"({resolved.unknown} not yet in the database)"
            )
            for kind, n in resolved.counts.items():
                console.print(f"  {escape(kind)}: {n}")
            _print_findings(console, resolved.findings)
            return 0
        started = campaigns.start(
            args.name,
            selection,
            store=fleet.store,
            index=fleet.index,
            dispatcher=fleet.dispatcher,
            force=args.force,
            image=args.image,
        )
        created = started.created
        if args.json and not args.wait:
            print(
                json.dumps(
                    {
                        "id": started.campaign_id,
                        "files": len(started.resolved.picks),
                        "queued": len(created.queued),
                        "adopted": len(created.adopted),
                        "reused": created.reused,
                        "findings": [f.to_json() for f in started.resolved.findings],
                    }
                )
            )
            return 0
        console.print(
            f"campaign [bold]{started.campaign_id}[/]: {len(started.resolved.picks)} files, "
            f"{len(created.queued)} queued, {len(created.adopted)} already queued, "
            f"{created.reused} answered by an existing verdict"
        )
        _print_findings(console, started.resolved.findings)
        if not args.wait:
            return 0
        return _follow(fleet.store, started.campaign_id, console, as_json=args.json)


def _print_findings(console: Console, findings: Sequence[Finding]) -> None:
    from rich.markup import escape  # noqa: PLC0415 - each command imports what it uses

    for f in findings:
        console.print(
            f"  [yellow]{escape(f.kind.value)}[/] {escape(f.subject)}: {escape(f.detail)}"
        )


def _follow(store: CampaignStore, campaign_id: int, console: Console, *, as_json: bool) -> int:
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as Bar  # noqa: PLC0415

    from rebuilder.campaigns import campaign as campaigns  # noqa: PLC0415
    from rebuilder.campaigns.audit import audit_campaign  # noqa: PLC0415

    columns = (
        TextColumn(f"campaign {campaign_id}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Bar(*columns, console=console, disable=as_json or not console.is_terminal) as bar:
        task = bar.add_task("rebuilding", total=None, detail="")

        def show(p: Progress) -> None:
            bar.update(
                task,
                total=p.total,
                completed=p.done + p.cancelled,
                detail=_progress_text(p),
            )

        campaigns.wait(store, campaign_id, on_progress=show)
    result = audit_campaign(store, campaign_id)
    return _print_result(console, result, as_json=as_json)


def _progress_text(p: Progress) -> str:
    verdicts = ", ".join(f"{v.value} {n}" for v, n in p.verdicts.items() if n)
    return f"queued {p.queued} · running {p.running}" + (f" · {verdicts}" if verdicts else "")


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses
    from rich.markup import escape  # noqa: PLC0415

    from rebuilder.campaigns import campaign as campaigns  # noqa: PLC0415

    console = Console()
    with _fleet(settings) as fleet:
        if args.follow:
            campaigns.get(fleet.store, args.id)
            return _follow(fleet.store, args.id, console, as_json=args.json)
        row, progress = campaigns.status(fleet.store, args.id)
        if args.json:
            out = {"id": row.id, "name": row.name, "status": row.status.value}
            out["progress"] = progress.to_json()
            print(json.dumps(out))
            return 0
        console.print(f"campaign {row.id} [bold]{escape(row.name)}[/]: {row.status.value}")
        console.print(f"  {progress.done}/{progress.total} judged · {_progress_text(progress)}")
    return 0


def _cancel(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses

    from rebuilder.campaigns import campaign as campaigns  # noqa: PLC0415

    with _fleet(settings) as fleet:
        withdrawn = campaigns.cancel(fleet.store, args.id)
    Console().print(
        f"campaign {args.id} cancelled: {len(withdrawn)} queued rebuilds withdrawn "
        "(running ones finish and are reported)"
    )
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from reports.campaign_report import build_report, render  # noqa: PLC0415 - per command

    with _fleet(settings) as fleet:
        text = render(build_report(fleet.store, args.id, base_url=args.base_url), args.format)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses
    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    with _fleet(settings) as fleet:
        rows = [
            (row, fleet.store.progress(row.id)) for row in fleet.store.campaigns(limit=args.limit)
        ]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "name": r.name,
                        "status": r.status.value,
                        "created_at": r.created_at.isoformat(),
                        "progress": p.to_json(),
                    }
                    for r, p in rows
                ]
            )
        )
        return 0
    table = Table("id", "name", "status", "judged", "mismatch", "failed", "started")
    for r, p in rows:
        table.add_row(
            str(r.id),
            escape(r.name),
            r.status.value,
            f"{p.done}/{p.total}",
            str(p.verdicts.get(Verdict.MISMATCH, 0)),
            str(p.verdicts.get(Verdict.FAILED, 0)),
            f"{r.created_at:%Y-%m-%d %H:%M}",
        )
    Console().print(table)
    return 0


def audit_command(args: argparse.Namespace, settings: Settings) -> int:
    """``rebuilder audit FILE``."""
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses
    from rich.markup import escape  # noqa: PLC0415

    from rebuilder.campaigns import campaign as campaigns  # noqa: PLC0415
    from rebuilder.campaigns.audit import audit, audit_campaign  # noqa: PLC0415
    from rebuilder.campaigns.selection import Selection  # noqa: PLC0415

    console = Console(stderr=args.json)
    lock = _read(args.file, sys.stdin)
    if args.wait and not args.rebuild:
        raise UsageError("--wait goes with --rebuild")
    if args.local:
        if args.rebuild:
            raise UsageError("--local rebuilds here; --rebuild asks the fleet: give one")
        return _print_result(console, _audit_local(args, settings, lock), as_json=args.json)
    with _fleet(settings, dispatch=args.rebuild) as fleet:
        if not args.rebuild:
            result = audit(
                lock,
                store=fleet.store,
                index=fleet.index,
                fail_on_packaging=args.fail_on_packaging,
            )
            return _print_result(console, result, as_json=args.json)
        started = campaigns.start(
            f"audit of {lock.name}",
            Selection(locks=(lock,)),
            store=fleet.store,
            index=fleet.index,
            dispatcher=fleet.dispatcher,
        )
        console.print(f"campaign {started.campaign_id} started for {escape(lock.name)}")
        if args.wait:
            campaigns.wait(fleet.store, started.campaign_id, timeout=args.timeout)
        result = audit_campaign(
            fleet.store, started.campaign_id, fail_on_packaging=args.fail_on_packaging
        )
        return _print_result(console, result, as_json=args.json)


def _audit_local(args: argparse.Namespace, settings: Settings, lock: LockInput) -> AuditResult:
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses
    from rich.markup import escape  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as Bar  # noqa: PLC0415

    from cli.wiring import image_choice, production_rebuilder  # noqa: PLC0415 - docker
    from rebuilder.campaigns.local_audit import VerdictCache, audit_local  # noqa: PLC0415
    from rebuilder.index.simple import SimpleIndex  # noqa: PLC0415

    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    rebuilder = production_rebuilder(settings)
    index = SimpleIndex(
        settings.index_url, settings.cache_dir / "index", page_ttl_seconds=settings.page_ttl
    )
    cache = VerdictCache(args.cache or settings.cache_dir / "audit")
    image = image_choice(settings).digest
    err = Console(stderr=True)
    with Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task(f"auditing {escape(lock.name)} here", total=None)
        done = [0, 0]

        def planned(files: Sequence[IndexFile]) -> None:
            done[1] = len(files)
            bar.update(task, total=len(files))
            if not err.is_terminal:
                err.print(f"{len(files)} pinned files; rebuilding {args.jobs} at a time")

        def answered(file: IndexFile, line: AuditLine, cached: bool) -> None:
            done[0] += 1
            bar.advance(task)
            if not err.is_terminal:
                origin = " (cached)" if cached else ""
                err.print(
                    f"[{done[0]}/{done[1]}] {line.state.value} {escape(file.filename)}{origin}",
                    highlight=False,
                )

        return audit_local(
            lock,
            index=index,
            judge=rebuilder.judge_file,
            cache=cache,
            image=image,
            jobs=args.jobs,
            report=answered,
            on_plan=planned,
            fail_on_packaging=args.fail_on_packaging,
        )


_STATE_STYLE = {
    "verified": "green",
    "mismatch": "bold red",
    "failed": "yellow",
    "unsupported": "dim",
    "pending": "cyan",
    "unknown": "magenta",
    "not-vouched": "bold red",
}


def _print_result(console: Console, result: AuditResult, *, as_json: bool) -> int:
    from rich.markup import escape  # noqa: PLC0415 - each command imports what it uses
    from rich.table import Table  # noqa: PLC0415

    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return result.exit_code
    table = Table("state", "risk", "file", "details")
    ranked = sorted(
        result.lines, key=lambda x: -(x.gate_risk.rank if x.gate_risk is not None else -1)
    )
    for line in ranked:
        style = _STATE_STYLE.get(line.state.value, "")
        details = "; ".join(x for x in (line.why, line.note, line.reason) if x)
        risk = line.gate_risk.value if line.gate_risk is not None else ""
        table.add_row(
            f"[{style}]{line.state.value}[/]", risk, escape(line.filename), escape(details)
        )
    console.print(table)
    _print_findings(console, result.findings)
    counts = ", ".join(f"{s.value} {n}" for s, n in result.counts.items() if n)
    console.print(f"{len(result.lines)} files: {counts or 'none'} (exit {result.exit_code})")
    risks = result.mismatch_risks
    if any(risks.values()):
        gate = "fails" if result.fail_on_packaging else "does not fail (--fail-on-packaging)"
        console.print(
            f"mismatches: review {risks[Risk.REVIEW]}, packaging {risks[Risk.PACKAGING]} "
            f"(packaging {gate} the gate)"
        )
    return result.exit_code
