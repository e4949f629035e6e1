"""Settings, read from the environment (``REBUILDER_*``) once, at the entry point.

The one :class:`Settings` object is built by the CLI (or a worker's start-up) and passed
down; nothing deeper reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_index_url() -> str:
    """The package index's own simple API (pypi-simple's constant, imported when needed)."""
    from pypi_simple import PYPI_SIMPLE_ENDPOINT  # noqa: PLC0415 - 0.1 s most commands skip

    return str(PYPI_SIMPLE_ENDPOINT)


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "pypi-rebuilder"


class Settings(BaseSettings):
    """Every knob of the rebuilder, with the defaults a single user wants."""

    model_config = SettingsConfigDict(env_prefix="REBUILDER_", frozen=True)

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
