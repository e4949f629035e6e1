"""The pure switch: discovered in the sdist's build code, used only for pure wheels."""

from __future__ import annotations

from pathlib import Path

import pytest

from rebuilder.plan.pureswitch import (
    argv_options,
    has_extension_sources,
    means_pure,
    pure_options,
    pure_switches,
    switch_variables,
)

PURE = ("py3-none-any",)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "src"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


SETUP_WITH_SWITCH = """
import os, sys
NO_EXTENSIONS = bool(os.environ.get("DEMO_NO_EXTENSIONS"))
if "PURE" in os.environ:
    pass
DEBUG = os.getenv("DEMO_DEBUG")
"""


def test_switch_names_are_read_from_environment_lookups() -> None:
    assert switch_variables([SETUP_WITH_SWITCH]) == ("DEMO_NO_EXTENSIONS", "PURE")
    text = 'os.environ["WITHOUT_CYTHON"]; os.getenv("X_DISABLE_SPEEDUPS"); environ.get("PUREE")'
    assert switch_variables([text]) == ("WITHOUT_CYTHON", "X_DISABLE_SPEEDUPS")
    # a name merely mentioned, not read from the environment, is no switch
    assert switch_variables(['NAME = "DEMO_NO_EXTENSIONS"']) == ()


def test_a_pure_wheel_of_a_project_with_extensions_gets_its_switch(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"setup.py": SETUP_WITH_SWITCH, "demo/_speed.c": "int x;"})
    assert has_extension_sources(root)
    assert pure_switches(root, PURE) == (("DEMO_NO_EXTENSIONS", "1"), ("PURE", "1"))


def test_no_switch_without_extension_sources_or_for_a_platform_wheel(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"setup.py": SETUP_WITH_SWITCH, "demo/__init__.py": ""})
    assert pure_switches(root, PURE) == ()
    (root / "demo" / "_speed.pyx").write_text("")
    assert pure_switches(root, ("cp311-cp311-linux_x86_64",)) == ()
    assert pure_switches(root, ()) == ()


def test_an_in_tree_backend_is_read_but_nothing_outside_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "hooks.py").write_text('os.getenv("OUTSIDE_NO_EXTENSIONS")')
    root = _tree(
        tmp_path,
        {
            "packaging/backend/hooks.py": 'os.getenv("DEMO_NO_EXTENSIONS")',
            "demo/_speed.c": "",
        },
    )
    assert pure_switches(root, PURE, ("packaging",)) == (("DEMO_NO_EXTENSIONS", "1"),)
    assert pure_switches(root, PURE, ("../elsewhere",)) == ()


def test_a_constant_naming_the_environment_variable_counts() -> None:
    backend = (
        "PURE_PYTHON_ENV_VAR = 'DEMO_NO_EXTENSIONS'\n"
        "TRACING_ENV_VAR: str = 'DEMO_TRACING'\n"
        "OTHER = 'X_NO_EXTENSIONS'\n"  # not said to be an environment variable
    )
    assert switch_variables([backend]) == ("DEMO_NO_EXTENSIONS",)


SETUP_WITH_OPTIONS = """
import sys
from sys import argv
if "--no-demo-compile" in sys.argv:
    sys.argv.remove("--no-demo-compile")
    compile_itself = False
if '--demo-profile' in sys.argv:
    pass
if "--without-speedups" not in argv:
    pass
sys.argv.remove("--pure")
if "--no-compile" in sys.argv:  # distutils' own: no byte-code
    pass
if "--with-cython" in sys.argv:
    pass
text = "--no-extensions"  # mentioned, not tested against sys.argv
"""


def test_options_are_read_from_the_syntax_tree_of_setup_py() -> None:
    assert argv_options(SETUP_WITH_OPTIONS) == (
        "--demo-profile",
        "--no-compile",
        "--no-demo-compile",
        "--pure",
        "--with-cython",
        "--without-speedups",
    )
    assert argv_options("if '--no-cext' in sys.argv\n") == ()  # does not parse


@pytest.mark.parametrize(
    ("option", "pure"),
    [
        ("--pure", True),
        ("--pure-python", True),
        ("--no-cython-build", True),
        ("--without-extensions", True),
        ("--disable-speedups", True),
        ("--skip_cext", True),
        ("--no-compile", False),
        ("--no-demo-compile", False),
        ("--with-cython", False),
        ("--cython-profile", False),
        ("--extensions", False),
    ],
)
def test_only_options_whose_words_say_skip_the_extensions_count(option: str, pure: bool) -> None:
    assert means_pure(option) is pure


def test_a_pure_wheel_gets_the_pure_options_of_its_setup_py(tmp_path: Path) -> None:
    setup = 'import sys\nif "--no-cext-compile" in sys.argv: sys.argv.remove("--no-cext-compile")\n'
    root = _tree(tmp_path, {"setup.py": setup, "demo/_speed.pyx": ""})
    assert pure_options(root, PURE) == ("--no-cext-compile",)
    assert pure_options(root, ("cp311-cp311-linux_x86_64",)) == ()
    (root / "demo" / "_speed.pyx").unlink()
    assert pure_options(root, PURE) == ()  # no extension sources: nothing to skip


def test_a_helper_testing_a_prefixed_parameter_names_an_option_per_call() -> None:
    setup = (
        "import sys\n"
        "def check_option(name):\n"
        "    cli_arg = '--' + name\n"
        "    if cli_arg in sys.argv:\n"
        "        sys.argv.remove(cli_arg)\n"
        "        return True\n"
        "    return False\n"
        "def flag(word):\n"
        "    return f'--{word}' in sys.argv\n"
        "profile = check_option('demo-profile')\n"
        "compiled = not check_option('no-demo-ext')\n"
        "fast = flag('without-speedups')\n"
        "other = print('no-x-ext')\n"
    )
    assert argv_options(setup) == ("--demo-profile", "--no-demo-ext", "--without-speedups")
