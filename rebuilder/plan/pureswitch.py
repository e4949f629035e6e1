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

Some ``setup.py`` files take a command-line option instead: a ``"--no-x-compile" in
sys.argv`` test, then ``sys.argv.remove(...)`` before ``setup()`` sees it. Those are
found in the syntax tree of ``setup.py`` (string constants starting with ``--`` tested
for membership in, or removed from, ``sys.argv``) and kept when their words say "skip
the compiled extensions" (see :func:`means_pure`). Nothing from the source is run here.
"""

from __future__ import annotations

import ast
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


# An option's words (split on "-" and "_"): a negation first, then something naming
# compiled extensions, or "pure" anywhere. A bare ``--no-compile`` is distutils' own
# option (no byte-code), so "compile" alone names nothing compiled here.
_NEGATIONS = frozenset({"no", "without", "disable", "skip"})
_COMPILED = frozenset(
    {"ext", "exts", "extension", "extensions", "cext", "cexts", "cython", "speedups", "binary"}
)
_ARGV_METHODS = frozenset({"remove", "index", "count", "pop"})


def means_pure(option: str) -> bool:
    """True when a ``--option``'s words say it skips compiled extensions.

    ``--pure``, ``--pure-python``, ``--no-cython-compile``, ``--without-extensions``,
    ``--disable-speedups``: yes. ``--no-compile``, ``--with-cython``, ``--cython-profile``:
    no.
    """
    words = [w for w in re.split(r"[-_]+", option.lower()) if w]
    if "pure" in words:
        return True
    return bool(words) and words[0] in _NEGATIONS and any(w in _COMPILED for w in words[1:])


def _is_argv(node: ast.expr) -> bool:
    """``sys.argv`` or a bare ``argv`` (``from sys import argv``)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "argv" and isinstance(node.value, ast.Name) and node.value.id == "sys"
    return isinstance(node, ast.Name) and node.id == "argv"


def _option(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
        if text.startswith("--") and re.fullmatch(r"--[A-Za-z0-9][A-Za-z0-9_-]{0,63}", text):
            return text
    return None


def _argv_tests(tree: ast.AST) -> list[ast.expr]:
    """The expressions tested for in, or taken out of, ``sys.argv`` under ``tree``."""
    tested: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            if isinstance(node.ops[0], ast.In | ast.NotIn) and _is_argv(node.comparators[0]):
                tested.append(node.left)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _ARGV_METHODS
            and _is_argv(node.func.value)
        ):
            tested.extend(node.args)
    return tested


def _prefixed_parameter(node: ast.expr, params: Sequence[str]) -> tuple[str, int] | None:
    """``"--" + name`` or ``f"--{name}"`` with ``name`` a parameter: (prefix, its index)."""
    parts: list[ast.expr] = []
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        parts = [node.left, node.right]
    elif isinstance(node, ast.JoinedStr) and len(node.values) == 2:
        value = node.values[1]
        parts = [node.values[0], value.value if isinstance(value, ast.FormattedValue) else value]
    if len(parts) != 2:
        return None
    prefix, name = parts
    if (
        isinstance(prefix, ast.Constant)
        and isinstance(prefix.value, str)
        and prefix.value.startswith("--")
        and isinstance(name, ast.Name)
        and name.id in params
    ):
        return prefix.value, list(params).index(name.id)
    return None


def _option_helpers(tree: ast.AST) -> dict[str, tuple[str, int]]:
    """Functions that test ``"--" + <a parameter>`` against ``sys.argv``.

    ``def check_option(name): arg = "--" + name; if arg in sys.argv: ...`` gives
    ``{"check_option": ("--", 0)}``: each call with a string names an option.
    """
    helpers: dict[str, tuple[str, int]] = {}
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        params = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
        local: dict[str, ast.expr] = {}
        for node in ast.walk(func):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    local[target.id] = node.value
        for tested in _argv_tests(func):
            expression = local.get(tested.id, tested) if isinstance(tested, ast.Name) else tested
            found = _prefixed_parameter(expression, params)
            if found is not None:
                helpers[func.name] = found
    return helpers


def argv_options(text: str) -> tuple[str, ...]:
    """Every ``--option`` the code tests for in, or takes out of, ``sys.argv``, sorted.

    ``"--x" in sys.argv``, ``"--x" not in sys.argv``, ``sys.argv.remove("--x")`` (also
    ``index``, ``count``, ``pop``), and the string given to a helper function that tests
    ``"--" + its_parameter`` so (``check_option("x")``). Code that does not parse gives
    nothing.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return ()
    found = {o for o in map(_option, _argv_tests(tree)) if o}
    helpers = _option_helpers(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            helper = helpers.get(node.func.id)
            if helper is None or len(node.args) <= helper[1]:
                continue
            arg = node.args[helper[1]]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                option = _option(ast.Constant(helper[0] + arg.value))
                if option:
                    found.add(option)
    return tuple(sorted(found))


def pure_options(root: Path, tags: Sequence[str]) -> tuple[str, ...]:
    """``setup.py`` command-line options that make the build pure, for a pure wheel.

    Empty unless every tag of the published wheel is ``none-any`` and the sdist has
    extension sources; then the options its ``setup.py`` reads from ``sys.argv`` whose
    words say they skip compiled extensions.
    """
    if not tags or not all(tag.endswith("-none-any") for tag in tags):
        return ()
    setup = root / "setup.py"
    if not setup.is_file() or setup.is_symlink() or setup.stat().st_size > _MAX_BYTES:
        return ()
    if not has_extension_sources(root):
        return ()
    text = setup.read_text(encoding="utf-8", errors="replace")
    return tuple(o for o in argv_options(text) if means_pure(o))
