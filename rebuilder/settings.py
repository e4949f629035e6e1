"""Settings, read from the environment (``REBUILDER_*``) once, at the entry point.

The one :class:`Settings` object is built by the CLI (or a worker's start-up) and passed
down; nothing deeper reads the environment.

Plain Python, no pydantic: every command builds it first, and pydantic-settings' imports
alone took a third of ``rebuilder check``'s start-up (docs/benchmarks.md). A variable is
read as its field's type says, the way pydantic's lax mode reads a string: ``int`` (an
optional ``.0``), ``float``, ``bool`` (1/0, true/false, t/f, yes/no, y/n, on/off, any
case), ``Path``, ``str``, one of a ``Literal``'s choices, a JSON object of strings, or
any of these for an optional field. Names are case-insensitive; a bad value is a
``ValueError`` naming its variable; keyword arguments win over the environment.
"""

# Field(...) below is dataclasses.field with a description, not a shared default:
# ruff: noqa: RUF009

from __future__ import annotations

import json
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from dataclasses import Field as _Setting
from pathlib import Path
from typing import Any, Literal

_PREFIX = "rebuilder_"
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_INTEGRAL = re.compile(r"\s*([+-]?\d[\d_]*)(\.0*)?\s*")


def Field(  # noqa: N802 - pydantic's name and keywords, so a setting is declared as ever
    *,
    default: object = MISSING,
    default_factory: Callable[[], object] | None = None,
    description: str,
    ge: int | None = None,
) -> Any:  # noqa: ANN401 - a field's default, whatever its type
    """One setting: its default (or a factory of it), what it means, its least value."""
    metadata = {"description": description, "ge": ge}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _default_index_url() -> str:
    """The package index's own simple API (pypi-simple's constant, imported when needed)."""
    from pypi_simple import PYPI_SIMPLE_ENDPOINT  # noqa: PLC0415 - 0.1 s most commands skip

    return str(PYPI_SIMPLE_ENDPOINT)


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "pypi-rebuilder"


@dataclass(frozen=True, init=False)
class Settings:
    """Every knob of the rebuilder, with the defaults a single user wants.

    ``Settings()`` reads the ``REBUILDER_*`` variables; ``Settings(name=value)`` sets a
    field whatever the environment says.
    """

    index_url: str = Field(
        default_factory=_default_index_url,
        description="The simple API (PEP 503/691) of the index to check against.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Downloads, index pages and resolver caches (content-addressed).",
    )
    out_dir: Path = Field(default=Path("rebuilds"), description="Where evidence goes.")
    image: str | None = Field(
        default=None,
        description="A sandbox image reference pinned by digest; default: the local image "
        "built from images/sandbox.",
    )
    image_base: str | None = Field(
        default=None,
        description="Base of the local sandbox image, e.g. an official Python image pinned "
        "by digest; default: a Debian bookworm base bootstrapped with debootstrap.",
    )
    python_version: str = Field(default="3.11", description="Python of the sandbox image.")
    build_timeout: float = Field(default=900.0, description="Wall-clock limit of one build (s).")
    build_memory: int = Field(default=4 * 1024**3, description="Memory limit of one build.")
    build_pids: int = Field(default=512, description="Process limit of one build.")
    build_cpus: float = Field(default=2.0, description="CPUs of one build.")
    diffoscope_timeout: float = Field(default=120.0, description="Limit of one diffoscope run.")
    signing_key: Path | None = Field(
        default=None,
        description="The operator's private signing key (PEM); default: keys/signing-key.pem "
        "in the cache folder, made on first use.",
    )
    builder_id: str = Field(
        default="https://pypi-rebuilder.dev/builders/local",
        description="URI naming this rebuilder deployment in the attestations it signs.",
    )
    database_url: str = Field(
        default="postgresql://127.0.0.1:5432/rebuilder",
        description="PostgreSQL of the fleet (psycopg connection URL).",
    )
    broker_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        description="RabbitMQ of the fleet (AMQP URL).",
    )
    page_ttl: float = Field(default=3600.0, description="How long an index page is cached (s).")
    data_dir: Path | None = Field(
        default=None,
        description="The fleet's file storage: evidence blobs (content-addressed) and work "
        "folders; default: fleet/ in the cache folder. Shared by workers and the web app.",
    )
    log_origin: str = Field(
        default="pypi-rebuilder.dev/log",
        description="Origin line of the transparency log's checkpoints (C2SP signed note).",
    )
    log_key_name: str | None = Field(
        default=None,
        description="Key name in the log's signed checkpoints; default: builder_id's host.",
    )
    checkpoint_interval: float = Field(
        default=60.0,
        description="Least seconds between two checkpoints the scheduler signs (only when "
        "the log grew).",
    )
    operator_token: str | None = Field(
        default=None,
        description="Bearer token that the JSON API's write operations require; unset: "
        "writes are refused.",
    )
    web_host: str = Field(default="127.0.0.1", description="Address the web app listens on.")
    web_port: int = Field(default=8080, description="Port the web app listens on.")
    worker_name: str | None = Field(
        default=None, description="This worker's name; default: host name and process id."
    )
    watch_default: str = Field(
        default="attrs,idna,packaging,six,certifi",
        description="Comma-separated projects the fleet watches when its watch list is empty.",
    )
    poll_interval: float = Field(default=300.0, description="Seconds between index polls.")
    feeds: bool = Field(
        default=True,
        description="Follow the index's changelog (XML-RPC), or its RSS feed when it has no "
        "XML-RPC, besides polling the watch list (which stays as the safety net).",
    )
    follow: Literal["watched", "all"] = Field(
        default="watched",
        description="What the feeds act on: 'watched' (new releases of watched projects) or "
        "'all' (every new release on the index is recorded and rebuilt).",
    )
    backfill_releases: int = Field(
        default=3,
        ge=1,
        description="Releases rebuilt and source-checked when a watched project is first "
        "seen: its newest at new-release priority, the ones before it as backfill.",
    )
    source_check_history: bool = Field(
        default=False,
        description="Source-check every recorded release of a project, not only the ones "
        "the rebuild policy chose (one sdist download and git fetch per release).",
    )
    claim_timeout: float = Field(
        default=120.0,
        description="Seconds a running attempt may go without a worker heartbeat before the "
        "scheduler takes it back (workers beat six times as often).",
    )
    network_timeout: float = Field(
        default=15.0,
        description="Seconds a PostgreSQL connection may go without an answer before it counts "
        "as lost (TCP keepalives and TCP_USER_TIMEOUT; the server is asked to give the "
        "client up after twice as long). A scheduler cut off this long stops leading.",
    )
    queue_name: str = Field(default="rebuilds", description="The RabbitMQ queue of rebuilds.")
    worker_threads: int = Field(default=1, description="Rebuilds one worker runs at once.")
    metrics_port: int = Field(
        default=0, description="Port of this process's Prometheus metrics; 0: none."
    )
    log_format: str = Field(
        default="text", description="Log lines as 'text' (a terminal) or 'json' (one per line)."
    )
    source_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Source tracing: project name -> repository URL, used instead of the "
        "URL found in the release's metadata (JSON in the environment).",
    )
    source_mirrors: dict[str, str] = Field(
        default_factory=dict,
        description="Source tracing: URL prefix -> replacement prefix, e.g. an upstream forge "
        "-> an internal mirror (JSON in the environment).",
    )
    source_clone_bytes: int = Field(
        default=512 * 1024**2, description="Source tracing: largest repository cloned (bytes)."
    )
    source_clone_timeout: float = Field(
        default=300.0, description="Source tracing: time limit of one clone or fetch (s)."
    )
    second_opinion: bool = Field(
        default=False,
        description="Fleet workers trace a mismatching wheel's release to its git tag and "
        "rebuild it from there, as `rebuilder check --second-opinion` does (the git-tag "
        "route when the wheel was built from a checkout; docs/diagnosis.md).",
    )

    def __init__(self, **values: object) -> None:
        environment = _environment()
        for setting in fields(self):
            object.__setattr__(self, setting.name, _initial(setting, values, environment))
        if values:
            raise TypeError(f"unknown settings: {', '.join(sorted(values))}")

    def model_copy(self, *, update: Mapping[str, object]) -> Settings:
        """A copy with the fields of ``update`` replaced (checked like keyword arguments)."""
        known = {setting.name: setting for setting in fields(self)}
        unknown = set(update) - set(known)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        copied = object.__new__(Settings)
        copied.__dict__.update(self.__dict__)
        for name, value in update.items():
            object.__setattr__(copied, name, _checked(name, known[name], value))
        return copied

    @property
    def fleet_dir(self) -> Path:
        """The fleet's file storage."""
        return self.data_dir or self.cache_dir / "fleet"

    @property
    def blob_dir(self) -> Path:
        """Evidence blobs, addressed by sha256 (``rebuilder.store.blobs.BlobStore``)."""
        return self.fleet_dir / "blobs"

    @property
    def signing_key_path(self) -> Path:
        """Where the signing key is (or will be made)."""
        return self.signing_key or self.cache_dir / "keys" / "signing-key.pem"


def _environment() -> dict[str, str]:
    """The ``REBUILDER_*`` variables by field name (names compared case-insensitively)."""
    found = {}
    for name, value in os.environ.items():
        lowered = name.lower()
        if lowered.startswith(_PREFIX):
            found[lowered.removeprefix(_PREFIX)] = value
    return found


def _initial(
    setting: _Setting[Any], values: dict[str, object], environment: Mapping[str, str]
) -> object:
    """A field's first value: its keyword argument (taken), its variable, or its default."""
    if setting.name in values:
        return _checked(setting.name, setting, values.pop(setting.name))
    text = environment.get(setting.name)
    if text is not None and (value := _from_environment(setting, text)) is not None:
        return value
    if setting.default_factory is not MISSING:
        return setting.default_factory()
    return setting.default


def _from_environment(setting: _Setting[Any], text: str) -> object:
    """The value of a variable, or None for a JSON ``null`` (the default then applies)."""
    name = f"{_PREFIX.upper()}{setting.name.upper()}"
    if typing.get_origin(_types()[setting.name]) is dict:
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ValueError(f"{name}: not JSON: {text!r}") from None
        return None if parsed is None else _checked(name, setting, parsed)
    return _checked(name, setting, text)


def _checked(name: str, setting: _Setting[Any], value: object) -> Any:  # noqa: ANN401 - a field's value
    """``value`` read as the field's type, its least value enforced."""
    result = _read(name, _types()[setting.name], value)
    least = setting.metadata.get("ge")
    if least is not None and result < least:
        raise ValueError(f"{name}: {result!r} is less than {least}")
    return result


def _read(name: str, kind: Any, value: object) -> object:  # noqa: ANN401 - any field's type
    """``value`` as a ``kind``; a ValueError naming ``name`` when it is none."""
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        (inner,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return _read(name, inner, value)
    if origin is Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise ValueError(f"{name}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin is dict:
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ValueError(f"{name}: {value!r} is not an object of strings")
        return dict(value)
    reader = _READERS.get(kind)
    if reader is None:  # a new field of a new type: give it a reader below
        raise TypeError(f"{name}: settings of type {kind!r} cannot be read")
    result = reader(value)
    if result is None:
        raise ValueError(f"{name}: {value!r} is not {_WHAT[kind]}")
    return result


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _path(value: object) -> Path | None:
    return Path(value) if isinstance(value, str | os.PathLike) else None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and (match := _INTEGRAL.fullmatch(value)):
        try:
            return int(match.group(1))
        except ValueError:  # misplaced underscores
            return None
    return None


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else None
    return None


_READERS: dict[object, Callable[[object], object]] = {
    str: _str,
    Path: _path,
    int: _int,
    float: _float,
    bool: _bool,
}
_WHAT = {str: "a string", Path: "a path", int: "an integer", float: "a number", bool: "a boolean"}


def _types() -> dict[str, Any]:
    """The type of each field (its annotation, evaluated once)."""
    if not _TYPES:
        _TYPES.update(typing.get_type_hints(Settings))
    return _TYPES


_TYPES: dict[str, Any] = {}
