"""Settings, read from the environment (``REBUILDER_*``) once, at the entry point.

The one :class:`Settings` object is built by the CLI (or a worker's start-up) and passed
down; nothing deeper reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from pypi_simple import PYPI_SIMPLE_ENDPOINT


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "pypi-rebuilder"


class Settings(BaseSettings):
    """Every knob of the rebuilder, with the defaults a single user wants."""

    model_config = SettingsConfigDict(env_prefix="REBUILDER_", frozen=True)

    index_url: str = Field(
        default=PYPI_SIMPLE_ENDPOINT,
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

    @property
    def signing_key_path(self) -> Path:
        """Where the signing key is (or will be made)."""
        return self.signing_key or self.cache_dir / "keys" / "signing-key.pem"
