"""The ``rebuilder`` command. The one place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from rebuilder import __version__
from rebuilder.errors import NotFoundError, RebuilderError, UsageError
from rebuilder.settings import Settings
from rebuilder.spec import ReleaseSpec, parse_spec
from rebuilder.verdict import FileResult, Verdict

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

    image = sub.add_parser("image", help="the build sandbox image")
    image_sub = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    image_sub.add_parser("build", help="build the sandbox image again now (bootstrapping its base)")
    image_sub.add_parser(
        "show", help="print the image reference and digest, building it if missing"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rebuilder`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        import truststore  # noqa: PLC0415 - only the entry point touches global TLS state

        truststore.inject_into_ssl()
        settings = Settings()
        if args.command == "check":
            return _check(args, settings)
        if args.command == "image":
            return _image(args, settings)
    except UsageError as exc:
        parser.error(exc.diagnostics())  # exits 2
    except RebuilderError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc.diagnostics()}")
        return EXIT_UNCHECKED
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        return 130
    return EXIT_UNCHECKED


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING - 10 * min(verbosity, 2)
    logging.basicConfig(
        level=level,
        format="%(name)s: %(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )


def _image(args: argparse.Namespace, settings: Settings) -> int:
    from rebuilder.wiring import build_sandbox_image, image_choice  # noqa: PLC0415 - docker

    if args.image_command == "build" and settings.image is None:
        ref = build_sandbox_image(settings)
        print(f"{ref.reference}\t{ref.digest}")
        return EXIT_OK
    choice = image_choice(settings)
    print(f"{choice.reference}\t{choice.digest}")
    return EXIT_OK


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from rebuilder.wiring import production_rebuilder  # noqa: PLC0415 - imports docker

    specs = [parse_spec(s) for s in args.specs]
    if args.out is not None:
        settings = settings.model_copy(update={"out_dir": args.out})
    rebuilder = production_rebuilder(settings, index_url=args.index_url)
    console = Console()
    err = Console(stderr=True)
    results: list[FileResult] = []
    unchecked: list[str] = []
    interactive = console.is_terminal and not args.json
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        for spec in specs:
            task = bar.add_task(f"{spec}: looking up", total=None)

            def stage(
                filename: str, what: str, task: TaskID = task, spec: ReleaseSpec = spec
            ) -> None:
                bar.update(task, description=f"{spec}: {filename}: {what}")

            try:
                version = spec.version or rebuilder.latest_version(spec.project)
                for result in rebuilder.check_release(spec.project, version, stage):
                    results.append(result)
                    if args.json:
                        print(json.dumps(result.to_json(), sort_keys=True), flush=True)
                    elif not interactive:
                        print(_plain_line(result), flush=True)
            except NotFoundError as exc:
                unchecked.append(str(spec))
                err.print(f"[bold red]{spec}:[/] {exc.diagnostics()}")
            finally:
                bar.remove_task(task)
    if interactive:
        console.print(_table(results))
        console.print(f"evidence: {settings.out_dir}")
    return _exit_status(results, unchecked)


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
    return f"{result.verdict.value:<13} {result.filename}  {detail}".rstrip()


def _table(results: Sequence[FileResult]) -> Table:
    table = Table(title="rebuild verdicts")
    for column in ("file", "verdict", "details", "seconds"):
        table.add_column(column, overflow="fold")
    for r in results:
        if r.differences:
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
    return table


if __name__ == "__main__":
    sys.exit(main())
