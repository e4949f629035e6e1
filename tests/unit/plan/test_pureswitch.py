"""The pure switch: discovered in the sdist's build code, used only for pure wheels."""

from __future__ import annotations

from pathlib import Path

from rebuilder.plan.pureswitch import has_extension_sources, pure_switches, switch_variables

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
