from __future__ import annotations

import pytest

from rebuilder.plan.backend import (
    LEGACY_BACKEND,
    BuildSystem,
    alias_through_requirements,
    build_requirements,
    infer_config_settings,
    parse_generator,
    read_build_system,
    setuptools_option_key,
    with_options,
)


@pytest.mark.parametrize(
    ("line", "distribution", "version"),
    [
        ("bdist_wheel (0.42.0)", "wheel", "0.42.0"),
        ("setuptools (84.0.0)", "setuptools", "84.0.0"),
        ("hatchling 1.27.0", "hatchling", "1.27.0"),
        ("flit 3.12.0", "flit-core", "3.12.0"),
        ("flit 1.3", "flit", "1.3"),
        ("poetry-core 2.1.0", "poetry-core", "2.1.0"),
        ("pdm-backend (2.4.3)", "pdm-backend", "2.4.3"),
        ("maturin (1.7.0)", "maturin", "1.7.0"),
        ("bdist_wheel", "wheel", None),
        ("uv 0.8.3", "uv-build", "0.8.3"),
        ("  hatchling 1.27.0  ", "hatchling", "1.27.0"),
        ("some_backend (not-a-version)", None, None),
    ],
)
def test_generator_lines_name_the_backend_and_version(
    line: str, distribution: str | None, version: str | None
) -> None:
    pin = parse_generator(line)
    assert (pin.distribution, pin.version) == (distribution, version)
    assert pin.generator == line


@pytest.mark.parametrize("line", [None, "", "   ", "!!! garbage !!!"])
def test_missing_or_garbage_generator_pins_nothing(line: str | None) -> None:
    assert parse_generator(line).requirement is None


def test_no_pyproject_means_setuptools_legacy_defaults() -> None:
    system = read_build_system(None)
    assert system.backend == LEGACY_BACKEND
    assert not system.declared
    assert system.requires == ("setuptools>=40.8.0",)


def test_pyproject_without_build_system_table_uses_defaults() -> None:
    assert not read_build_system('[project]\nname = "x"\n').declared


def test_malformed_pyproject_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not valid TOML"):
        read_build_system("[build-system\nrequires = ")
    with pytest.raises(ValueError, match="list of strings"):
        read_build_system('[build-system]\nrequires = "setuptools"\n')


def test_generator_version_replaces_the_sdists_own_constraint() -> None:
    system = read_build_system(
        '[build-system]\nrequires = ["hatchling>=1.4", "hatch-vcs"]\n'
        'build-backend = "hatchling.build"\n'
    )
    assert build_requirements(system, parse_generator("hatchling 1.27.0")) == (
        "hatch-vcs",
        "hatchling==1.27.0",
    )


def test_bdist_wheel_generator_pins_wheel_and_keeps_setuptools_before_its_takeover() -> None:
    reqs = build_requirements(read_build_system(None), parse_generator("bdist_wheel (0.42.0)"))
    assert reqs == ("setuptools>=40.8.0", "wheel==0.42.0", "setuptools<70.1")


def test_setuptools_generator_pins_setuptools_exactly() -> None:
    system = read_build_system('[build-system]\nrequires = ["setuptools>=61", "wheel"]\n')
    reqs = build_requirements(system, parse_generator("setuptools (80.9.0)"))
    assert reqs == ("wheel", "setuptools==80.9.0")


def test_versionless_generator_keeps_existing_requirement() -> None:
    system = read_build_system('[build-system]\nrequires = ["flit_core>=3.2,<4"]\n')
    assert build_requirements(system, parse_generator("flit")) == ("flit_core<4,>=3.2",)


def test_invalid_build_requirement_is_reported() -> None:
    system = read_build_system('[build-system]\nrequires = ["not a requirement ~~"]\n')
    with pytest.raises(ValueError, match="invalid build requirement"):
        build_requirements(system, parse_generator("hatchling 1.0"))


def test_a_project_building_itself_in_tree_is_not_pinned_from_the_index() -> None:
    system = read_build_system(
        '[build-system]\nrequires = []\nbuild-backend = "setuptools.build_meta"\n'
        'backend-path = ["."]\n'
    )
    assert system.in_tree
    assert build_requirements(system, parse_generator("setuptools (84.2.1)"), "setuptools") == ()
    # another project with an in-tree shim still gets the generator's backend
    assert build_requirements(system, parse_generator("setuptools (84.2.1)"), "demo") == (
        "setuptools==84.2.1",
    )


def test_universal_wheels_get_the_universal_option_in_the_setuptools_eras_form() -> None:
    wheel = parse_generator("bdist_wheel (0.34.2)")
    assert infer_config_settings(wheel, ["py2-none-any", "py3-none-any"], "56.2.0") == (
        ("--global-option", ("--universal",)),
    )
    modern = parse_generator("setuptools (80.9.0)")
    assert infer_config_settings(modern, ["py2-none-any", "py3-none-any"], "80.9.0") == (
        ("--build-option", ("--universal",)),
    )


def test_python3_only_or_other_backends_need_no_settings() -> None:
    assert (
        infer_config_settings(parse_generator("bdist_wheel (0.34.2)"), ["py3-none-any"], "56") == ()
    )
    hatch = parse_generator("hatchling 1.27.0")
    assert infer_config_settings(hatch, ["py2-none-any", "py3-none-any"], None) == ()


def test_a_versionless_generator_adds_no_requirement() -> None:
    system = read_build_system('[build-system]\nrequires = []\nbuild-backend = "backend"\n')
    assert build_requirements(system, parse_generator("in-tree")) == ()


def _system(requires: list[str], backend: str) -> BuildSystem:
    return BuildSystem(tuple(requires), backend, declared=True)


def test_a_generator_naming_the_backend_package_maps_to_the_required_distribution() -> None:
    pin = parse_generator("poetry 1.0.7")
    system = _system(["poetry-core>=1.0.0a9"], "poetry.core.masonry.api")
    aliased = alias_through_requirements(pin, system)
    assert (aliased.distribution, aliased.version) == ("poetry-core", "1.0.7")
    assert build_requirements(system, aliased) == ("poetry-core==1.0.7",)


def test_a_generator_that_is_its_own_distribution_is_not_remapped() -> None:
    pin = parse_generator("poetry 1.0.7")
    # the sdist requires the Generator's distribution itself
    assert alias_through_requirements(pin, _system(["poetry>=1"], "poetry.masonry.api")) == pin
    # the backend is imported from another package
    assert alias_through_requirements(pin, _system(["poetry-core"], "other.api")) == pin
    # two candidates: no guess
    two = _system(["poetry-core", "poetry-dynamic"], "poetry.core.masonry.api")
    assert alias_through_requirements(pin, two) == pin
    # no version on the Generator: nothing to pin
    bare = parse_generator("poetry")
    assert alias_through_requirements(bare, _system(["poetry-core"], "poetry.core.api")) == bare


def test_setup_py_options_go_through_the_setting_the_setuptools_version_reads() -> None:
    assert setuptools_option_key("63.4.3") == "--global-option"
    assert setuptools_option_key("64.0.0") == "--build-option"
    assert setuptools_option_key(None) == "--build-option"
    universal = (("--global-option", ("--universal",)),)
    assert with_options(universal, "--global-option", ["--no-x-ext"]) == (
        ("--global-option", ("--universal", "--no-x-ext")),
    )
    assert with_options((), "--build-option", ["--pure"]) == (("--build-option", ("--pure",)),)
    assert with_options(universal, "--build-option", []) == universal
