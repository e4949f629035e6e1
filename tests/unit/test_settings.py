"""Settings read from ``REBUILDER_*`` variables as their fields' types say, without pydantic."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pypi_simple
import pytest

from rebuilder.settings import Settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().startswith("rebuilder_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("variable", "text", "field", "expected"),
    [
        ("REBUILDER_FEEDS", "yes", "feeds", True),
        ("REBUILDER_FEEDS", "Off", "feeds", False),
        ("REBUILDER_FEEDS", "1", "feeds", True),
        ("REBUILDER_FEEDS", "F", "feeds", False),
        ("REBUILDER_BUILD_PIDS", " 12 ", "build_pids", 12),
        ("REBUILDER_BUILD_PIDS", "1_000", "build_pids", 1000),
        ("REBUILDER_BUILD_PIDS", "64.0", "build_pids", 64),
        ("REBUILDER_BUILD_PIDS", "+5", "build_pids", 5),
        ("REBUILDER_BUILD_TIMEOUT", "1e3", "build_timeout", 1000.0),
        ("REBUILDER_BUILD_TIMEOUT", "7", "build_timeout", 7.0),
        ("REBUILDER_FOLLOW", "all", "follow", "all"),
        ("REBUILDER_SOURCE_OVERRIDES", '{"demo": "https://git.example/demo"}', "source_overrides",
         {"demo": "https://git.example/demo"}),
        ("REBUILDER_SOURCE_OVERRIDES", "null", "source_overrides", {}),
        ("REBUILDER_IMAGE", " kept as is ", "image", " kept as is "),
        ("REBUILDER_SIGNING_KEY", "keys/k.pem", "signing_key", Path("keys/k.pem")),
        ("REBUILDER_CACHE_DIR", "/var/cache/rb", "cache_dir", Path("/var/cache/rb")),
        ("rebuilder_web_port", "9090", "web_port", 9090),
        ("Rebuilder_Web_Port", "9091", "web_port", 9091),
    ],
)  # fmt: skip
def test_a_variable_is_read_as_its_field_s_type(
    monkeypatch: pytest.MonkeyPatch, variable: str, text: str, field: str, expected: object
) -> None:
    monkeypatch.setenv(variable, text)
    value = getattr(Settings(), field)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("variable", "text", "says"),
    [
        ("REBUILDER_FEEDS", "maybe", "not a boolean"),
        ("REBUILDER_FEEDS", "", "not a boolean"),
        ("REBUILDER_BUILD_PIDS", "1.5", "not an integer"),
        ("REBUILDER_BUILD_PIDS", "1e3", "not an integer"),
        ("REBUILDER_BUILD_PIDS", "1__0_", "not an integer"),
        ("REBUILDER_BUILD_TIMEOUT", "soon", "not a number"),
        ("REBUILDER_FOLLOW", "ALL", "not one of 'watched', 'all'"),
        ("REBUILDER_BACKFILL_RELEASES", "0", "less than 1"),
        ("REBUILDER_SOURCE_OVERRIDES", "not json", "not JSON"),
        ("REBUILDER_SOURCE_OVERRIDES", '{"demo": 1}', "not an object of strings"),
        ("REBUILDER_SOURCE_MIRRORS", "[]", "not an object of strings"),
    ],
)
def test_a_bad_value_is_a_value_error_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, text: str, says: str
) -> None:
    monkeypatch.setenv(variable, text)
    with pytest.raises(ValueError, match=f"^{variable}: .*{says}"):
        Settings()


def test_defaults_without_variables() -> None:
    settings = Settings()
    assert settings.index_url == pypi_simple.PYPI_SIMPLE_ENDPOINT
    assert settings.out_dir == Path("rebuilds")
    assert settings.image is None
    assert settings.feeds is True
    assert settings.backfill_releases == 3
    assert settings.source_overrides == {}
    assert settings.signing_key_path == settings.cache_dir / "keys" / "signing-key.pem"


def test_keywords_win_over_the_environment_and_are_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REBUILDER_OUT_DIR", "from-env")
    monkeypatch.setenv("REBUILDER_WEB_PORT", "not a port")  # read only when not given
    settings = Settings(out_dir=str(tmp_path), web_port=81, build_timeout=5)
    assert settings.out_dir == tmp_path
    assert settings.web_port == 81
    assert settings.build_timeout == 5.0
    assert isinstance(settings.build_timeout, float)
    with pytest.raises(ValueError, match="backfill_releases: 0 is less than 1"):
        Settings(backfill_releases=0, web_port=1)
    with pytest.raises(TypeError, match="unknown settings: colour"):
        Settings(colour="blue", web_port=1)


def test_model_copy_replaces_checked_fields_and_leaves_the_original() -> None:
    settings = Settings(worker_threads=1)
    copied = settings.model_copy(update={"out_dir": "elsewhere", "worker_threads": 4})
    assert copied.out_dir == Path("elsewhere")
    assert copied.worker_threads == 4
    assert settings.out_dir == Path("rebuilds")
    assert settings.worker_threads == 1
    assert copied.cache_dir == settings.cache_dir
    with pytest.raises(ValueError, match="worker_threads"):
        settings.model_copy(update={"worker_threads": "many"})
    with pytest.raises(TypeError, match="unknown settings"):
        settings.model_copy(update={"colour": "blue"})


def test_settings_are_frozen_and_every_field_says_what_it_is() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.out_dir = Path("x")  # type: ignore[misc]
    for setting in dataclasses.fields(Settings):
        assert setting.metadata["description"], setting.name


def test_every_field_s_type_can_be_read() -> None:
    """A field of a type without a reader fails here, not in an operator's shell."""
    defaults = Settings()
    again = Settings(**{f.name: getattr(defaults, f.name) for f in dataclasses.fields(Settings)})
    assert again == defaults
