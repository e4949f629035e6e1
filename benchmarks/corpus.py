"""Measure reproduction rates and speed of ``rebuilder check`` on a corpus of releases.

Usage::

    .venv/bin/python -m benchmarks.corpus CORPUS.txt [--out DIR] [--runs 2] [--report FILE]

CORPUS.txt holds one ``name==version`` a line. Every release is checked against the
index configured for the rebuilder (live PyPI by default; be polite: this is
sequential). With ``--second-opinion`` a release with a mismatching wheel is traced to
its git tag and rebuilt from there, as ``rebuilder check --second-opinion`` does
(repositories as the source settings say, ``REBUILDER_SOURCE_MIRRORS`` included); the
summary then counts the verdicts after the git-tag route and the files it took.
With ``--runs 2`` the second run measures warm caches. The summary
(Markdown) goes to stdout and, with ``--report``, to a file; every result is kept as
JSON lines next to the evidence.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path

import truststore

from cli.source_wiring import production_source_tracer
from cli.wiring import production_rebuilder
from rebuilder.second_opinion import release_opinions
from rebuilder.settings import Settings
from rebuilder.spec import parse_spec
from rebuilder.verdict import FileResult, Verdict

STAGES = ("fetch", "inspect", "extract", "resolve", "sandbox", "compare", "diffoscope")


def run_once(
    specs: list[str], settings: Settings, log: Path, second_opinion: bool = False
) -> list[FileResult]:
    rebuilder = production_rebuilder(settings)
    tracer = production_source_tracer(settings) if second_opinion else None
    results: list[FileResult] = []
    with log.open("w", encoding="utf-8") as sink:
        for text in specs:
            spec = parse_spec(text)
            version = spec.version or rebuilder.latest_version(spec.project)
            start = time.monotonic()
            try:
                found = rebuilder.check_release(spec.project, version)
                if tracer is not None:
                    found, _ = release_opinions(
                        found, partial(tracer.check_release, spec.project, version)
                    )
            except Exception as exc:  # a benchmark records and goes on
                print(f"{text}: ERROR {exc}", file=sys.stderr)
                continue
            for r in found:
                results.append(r)
                sink.write(json.dumps(r.to_json(), sort_keys=True) + "\n")
                print(
                    f"{r.verdict.value:<13} {r.filename} {r.seconds:.1f}s {r.reason or ''}",
                    file=sys.stderr,
                    flush=True,
                )
            print(f"  {text}: {time.monotonic() - start:.1f}s", file=sys.stderr, flush=True)
    return results


def _median(results: list[FileResult], stage: str) -> float:
    return statistics.median(r.timings.get(stage, 0.0) for r in results)


def summarize(results: list[FileResult], title: str) -> str:
    wheels = [r for r in results if r.verdict is not Verdict.UNSUPPORTED]
    counts = Counter(r.verdict for r in wheels)
    n = len(wheels) or 1
    built = [r for r in wheels if r.rebuilt_sha256]
    secs = sorted(r.seconds for r in wheels)
    lines = [f"### {title}", ""]
    lines.append(
        f"- pure wheels judged: {len(wheels)} (unsupported files: {len(results) - len(wheels)})"
    )
    for verdict in Verdict:
        if verdict is not Verdict.UNSUPPORTED:
            lines.append(f"- {verdict.value}: {counts[verdict]} ({100 * counts[verdict] / n:.1f}%)")
    ok = counts[Verdict.REPRODUCIBLE] + counts[Verdict.EQUIVALENT]
    lines.append(f"- reproducible + equivalent: {ok} ({100 * ok / n:.1f}%)")
    if secs:
        slowest = max(wheels, key=lambda r: r.seconds)
        lines.append(
            f"- wall time per wheel: median {statistics.median(secs):.1f} s, "
            f"slowest {slowest.seconds:.1f} s ({slowest.filename})"
        )
    if built:
        lines.append(
            "- median seconds by stage: "
            + ", ".join(f"{stage} {_median(built, stage):.2f}" for stage in STAGES)
        )
        inner = sorted({k for r in built for k in r.timings if k.startswith("sandbox.")})
        lines.append(
            "- inside the sandbox (median s): "
            + ", ".join(f"{k.removeprefix('sandbox.')} {_median(built, k):.2f}" for k in inner)
        )
    stabilizers = Counter(str(s) for r in wheels for s in r.stabilizers)
    if stabilizers:
        lines.append(
            "- stabilizers needed: " + ", ".join(f"{k} x{v}" for k, v in stabilizers.most_common())
        )
    lines += diagnosis_lines(wheels)
    lines += git_route_lines(wheels)
    bad = [r for r in wheels if r.verdict in {Verdict.MISMATCH, Verdict.FAILED}]
    bad.sort(key=lambda r: (-(r.risk.rank if r.risk else -1), r.filename))
    if bad:
        lines += ["", "| file | verdict | risk | why |", "|---|---|---|---|"]
        for r in bad:
            why = r.reason or ", ".join(f"{d.kind.value}:{d.path}" for d in r.differences[:6])
            if r.diagnosis:
                why = "; ".join(f"{d.path}: {d.cause.value} ({d.detail})" for d in r.diagnosis[:6])
            cls = f"[{r.reason_class.value}] " if r.reason_class else ""
            risk = r.risk.value if r.risk else ""
            lines.append(
                f"| {r.filename} | {r.verdict.value} | {risk} "
                f"| {cls}{why.replace('|', '/')[:400]} |"
            )
    return "\n".join(lines) + "\n"


def diagnosis_lines(wheels: list[FileResult]) -> list[str]:
    """Causes of every differing path of the mismatches, and the files' risks."""
    mismatches = [r for r in wheels if r.verdict is Verdict.MISMATCH]
    if not mismatches:
        return []
    causes = Counter(d.cause.value for r in mismatches for d in r.diagnosis)
    undiagnosed = sum(1 for r in mismatches for _ in r.differences) - sum(causes.values())
    risks = Counter(r.risk.value if r.risk else "none" for r in mismatches)
    return [
        "- mismatch risk: " + ", ".join(f"{k} x{v}" for k, v in sorted(risks.items())),
        "- diagnosis causes (per differing path): "
        + ", ".join(f"{k} x{v}" for k, v in causes.most_common())
        + f"; paths without a diagnosis: {undiagnosed}",
    ]


def git_route_lines(wheels: list[FileResult]) -> list[str]:
    """What the second opinions from git said, and which files took the git-tag route."""
    opinions = [r.second_opinion for r in wheels if r.second_opinion]
    if not opinions:
        return []
    routed = [r for r in wheels if r.second_opinion and r.second_opinion.get("route") == "git"]
    said = Counter(str(o.get("verdict")) for o in opinions)
    lines = [
        f"- second opinions from git: {len(opinions)} ("
        + ", ".join(f"{k} x{v}" for k, v in sorted(said.items()))
        + f"); by the git-tag route (was mismatch): {len(routed)}"
    ]
    for r in routed:
        opinion = r.second_opinion or {}
        lines.append(
            f"  - {r.filename}: {r.verdict.value} from git tag {opinion.get('tag')} "
            f"(built from the {opinion.get('built_from')})"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--out", type=Path, default=Path("rebuilds/benchmark"))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--report", type=Path)
    parser.add_argument(
        "--second-opinion",
        action="store_true",
        help="trace releases with a mismatching wheel to their git tag and rebuild from there",
    )
    args = parser.parse_args()
    truststore.inject_into_ssl()
    specs = [line.split("#")[0].strip() for line in args.corpus.read_text().splitlines()]
    specs = [s for s in specs if s]
    report = []
    for run in range(1, args.runs + 1):
        settings = Settings(out_dir=args.out / f"run{run}")
        args.out.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        log = args.out / f"run{run}.jsonl"
        results = run_once(specs, settings, log, second_opinion=args.second_opinion)
        spent = time.monotonic() - began
        kind = "cold or partly warm caches" if run == 1 else "warm caches"
        summary = summarize(results, f"run {run} of {args.runs} ({kind})")
        wheels = sum(1 for r in results if r.verdict is not Verdict.UNSUPPORTED)
        summary += (
            f"- whole run, one process, sequential: {spent:.1f} s for {len(specs)} releases "
            f"({spent / max(wheels, 1):.2f} s a wheel)\n"
        )
        report.append(summary)
    text = "\n".join(report)
    print(text)
    if args.report:
        args.report.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
