from __future__ import annotations

from rebuilder.source.rules import FileCase, explain


def _case(path: str, sdist: bytes, git: bytes | None, pyproject: str = "") -> FileCase:
    return FileCase(path, sdist, git, "demo", "1.2.3", pyproject)


def _rule(case: FileCase) -> str | None:
    rule = explain(case)
    return None if rule is None else str(rule)


def test_generated_metadata() -> None:
    assert _rule(_case("PKG-INFO", b"x", None)) == "pkg-info@1"
    assert _rule(_case("src/demo.egg-info/SOURCES.txt", b"x", None)) == "egg-info@1"
    # PKG-INFO deeper in the tree, or one kept in git and changed, is not generated
    assert _rule(_case("src/PKG-INFO", b"x", None)) is None
    assert _rule(_case("PKG-INFO", b"x", b"y")) is None
    assert _rule(_case("src/demo.egg-info", b"x", None)) is None


def test_setup_cfg_egg_info_section() -> None:
    git = b"# comment\n[metadata]\nname = demo\n"
    sdist = b"[metadata]\nname = demo\n\n[egg_info]\ntag_build = \ntag_date = 0\n\n"
    assert _rule(_case("setup.cfg", sdist, git)) == "setup-cfg-egg-info@1"
    assert _rule(_case("setup.cfg", b"[egg_info]\ntag_build = \ntag_date = 0\n", None))
    changed = sdist.replace(b"name = demo", b"name = evil")
    assert _rule(_case("setup.cfg", changed, git)) is None
    smuggled = sdist + b"[options]\npackages = evil\n"
    assert _rule(_case("setup.cfg", smuggled, git)) is None
    odd_key = b"[metadata]\nname = demo\n[egg_info]\negg_base = x\nscript = y\n"
    assert _rule(_case("setup.cfg", odd_key, git)) is None


def test_scm_version_file_needs_the_tool_and_the_version() -> None:
    body = b"__version__ = version = '1.2.3'\n"
    scm = '[tool.setuptools_scm]\nversion_file = "src/demo/_version.py"\n'
    assert _rule(_case("src/demo/_version.py", body, None, scm)) == "scm-version-file@1"
    assert _rule(_case("src/demo/_version.py", body, None, "")) is None
    assert _rule(_case("src/demo/_version.py", b"import os\n", None, scm)) is None
    assert _rule(_case("src/demo/_version.py", body, b"other", scm)) is None
    assert _rule(_case("src/demo/evil.py", body, None, scm)) is None


def test_git_archival_and_poetry_shim() -> None:
    raw = b"node: $Format:%H$\n"
    assert _rule(_case(".git_archival.txt", raw, b"node: 0123abc\n")) == "git-archival@1"
    assert _rule(_case(".git_archival.txt", b"node: evil\n", b"node: 0123abc\n")) is None
    shim = b"from setuptools import setup\nsetup_kwargs = {}\nsetup(**setup_kwargs)\n"
    poetry = '[build-system]\nbuild-backend = "poetry.core.masonry.api"\n'
    assert _rule(_case("setup.py", shim, None, poetry)) == "poetry-setup-py@1"
    assert _rule(_case("setup.py", shim, None, "")) is None
