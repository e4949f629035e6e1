"""Unified diffs of the differing text files of a mismatch, capped, for humans.

Written into the evidence (``differences.diff``) and shown on the file page right after
the diagnosis; diffoscope stays the tool for depth. Carriage returns and a BOM are shown
as ``\\r`` and ``\\ufeff`` so that a line-ending difference is visible.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from rebuilder.archive.zipread import ZipArchive
from rebuilder.verdict import Difference

DIFF_NAME = "differences.diff"
MAX_LINES_PER_FILE = 400
MAX_TOTAL_BYTES = 256 * 1024
MAX_INPUT_BYTES = 2 * 1024 * 1024


def _text(data: bytes | None) -> list[str] | None:
    if data is None:
        return []
    if len(data) > MAX_INPUT_BYTES or b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text.replace("\ufeff", "\\ufeff").replace("\r", "\\r")
    return text.splitlines(keepends=True)


def unified_diffs(
    published: ZipArchive, rebuilt: ZipArchive, differences: Iterable[Difference]
) -> str:
    """``published`` -> ``rebuilt`` diffs of every differing UTF-8 text path, capped."""
    ours = {e.name: e.data for e in published.entries}
    theirs = {e.name: e.data for e in rebuilt.entries}
    out: list[str] = []
    size = 0
    for diff in sorted(differences):
        a, b = _text(ours.get(diff.path)), _text(theirs.get(diff.path))
        if a is None or b is None:
            out.append(f"--- published/{diff.path}\n+++ rebuilt/{diff.path}\n(binary)\n")
            continue
        lines = list(
            difflib.unified_diff(
                a, b, f"published/{diff.path}", f"rebuilt/{diff.path}", n=2, lineterm="\n"
            )
        )
        lines = [line if line.endswith("\n") else line + "\n" for line in lines]
        if len(lines) > MAX_LINES_PER_FILE:
            dropped = len(lines) - MAX_LINES_PER_FILE
            lines = [*lines[:MAX_LINES_PER_FILE], f"... {dropped} more diff lines\n"]
        chunk = "".join(lines)
        if size + len(chunk) > MAX_TOTAL_BYTES:
            out.append(f"... diffs of further files left out ({MAX_TOTAL_BYTES} bytes shown)\n")
            break
        out.append(chunk)
        size += len(chunk)
    return "".join(out)
