"""``rebuilder verify``: what a consumer relies on before installing a file.

File mode hashes the local file; spec mode (``NAME==VERSION``) takes the release's files
and their sha256 from the index, or from ``--file`` when the index is not to be asked.
A bundle counts only when it is about exactly the file asked about (docs/attestations.md).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rebuilder.errors import UsageError
from rebuilder.spec import parse_spec

if TYPE_CHECKING:
    from rich.console import Console

    from rebuilder.attest.keys import Keyring
    from rebuilder.attest.verify import (
        ExpectedFile,
        FileVerification,
    )
    from rebuilder.settings import Settings

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
_NAMED_DIGEST = re.compile(r"(?P<name>[^=/]+)=(?P<sha256>[0-9a-fA-F]{64})")
_STYLE = {"PASSED": "bold green", "NOT REBUILT": "yellow"}


def add_verify_options(verify: argparse.ArgumentParser) -> None:
    """The binding options of ``rebuilder verify`` (the rest are in cli.py)."""
    verify.add_argument(
        "--index-url",
        help="spec mode: the index whose release files and sha256 the bundles must be "
        "about (default: REBUILDER_INDEX_URL, else PyPI)",
    )
    verify.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="PATH_OR_NAME=SHA256",
        help="spec mode without the index: a file of the release (a local path, hashed "
        "here, or FILENAME=SHA256); repeat for every file",
    )
    verify.add_argument(
        "--strict",
        action="store_true",
        help="every file of the release counts: an sdist that was not rebuilt (and has no "
        "consistent source check) fails the release",
    )


def trusted_keys(paths: Sequence[Path], settings: Settings) -> Keyring:
    """The keys from ``--key``, else this host's own public key; a usage error without any."""
    from rebuilder.attest.keys import Keyring  # noqa: PLC0415
    from rebuilder.attest.publish import public_key_path  # noqa: PLC0415

    if paths:
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise UsageError(f"--key: no such file: {', '.join(missing)}")
        return Keyring.from_files(paths)
    own = public_key_path(settings.signing_key_path)
    if not own.is_file():
        raise UsageError(
            "no trusted key: pass the public key of the operator who signed the bundles "
            "with --key KEY.pem (a fleet publishes its keys at /api/v1/keys; an export "
            f"carries log/key.pem). This host has no key of its own at {own}."
        )
    return Keyring.from_files([own])


def expected_files(
    project: str, version: str, files: Sequence[str], settings: Settings, index_url: str | None
) -> list[ExpectedFile]:
    """The release's files the bundles must be about: from ``--file`` or from the index."""
    from rebuilder.attest.verify import ExpectedFile  # noqa: PLC0415

    if files:
        return [_expected_from_option(value, project, version) for value in files]
    from rebuilder.index.simple import SimpleIndex  # noqa: PLC0415 - spec mode only

    url = index_url or settings.index_url
    index = SimpleIndex(url, settings.cache_dir / "index", page_ttl_seconds=settings.page_ttl)
    listed = index.release_files(project, version)  # NotFoundError / IndexError_: exit 2
    return [ExpectedFile(f.project, f.version, f.filename, f.sha256.lower()) for f in listed]


def _expected_from_option(value: str, project: str, version: str) -> ExpectedFile:
    from rebuilder.attest.errors import AttestationError  # noqa: PLC0415
    from rebuilder.attest.verify import ExpectedFile, parse_filename  # noqa: PLC0415

    path = Path(value)
    named = _NAMED_DIGEST.fullmatch(value)
    if path.is_file():
        name, sha256 = path.name, hashlib.sha256(path.read_bytes()).hexdigest()
    elif named:
        name, sha256 = named["name"], named["sha256"].lower()
    else:
        raise UsageError(f"--file {value!r}: neither a local file nor FILENAME=SHA256")
    try:
        file_project, file_version = parse_filename(name)
    except AttestationError as exc:
        raise UsageError(f"--file {value!r}: {exc}") from None
    expected = ExpectedFile(project, version, name, sha256)
    asked = ExpectedFile(file_project, file_version, name, sha256)
    if not _same_release(asked, expected):
        raise UsageError(f"--file {name} is not a file of {project} {version}")
    return expected


def _same_release(a: ExpectedFile, b: ExpectedFile) -> bool:
    from packaging.utils import canonicalize_name  # noqa: PLC0415
    from packaging.version import Version  # noqa: PLC0415

    return canonicalize_name(a.project) == canonicalize_name(b.project) and Version(
        a.version
    ) == Version(b.version)


def verify_command(args: argparse.Namespace, settings: Settings) -> int:
    """``rebuilder verify FILE_OR_SPEC``; the exit status."""
    from rich.console import Console  # noqa: PLC0415

    from cli.log import parse_log_keys  # noqa: PLC0415
    from rebuilder.attest.errors import AttestationError  # noqa: PLC0415
    from rebuilder.attest.verify import (  # noqa: PLC0415
        FileVerification,
        bundle_for_file,
        verify_release_file,
    )

    root = args.attestations or settings.out_dir
    keyring = trusted_keys(args.key, settings)
    log_keys = parse_log_keys(args.log_key)
    target = Path(args.target)
    checked: list[FileVerification] = []
    if target.is_file():
        _, expected = bundle_for_file(target, root)
        files = [expected]
        strict = True  # the file asked about always counts
    else:
        spec = parse_spec(args.target)
        if spec.version is None:
            raise UsageError("verify takes NAME==VERSION or a local file")
        files = expected_files(spec.project, spec.version, args.file, settings, args.index_url)
        strict = args.strict
    for expected in files:
        try:
            checked.append(
                verify_release_file(expected, root, keyring, strict=strict, log_keys=log_keys)
            )
        except AttestationError as exc:
            if target.is_file():
                raise  # the one file asked about: an error (exit 2), as it always was
            checked.append(
                FileVerification(
                    expected.filename,
                    expected.sha256,
                    "",
                    None,
                    (),
                    decision=f"refused: {exc.diagnostics()}",
                    status="FAILED",
                )
            )
    _print(checked, Console())
    return EXIT_OK if checked and all(c.ok for c in checked) else EXIT_FAILED


def _print(checked: Sequence[FileVerification], console: Console) -> None:
    from rich.markup import escape  # noqa: PLC0415

    for item in checked:
        style = _STYLE.get(item.status, "bold red")
        detail = ", ".join(item.stabilizers or item.differences) or (item.reason or "")
        signed = f" signed by {', '.join(k[:16] for k in item.key_ids)}" if item.key_ids else ""
        verdict = f" verdict={item.verdict}" if item.verdict else ""
        console.print(
            f"[{style}]{item.status}[/] {escape(item.filename)} sha256={item.sha256[:16]}..."
            f"{verdict}{signed} {escape(detail)}".rstrip()
        )
        if item.route:
            console.print(f"  route: {escape(item.route)}")
        if item.decision:
            console.print(f"  decision: {escape(item.decision)}")
        for weighed in item.weighed:
            console.print(f"  weighed: {escape(str(weighed))}")
        if item.log_ok is False:
            console.print(f"  log inclusion: [bold red]FAILED[/] {escape(item.log or '')}")
        elif item.key_ids:
            shown = "not checked (no log proof beside the bundle)" if item.log is None else item.log
            console.print(f"  log inclusion: {escape(shown)}")
    counted = [c for c in checked if c.counts]
    passed = sum(c.status == "PASSED" for c in checked)
    listed = len(checked) - len(counted)
    headline = "PASSED" if checked and all(c.ok for c in checked) else "FAILED"
    console.print(
        f"[{_STYLE.get(headline, 'bold red')}]{headline}[/]: {passed} of {len(checked)} "
        f"file(s) PASSED" + (f", {listed} listed without counting" if listed else "")
    )


def add_rerun_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``rebuilder rerun``."""
    rerun = sub.add_parser(
        "rerun",
        help="build again what a bundle's provenance records and compare the sha256",
        description="Re-run a rebuild from the provenance alone: the inputs are fetched from "
        "the recorded URIs and checked against the recorded sha256, the build runs in the "
        "recorded image (by id), nothing is planned. Exit status 0 when every rebuilt file "
        "has the recorded sha256, 1 when one differs or its build failed.",
    )
    rerun.add_argument("bundle", type=Path, metavar="BUNDLE", help="a rebuild.intoto.jsonl")
    rerun.add_argument(
        "--key",
        type=Path,
        action="append",
        default=[],
        help="trusted public key (PEM) of the operator who signed it (default: this host's own)",
    )


def rerun_command(args: argparse.Namespace, settings: Settings) -> int:
    """``rebuilder rerun BUNDLE``; the exit status."""
    from rich.console import Console  # noqa: PLC0415
    from rich.markup import escape  # noqa: PLC0415

    from cli.rerun import rerun_bundle  # noqa: PLC0415 - imports docker

    if not args.bundle.is_file():
        raise UsageError(f"no bundle at {args.bundle}")
    keyring = trusted_keys(args.key, settings)
    console = Console()
    results = rerun_bundle(args.bundle, keyring, settings)
    for result in results:
        if result.same:
            console.print(
                f"[bold green]SAME[/] {escape(result.filename)} sha256={result.rebuilt_sha256}"
            )
        else:
            got = result.rebuilt_sha256 or f"nothing ({result.status}: {result.detail})"
            console.print(
                f"[bold red]DIFFERENT[/] {escape(result.filename)} recorded "
                f"sha256={result.recorded_sha256}, rebuilt {escape(got)}"
            )
    return EXIT_OK if results and all(r.same for r in results) else EXIT_FAILED
