"""The transparency log's commands: ``rebuilder log ...`` and ``rebuilder export``."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rebuilder.errors import UsageError

if TYPE_CHECKING:
    from rebuilder.attest.checkpoint import NoteVerifier
    from rebuilder.settings import Settings
    from rebuilder.store.db import Pool
    from rebuilder.store.log import TransparencyLog

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def parse_log_keys(values: Sequence[str]) -> list[NoteVerifier]:
    """Trusted log keys from ``--log-key``: verifier key strings or files holding one.

    Raises:
        UsageError: a value is neither.
    """
    from rebuilder.attest.checkpoint import NoteVerifier  # noqa: PLC0415 - per command
    from rebuilder.attest.errors import AttestationError  # noqa: PLC0415

    verifiers = []
    for value in values:
        text = value
        path = Path(value)
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")[:4096].strip()
        try:
            verifiers.append(NoteVerifier.from_vkey(text))
        except AttestationError as exc:
            raise UsageError(f"--log-key {value!r}: not a note verifier key: {exc}") from exc
    return verifiers


def add_log_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``log`` and ``export`` on the main parser."""
    log = sub.add_parser(
        "log",
        help="the transparency log: checkpoints, proofs, audit, key",
        description="Read the fleet's tamper-evident log in PostgreSQL (REBUILDER_DATABASE_URL, "
        "log REBUILDER_LOG_ORIGIN). Proofs are printed as JSON (docs/transparency-log.md).",
    )
    log_sub = log.add_subparsers(dest="log_command", required=True, metavar="ACTION")
    checkpoint = log_sub.add_parser("checkpoint", help="print the latest signed checkpoint")
    checkpoint.add_argument(
        "--sign", action="store_true", help="sign a new checkpoint now (the operator's key)"
    )
    proof = log_sub.add_parser(
        "proof",
        help="inclusion proofs of a file's latest bundle, as a .log.json proof file",
    )
    proof.add_argument("target", metavar="FILE_OR_SHA256", help="a local file or its sha256")
    proof.add_argument(
        "--size", type=int, help="prove at this tree size (default: the latest checkpoint)"
    )
    consistency = log_sub.add_parser(
        "consistency", help="the proof that tree size OLD is a prefix of size NEW"
    )
    consistency.add_argument("old", type=int, metavar="OLD")
    consistency.add_argument("new", type=int, metavar="NEW")
    log_sub.add_parser(
        "audit", help="re-read every entry and check the log against its checkpoints"
    )
    log_sub.add_parser("key", help="print the log's note verifier key")

    exporter = sub.add_parser(
        "export",
        help="write every file's bundle and log proof as static files",
        description="Write pypi/{project}/{version}/{filename}/rebuild.intoto.jsonl with its "
        "log proof (.log.json) for every file, plus log/checkpoint and the log's key. "
        "Unchanged files are skipped. `rebuilder verify --attestations DIR` checks the result "
        "offline.",
    )
    exporter.add_argument("dir", type=Path, metavar="DIR")
    exporter.add_argument(
        "--project",
        action="append",
        default=[],
        metavar="NAME",
        help="only this project (repeatable; default: every project)",
    )
    exporter.add_argument(
        "--no-sign",
        action="store_true",
        help="do not sign a checkpoint first: entries after the latest one stay unproven",
    )


@contextmanager
def _pool(settings: Settings) -> Iterator[Pool]:
    from rebuilder.store.db import open_pool  # noqa: PLC0415 - each command imports what it uses

    pool = open_pool(settings.database_url, max_size=3, timeout=10.0, name="rebuilder-log")
    try:
        yield pool
    finally:
        pool.close()


def log_command(args: argparse.Namespace, settings: Settings) -> int:
    """``rebuilder log ACTION``; the exit status."""
    from cli.signing import operator_log_signing  # noqa: PLC0415
    from rebuilder.store.log import TransparencyLog  # noqa: PLC0415 - per command

    if args.log_command == "key":
        print(operator_log_signing(settings).verifier().vkey())
        return 0
    with _pool(settings) as pool:
        log = TransparencyLog(pool, settings.log_origin)
        if args.log_command == "checkpoint":
            return _checkpoint(log, settings, sign=args.sign)
        if args.log_command == "proof":
            return _proof(pool, log, args.target, args.size)
        if args.log_command == "consistency":
            print(json.dumps(log.consistency_proof(args.old, args.new).to_json(), indent=1))
            return 0
        return _audit(log, settings)


def _checkpoint(log: TransparencyLog, settings: Settings, *, sign: bool) -> int:
    from cli.signing import operator_log_signing  # noqa: PLC0415
    from rebuilder.store.log import LogError  # noqa: PLC0415 - per command

    if sign:
        signing = operator_log_signing(settings)
        print(log.checkpoint(signing.signer, signing.name), end="")
        return 0
    latest = log.latest_checkpoint()
    if latest is None:
        raise LogError(
            f"log {settings.log_origin!r} has no checkpoint yet: `rebuilder log checkpoint "
            "--sign` makes one (the scheduler signs them as the log grows)"
        )
    print(latest.note, end="")
    return 0


def _proof(pool: Pool, log: TransparencyLog, target: str, size: int | None) -> int:
    from rebuilder.attest.bundle_proofs import BundleProof  # noqa: PLC0415 - per command
    from rebuilder.attest.log_proofs import InclusionProof, entry_leaf_hash  # noqa: PLC0415
    from rebuilder.store.log import (  # noqa: PLC0415
        LogError,
        LogIntegrityError,
        latest_bundle_entries,
    )

    sha256 = _sha256_of(target)
    with pool.connection() as conn:
        rows = latest_bundle_entries(conn, sha256)
    if not rows:
        raise LogError(f"no logged attestations for a file of sha256 {sha256}")
    if {row[0] for row in rows} != {log.origin}:
        raise LogError(f"{rows[0][3]}: its bundle is not in log {log.origin!r}")
    if size is None:
        latest = log.latest_checkpoint()
        if latest is None:
            raise LogError(f"log {log.origin!r} has no checkpoint yet")
        size = latest.tree_size
    stored = log.checkpoint_at(size)
    if stored is None:
        raise LogError(f"no signed checkpoint of tree size {size}")
    proofs = []
    for _, index, entry, _ in rows:
        proof = log.inclusion_proof(int(index), size)
        if proof.leaf_hash != entry_leaf_hash(bytes(entry)):
            raise LogIntegrityError(f"log {log.origin!r}: entry {index} was altered")
        proofs.append(InclusionProof(log.origin, proof.index, size, proof.leaf_hash, proof.hashes))
    print(BundleProof(log.origin, stored.note, tuple(proofs)).dumps(), end="")
    return 0


def _sha256_of(target: str) -> str:
    path = Path(target)
    if path.is_file():
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    if _SHA256.fullmatch(target):
        return target.lower()
    raise UsageError(f"{target!r} is neither a file nor a sha256")


def _audit(log: TransparencyLog, settings: Settings) -> int:
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses
    from rich.markup import escape  # noqa: PLC0415

    from cli.signing import operator_log_signing  # noqa: PLC0415
    from rebuilder.attest.checkpoint import parse_note, verify_checkpoint  # noqa: PLC0415
    from rebuilder.attest.errors import AttestationError  # noqa: PLC0415
    from rebuilder.store.log import LogIntegrityError  # noqa: PLC0415

    console = Console()
    try:
        size = log.audit()
    except LogIntegrityError as exc:
        console.print(f"[bold red]log {escape(log.origin)} FAILED its audit:[/] {escape(str(exc))}")
        return 1
    latest = log.latest_checkpoint()
    detail = "no checkpoint yet"
    if latest is not None:
        detail = f"latest checkpoint: size {latest.tree_size}, signed by {latest.key_name}"
        ours = operator_log_signing(settings).verifier()
        signers = {(s.name, s.key_hash) for s in parse_note(latest.note).signatures}
        if (ours.name, ours.key_hash) not in signers:
            detail += " (not signed by this operator's key: signature not checked)"
        else:
            try:
                verify_checkpoint(latest.note, [ours], origin=log.origin)
            except AttestationError as exc:
                console.print(f"[bold red]latest checkpoint does not verify:[/] {escape(str(exc))}")
                return 1
            detail += " (signature verified with this operator's key)"
    console.print(f"[bold green]log {escape(log.origin)} audited[/]: {size} entries; {detail}")
    return 0


def export_command(args: argparse.Namespace, settings: Settings) -> int:
    """``rebuilder export DIR``; the exit status."""
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses
    from rich.markup import escape  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    from cli.signing import operator_log_signing  # noqa: PLC0415
    from rebuilder.attest.bundle import normalize_project  # noqa: PLC0415
    from rebuilder.attest.errors import AttestationError  # noqa: PLC0415
    from rebuilder.export import (  # noqa: PLC0415
        FileBundle,
        LogKey,
        Outcome,
        PostgresExportSource,
        export,
    )
    from rebuilder.store.log import TransparencyLog  # noqa: PLC0415

    projects = []
    for name in args.project:
        try:
            projects.append(normalize_project(name))
        except AttestationError as exc:
            raise UsageError(str(exc)) from exc
    err = Console(stderr=True)
    signing = operator_log_signing(settings)
    key = LogKey(signing.verifier().vkey(), signing.signer.public_key.to_pem())
    with _pool(settings) as pool:
        if not args.no_sign:
            TransparencyLog(pool, settings.log_origin).checkpoint(signing.signer, signing.name)
        source = PostgresExportSource(pool)
        total = source.count(projects)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        ) as bar:
            task = bar.add_task("exporting", total=total)

            def step(bundle: FileBundle, outcome: Outcome, task: TaskID = task) -> None:
                del outcome
                bar.update(task, advance=1, description=f"exporting {bundle.filename}")

            report = export(
                source,
                args.dir,
                origin=settings.log_origin,
                key=key,
                projects=projects,
                progress=step,
            )
    head = report.checkpoint
    Console().print(
        f"exported to {escape(str(args.dir))}: {report.written} written, "
        f"{report.unchanged} unchanged"
        + (f", {report.unproven} without proof (no checkpoint yet)" if report.unproven else "")
        + (f", {report.skipped} skipped (unsafe file names)" if report.skipped else "")
        + (f"; checkpoint {head.tree_size}" if head is not None else "; no checkpoint")
    )
    return 0
