"""The ``rebuilder`` command. The one place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, cast

from cli.campaign import add_campaign_commands
from cli.fleet import add_fleet_commands
from cli.log import add_log_commands
from cli.verify import add_rerun_command, add_verify_options
from cli.web import add_web_command
from rebuilder import __version__
from rebuilder.errors import RebuilderError, UsageError
from rebuilder.verdict import FileResult, Verdict

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from rebuilder.attest.publish import Attestor
    from rebuilder.settings import Settings
    from rebuilder.source.result import SourceResult
    from rebuilder.source.trace import SourceTracer

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_UNCHECKED = 2  # something could not be checked, or bad usage

_VERDICT_STYLE = {
    Verdict.REPRODUCIBLE: "bold green",
    Verdict.EQUIVALENT: "green",
    Verdict.MISMATCH: "bold red",
    Verdict.FAILED: "yellow",
    Verdict.UNSUPPORTED: "dim",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rebuilder",
        description="Independently rebuild PyPI releases in a hermetic container and judge "
        "them byte for byte against the published files.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser(
        "check",
        help="rebuild releases and print one verdict per published file",
        description="Rebuild every pure-Python wheel of the given releases from their sdist "
        "and compare it with the published wheel. Exit status: 0 when every file is "
        "reproducible, equivalent or unsupported; 1 when any file mismatches; 2 when any "
        "could not be checked (and none mismatched) or on bad usage.",
    )
    check.add_argument(
        "specs",
        nargs="+",
        metavar="SPEC",
        help="NAME==VERSION, pkg:pypi/NAME@VERSION, or NAME for the latest",
    )
    check.add_argument(
        "--index-url", help="simple API of the index (default: PyPI, or REBUILDER_INDEX_URL)"
    )
    check.add_argument("--out", type=Path, help="evidence folder (default ./rebuilds)")
    check.add_argument("--json", action="store_true", help="one JSON object per file and line")
    check.add_argument(
        "--no-attest",
        action="store_true",
        help="do not sign attestations (default: a bundle per file under OUT/pypi/)",
    )
    check.add_argument(
        "--source",
        action="store_true",
        help="also trace each release to its git tag: compare the sdist with the tagged "
        "tree and rebuild the sdist and wheel from git (docs/source-tracing.md)",
    )
    check.add_argument(
        "--second-opinion",
        action="store_true",
        help="when a wheel mismatches, trace the release to its git tag and rebuild it from "
        "there too; reported beside the verdict, or the strategy when the published wheel "
        "holds files the sdist lacks (docs/diagnosis.md). Implied by --source",
    )

    key = sub.add_parser("key", help="the signing key of this rebuilder")
    key_sub = key.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    generate = key_sub.add_parser("generate", help="make a new signing key")
    generate.add_argument("--algorithm", choices=["ed25519", "ecdsa-p256"], default="ed25519")
    generate.add_argument("--force", action="store_true", help="replace an existing key")
    key_sub.add_parser("show", help="print the key id and the public key (PEM)")

    verify = sub.add_parser(
        "verify",
        help="check signed attestations about a wheel file or a release, offline",
        description="Exit status 0 only when every signature checks with a trusted key, "
        "the attestations are about this very file, and the verdict is PASSED.",
    )
    verify.add_argument(
        "target", metavar="FILE_OR_SPEC", help="a local wheel/sdist, or NAME==VERSION"
    )
    verify.add_argument(
        "--attestations",
        type=Path,
        default=None,
        help="folder holding pypi/... bundles (default: the evidence folder)",
    )
    verify.add_argument(
        "--key",
        type=Path,
        action="append",
        default=[],
        help="trusted public key (PEM); repeat for rotation (default: this rebuilder's own key)",
    )
    verify.add_argument(
        "--log-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="trusted log key (name+hash+base64 note verifier key, or a file holding one) "
        "for the checkpoints of exported log proofs (default: the --key keys)",
    )
    add_verify_options(verify)
    add_rerun_command(sub)

    image = sub.add_parser("image", help="the build sandbox image")
    image_sub = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    image_sub.add_parser("build", help="build the sandbox image again now (bootstrapping its base)")
    image_sub.add_parser(
        "show", help="print the image reference and digest, building it if missing"
    )
    image_export = image_sub.add_parser(
        "export",
        help="docker save the sandbox image to FILE; provenances then record its sha256",
    )
    image_export.add_argument("file", type=Path, metavar="FILE")
    add_fleet_commands(sub)
    add_log_commands(sub)
    add_web_command(sub)
    add_campaign_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rebuilder`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses

    from rebuilder.logs import configure_logging  # noqa: PLC0415
    from rebuilder.settings import Settings  # noqa: PLC0415

    try:
        settings = Settings()
    except ValueError as exc:  # pydantic's ValidationError: a REBUILDER_* variable is wrong
        parser.error(f"bad settings in the environment: {exc}")
    configure_logging(args.verbose, settings.log_format)
    try:
        import truststore  # noqa: PLC0415 - only the entry point touches global TLS state

        truststore.inject_into_ssl()
        return _command(args.command)(args, settings)
    except UsageError as exc:
        parser.error(exc.diagnostics())  # exits 2
    except RebuilderError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc.diagnostics()}")
        return EXIT_UNCHECKED
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        return 130


Command = Callable[[argparse.Namespace, "Settings"], int]

# Where each command lives: its module is imported only when that command runs.
_COMMANDS = {
    "check": ("cli.main", "_check"),
    "image": ("cli.main", "_image"),
    "key": ("cli.main", "_key"),
    "verify": ("cli.main", "_verify"),
    "rerun": ("cli.verify", "rerun_command"),
    "db": ("cli.fleet", "db_command"),
    "watch": ("cli.fleet", "watch_command"),
    "status": ("cli.fleet", "status_command"),
    "web": ("cli.web", "web_command"),
    "worker": ("cli.fleet", "worker_command"),
    "scheduler": ("cli.fleet", "scheduler_command"),
    "fleet": ("cli.fleet", "fleet_command"),
    "health": ("cli.fleet", "health_command"),
    "campaign": ("cli.campaign", "campaign_command"),
    "audit": ("cli.campaign", "audit_command"),
    "log": ("cli.log", "log_command"),
    "export": ("cli.log", "export_command"),
}


def _command(name: str) -> Command:
    module, function = _COMMANDS[name]
    command: Command = getattr(importlib.import_module(module), function)
    return command


def _image(args: argparse.Namespace, settings: Settings) -> int:
    from cli.wiring import build_sandbox_image, image_choice  # noqa: PLC0415 - docker

    if args.image_command == "build" and settings.image is None:
        ref = build_sandbox_image(settings)
        print(f"{ref.reference}\t{ref.digest}")
        return EXIT_OK
    choice = image_choice(settings)
    if args.image_command == "export":
        from rebuilder.sandbox.image import export_image  # noqa: PLC0415 - docker

        described = export_image(choice.reference, args.file, settings.cache_dir)
        print(f"{args.file}\tsha256:{described.archive_sha256}\t{described.oci_reference}")
        return EXIT_OK
    print(f"{choice.reference}\t{choice.digest}")
    return EXIT_OK


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses

    from cli.wiring import check_rebuilder  # noqa: PLC0415
    from rebuilder.errors import NotFoundError  # noqa: PLC0415
    from rebuilder.spec import ReleaseSpec, parse_spec  # noqa: PLC0415

    specs = [parse_spec(s) for s in args.specs]
    if args.out is not None:
        settings = settings.model_copy(update={"out_dir": args.out})
    rebuilder, sandbox = check_rebuilder(settings, args.index_url)
    # The signing key (and cryptography) is loaded when the first file is signed.
    attestor = None if args.no_attest else cache(partial(_attestor, settings))
    tracer = _source_tracer(settings, args.index_url) if args.source else None
    sources: list[SourceResult] = []
    console = Console()
    err = Console(stderr=True)
    results: list[FileResult] = []
    unchecked: list[str] = []
    interactive = console.is_terminal and not args.json
    with _progress(err) as bar:
        for spec in specs:
            task = bar.add_task(f"{spec}: looking up", total=None)

            def stage(
                filename: str, what: str, task: TaskID = task, spec: ReleaseSpec = spec
            ) -> None:
                bar.update(task, description=f"{spec}: {filename}: {what}")

            try:
                version = spec.version or rebuilder.latest_version(spec.project)
                judged = rebuilder.check_release(spec.project, version, stage)
                sandbox.sweep()  # if no build did (a check of unknown releases leaves it)
                bar.update(task, description=f"{spec}: tracing the source if needed")
                tracer, source = _trace_if_needed(
                    tracer, args, settings, judged, (spec.project, version)
                )
                for sdist_route in judged:
                    result = _with_opinion(sdist_route, source)
                    results.append(result)
                    if args.json:
                        print(json.dumps(result.to_json(), sort_keys=True), flush=True)
                    elif not interactive:
                        print(_plain_line(result), flush=True)
                    # The statements say what the verdict says: a file the git-tag route
                    # took is attested as rebuilt from git (its evidence describes that).
                    if attestor is not None and not _attest_file(attestor(), result, err):
                        unchecked.append(result.filename)
                if source is not None and args.source:
                    sources.append(_print_source(source, args.json, interactive))
                    if attestor is not None and sources[-1].sdist_sha256 is not None:
                        _attest_source(attestor(), sources[-1])
            except NotFoundError as exc:
                unchecked.append(str(spec))
                err.print(f"[bold red]{spec}:[/] {exc.diagnostics()}")
            finally:
                bar.remove_task(task)
    if interactive:
        console.print(_table(results, sources))
        console.print(f"evidence: {settings.out_dir}")
    elif not args.json and (ranking := risk_ranking(results)):
        print(ranking, flush=True)
    return _source_exit_status(_exit_status(results, unchecked), sources)


def _progress(err: Console) -> Progress | _NoProgress:
    """A spinner per release on a terminal; elsewhere nothing (and no rich.progress)."""
    if not err.is_terminal:
        return _NoProgress()
    from rich.progress import (  # noqa: PLC0415 - each command imports what it uses
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    return Progress(*columns, console=err, transient=True)


class _NoProgress:
    """The progress display when stderr is no terminal: shows nothing."""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None) -> TaskID:
        del description, total
        return cast("TaskID", 0)

    def update(self, task: TaskID, description: str) -> None:
        del task, description

    def remove_task(self, task: TaskID) -> None:
        del task


def risk_ranking(results: Sequence[FileResult]) -> str | None:
    """The mismatches by risk, review first (the plain output's closing lines)."""
    mismatches = [r for r in results if r.verdict is Verdict.MISMATCH]
    if not mismatches:
        return None
    lines = ["mismatches by risk:"]
    for r in sorted(mismatches, key=lambda r: -_risk_rank(r)):
        lines.append(f"  {r.risk.value if r.risk else 'review':<9} {r.filename}")
    return "\n".join(lines)


def _attest_file(attestor: Attestor, result: FileResult, err: Console) -> bool:
    """Sign ``result``; False (said on stderr) when it cannot be, and the run goes on."""
    from rich.markup import escape  # noqa: PLC0415 - each command imports what it uses

    from rebuilder.attest.errors import AttestationError  # noqa: PLC0415

    try:
        attestor.attest(result)
    except AttestationError as exc:
        err.print(f"[bold red]{escape(result.filename)}:[/] not attested: {exc.diagnostics()}")
        return False
    return True


def _source_tracer(settings: Settings, index_url: str | None) -> SourceTracer:
    from cli.source_wiring import production_source_tracer  # noqa: PLC0415 - docker

    return production_source_tracer(settings, index_url=index_url)


def _trace_if_needed(
    tracer: SourceTracer | None,
    args: argparse.Namespace,
    settings: Settings,
    judged: Sequence[FileResult],
    release: tuple[str, str],
) -> tuple[SourceTracer | None, SourceResult | None]:
    """Trace the release with ``--source``, or for a second opinion on a mismatch."""
    mismatched = [r for r in judged if r.verdict is Verdict.MISMATCH]
    if tracer is None and args.second_opinion and mismatched:
        tracer = _source_tracer(settings, args.index_url)
    if tracer is None or not (args.source or mismatched):
        return tracer, None
    return tracer, tracer.check_release(*release)


def _with_opinion(result: FileResult, source: SourceResult | None) -> FileResult:
    """The result with the second opinion from git (docs/diagnosis.md), kept in evidence."""
    from rebuilder.evidence import Evidence  # noqa: PLC0415
    from rebuilder.second_opinion import judged_with_opinion  # noqa: PLC0415

    if source is None or result.verdict is not Verdict.MISMATCH:
        return result
    judged = judged_with_opinion(result, source)
    if judged is not result and result.evidence:
        Evidence(Path(result.evidence)).write_result(judged)
    return judged


def _print_source(source: SourceResult, as_json: bool, interactive: bool = False) -> SourceResult:
    from rebuilder.source.report import source_line  # noqa: PLC0415 - per command

    project, version = source.project, source.version
    if as_json:
        line = {"project": project, "version": version, "source": source.to_json()}
        print(json.dumps(line, sort_keys=True), flush=True)
    elif not interactive:  # interactive: a row of the verdict table
        print(source_line(source), flush=True)
    return source


def _attest_source(attestor: Attestor, source: SourceResult) -> None:
    from rebuilder.source.attest import write_source_bundle  # noqa: PLC0415

    write_source_bundle(
        attestor.root, source, attestor.signer, attestor.builder_id, attestor.clock()
    )


def _source_exit_status(status: int, sources: Sequence[SourceResult]) -> int:
    """An inconsistent source counts as a mismatch, a missing one as unchecked."""
    if not sources:
        return status
    from rebuilder.source.result import SourceVerdict  # noqa: PLC0415 - per command

    if status == EXIT_MISMATCH or any(s.verdict is SourceVerdict.INCONSISTENT for s in sources):
        return EXIT_MISMATCH
    if any(s.verdict is SourceVerdict.NO_SOURCE for s in sources):
        return EXIT_UNCHECKED
    return status


def _attestor(settings: Settings) -> Attestor:
    from cli.rerun import image_describer  # noqa: PLC0415 - docker
    from rebuilder.attest.publish import Attestor, load_or_create_key  # noqa: PLC0415

    signer = load_or_create_key(settings.signing_key_path)
    return Attestor(
        signer=signer,
        builder_id=settings.builder_id,
        root=settings.out_dir,
        describe_image=image_describer(settings),
        oss_rebuild=True,
    )


def _key(args: argparse.Namespace, settings: Settings) -> int:
    from rebuilder.attest.keys import (  # noqa: PLC0415 - each command imports what it uses
        KeyAlgorithm,
        generate_key,
        load_private_key,
        save_private_key,
        save_public_key,
    )
    from rebuilder.attest.publish import public_key_path  # noqa: PLC0415

    path = settings.signing_key_path
    if args.key_command == "generate":
        if path.exists() and not args.force:
            raise UsageError(
                f"{path} exists; --force replaces it (keep the old public key "
                "trusted while attestations signed with it are in use)"
            )
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        signer = generate_key(KeyAlgorithm(args.algorithm))
        save_private_key(signer, path, overwrite=args.force)
        save_public_key(signer.public_key, public_key_path(path))
    else:
        if not path.exists():
            raise UsageError(f"no signing key at {path}: run `rebuilder key generate`")
        signer = load_private_key(path)
    print(f"key id: {signer.key_id}\nprivate key: {path}\npublic key: {public_key_path(path)}")
    print(signer.public_key.to_pem(), end="")
    return EXIT_OK


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    from cli.verify import verify_command  # noqa: PLC0415 - each command imports what it uses

    return verify_command(args, settings)


def _exit_status(results: Sequence[FileResult], unchecked: Sequence[str]) -> int:
    if any(r.verdict is Verdict.MISMATCH for r in results):
        return EXIT_MISMATCH
    if unchecked or any(not r.verdict.is_ok for r in results):
        return EXIT_UNCHECKED
    return EXIT_OK


def _plain_line(result: FileResult) -> str:
    detail = result.reason or ", ".join(str(s) for s in result.stabilizers)
    if result.differences:
        detail = ", ".join(f"{d.kind.value}:{d.path}" for d in result.differences[:5])
    line = f"{result.verdict.value:<13} {result.filename}  {detail}".rstrip()
    from rebuilder.second_opinion import opinion_line  # noqa: PLC0415

    # the first line already gives a non-mismatch's reason or stabilizers: no second "why"
    why = why_line(result) if result.verdict is Verdict.MISMATCH else None
    extra = [x for x in (why, opinion_line(result)) if x]
    return "\n".join([line, *(f"  {x}" for x in extra)])


def why_line(result: FileResult, limit: int = 3) -> str | None:
    """One line saying why a non-reproducible file is so, worst risk first."""
    if result.verdict is Verdict.REPRODUCIBLE:
        return None
    if result.verdict is Verdict.EQUIVALENT:
        return "why: equal after " + ", ".join(str(s) for s in result.stabilizers)
    if result.verdict is not Verdict.MISMATCH:
        return f"why: {result.reason}" if result.reason else None
    risk = result.risk.value if result.risk else "review"
    if not result.diagnosis:
        return f"why [{risk}]: no diagnosis recorded"
    ranked = sorted(result.diagnosis, key=lambda d: (-d.risk.rank, d.path))
    parts = [f"{d.path}: {d.cause.value} ({d.detail})" for d in ranked[:limit]]
    more = f"; {len(ranked) - limit} more" if len(ranked) > limit else ""
    return f"why [{risk}]: " + "; ".join(parts) + more


def _risk_rank(result: FileResult) -> int:
    return -1 if result.risk is None else result.risk.rank


def _table(results: Sequence[FileResult], sources: Sequence[SourceResult] = ()) -> Table:
    from rich.markup import escape  # noqa: PLC0415 - each command imports what it uses
    from rich.table import Table  # noqa: PLC0415

    from rebuilder.source.report import SOURCE_STYLE, source_row  # noqa: PLC0415

    table = Table(title="rebuild verdicts")
    for column in ("file", "verdict", "details", "seconds"):
        table.add_column(column, overflow="fold")
    ranked = sorted(results, key=lambda r: (r.verdict is not Verdict.MISMATCH, -_risk_rank(r)))
    for r in ranked:
        if r.diagnosis:
            shown = sorted(r.diagnosis, key=lambda d: (-d.risk.rank, d.path))
            detail = f"risk {r.risk}\n" + "\n".join(
                f"{d.path}: {d.cause.value} ({d.detail})" for d in shown[:10]
            )
            if len(shown) > 10:
                detail += f"\n... {len(shown) - 10} more"
        elif r.differences:
            detail = "\n".join(f"{d.kind.value}: {d.path}" for d in r.differences[:10])
            if len(r.differences) > 10:
                detail += f"\n... {len(r.differences) - 10} more"
        elif r.stabilizers:
            detail = "after " + ", ".join(str(s) for s in r.stabilizers)
        else:
            detail = r.reason or ""
        if r.reason_class is not None:
            detail = f"[{r.reason_class.value}] {detail}"
        table.add_row(
            r.filename,
            f"[{_VERDICT_STYLE[r.verdict]}]{r.verdict.value}[/]",
            escape(detail),
            f"{r.seconds:.1f}",
        )
    for source in sources:
        name, verdict, details = source_row(source)
        style = SOURCE_STYLE[source.verdict]
        table.add_row(name, f"[{style}]{verdict}[/]", escape(details), f"{source.seconds:.1f}")
    return table


if __name__ == "__main__":
    sys.exit(main())
