"""The pure switch: build a pure wheel of a project whose extensions are optional.

A project may ship C or Cython sources and still publish a pure ``none-any`` wheel,
built with its documented switch that skips the extensions (an environment variable
such as ``<PROJECT>_NO_EXTENSIONS`` or ``PURE`` read by ``setup.py`` or by an in-tree
backend). Rebuilt without it, the wheel compiles (or fails to compile) and comes out
tagged for one interpreter and platform.

The switches are discovered in the sdist's own build code (``setup.py`` and the
modules of an in-tree backend): environment variables it reads whose name says
"pure" or "no/without/disable extensions", looked up directly or named by a constant
whose name says it is an environment variable (``PURE_PYTHON_ENV_VAR = "..."``).
Nothing from the source is run here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

_ENV_READ_RE = re.compile(
    r"""(?:environ\.get\(\s*|environ\[\s*|getenv\(\s*)["'](?P<a>[A-Z][A-Z0-9_]{1,63})["']"""
    r"""|["'](?P<b>[A-Z][A-Z0-9_]{1,63})["']\s+in\s+(?:os\.)?environ\b"""
)
# A constant naming an environment variable, read through it elsewhere:
# ``PURE_PYTHON_ENV_VAR = "DEMO_NO_EXTENSIONS"``.
_ENV_CONSTANT_RE = re.compile(
    r"""^[ \t]*[A-Za-z_]*ENV[A-Za-z_]*[ \t]*(?::[^=\n]*)?=[ \t]*"""
    r"""["'](?P<name>[A-Z][A-Z0-9_]{1,63})["']""",
    re.MULTILINE,
)
_SWITCH_NAME_RE = re.compile(
    r"(?:^|_)PURE(?:_|$)"
    r"|(?:^|_)(?:NO|WITHOUT|DISABLE|SKIP)_(?:C_|BUILD_)?"
    r"(?:EXT|EXTS|EXTENSION|EXTENSIONS|CEXT|CEXTS|CYTHON|SPEEDUPS|BINARY|COMPILE)(?:_|$)"
)
_EXTENSION_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".pyx", ".rs")
_MAX_BYTES = 512 * 1024
_MAX_FILES = 200


def has_extension_sources(root: Path) -> bool:
    """True when the source tree holds C, C++, Cython or Rust sources."""
    for _, _, names in os.walk(root):
        if any(name.endswith(_EXTENSION_SUFFIXES) for name in names):
            return True
    return False


def switch_variables(texts: Sequence[str]) -> tuple[str, ...]:
    """The pure-switch environment variables the build code reads, sorted."""
    found: set[str] = set()
    for text in texts:
        names = [m["a"] or m["b"] for m in _ENV_READ_RE.finditer(text)]
        names += [m["name"] for m in _ENV_CONSTANT_RE.finditer(text)]
        found.update(name for name in names if _SWITCH_NAME_RE.search(name))
    return tuple(sorted(found))


def build_code(root: Path, backend_path: Sequence[str] = ()) -> list[str]:
    """The text of ``setup.py`` and of the in-tree backend's modules (bounded)."""
    files = [root / "setup.py"]
    resolved_root = root.resolve()
    for folder in backend_path:
        base = (root / folder).resolve()
        if not base.is_relative_to(resolved_root) or not base.is_dir():
            continue
        files += sorted(base.rglob("*.py"))[:_MAX_FILES]
    texts = []
    for path in files:
        if path.is_file() and not path.is_symlink() and path.stat().st_size <= _MAX_BYTES:
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return texts


def pure_switches(
    root: Path, tags: Sequence[str], backend_path: Sequence[str] = ()
) -> tuple[tuple[str, str], ...]:
    """Environment settings that make the build pure, when the published wheel is pure.

    Empty unless every tag of the published wheel is ``none-any`` and the sdist has
    extension sources; then every switch variable the build code reads is set to ``1``.
    """
    if not tags or not all(tag.endswith("-none-any") for tag in tags):
        return ()
    if not has_extension_sources(root):
        return ()
    return tuple((name, "1") for name in switch_variables(build_code(root, backend_path)))
