"""The strategy: a plain, serializable record of everything one build needs.

Same strategy in, same bytes out. It is saved with the evidence so anyone can re-run
it, and becomes the ``externalParameters`` of the provenance statement.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rebuilder.index.model import BuildRequirement, PinnedFile

STRATEGY_SCHEMA = 1


@dataclass(frozen=True)
class BackendPin:
    """The build backend named by the published wheel's ``WHEEL`` Generator line."""

    generator: str  # the Generator line as published, verbatim
    distribution: str | None  # the distribution that provides it, e.g. "wheel", "hatchling"
    version: str | None  # None when the line carries no version

    @property
    def requirement(self) -> str | None:
        if self.distribution is None:
            return None
        if self.version is None:
            return self.distribution
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class SourceBuild:
    """A build requirement that had no wheel, built from its sdist for this rebuild."""

    name: str
    version: str
    sdist: PinnedFile  # the sdist, as the index lists it (downloaded hash-checked)
    wheel: PinnedFile  # the wheel built from it (url empty: it exists only here)

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class ArchiveInputs:
    """Inputs that shape the archive's bytes, inferred from the published wheel.

    ``source_date_epoch`` is exported as ``SOURCE_DATE_EPOCH`` when set. When the
    published wheel was built without it (many distinct entry times), source files keep
    the mtimes of the sdist and files written during the build are given
    ``build_clock`` (the replayed wall clock of the original build) instead. ``tz`` is
    the original build's time zone (backends that write local times show it), and
    ``source_mtime`` the one mtime all source files had (a fresh checkout) when the
    published wheel shows one and the sdist's own mtimes do not match it.
    ``source_mode_mask`` holds the mode bits the original extraction of the sdist cleared
    (see :mod:`rebuilder.plan.modes`).
    """

    source_date_epoch: int | None
    build_clock: int | None
    umask: int = 0o022
    tz: str = "UTC"
    source_mtime: int | None = None  # every source file's mtime, when the original had one
    # the original build's clock when it wrote each generated file: (archive path, time)
    generated_times: tuple[tuple[str, int], ...] = ()
    # mode bits cleared from every source file before the build: 0o022 when the original
    # frontend extracted the sdist through tarfile's ``data`` filter
    source_mode_mask: int = 0


@dataclass(frozen=True)
class Strategy:
    """Everything needed to rebuild one published wheel from its sdist."""

    project: str
    version: str
    target: str  # the published filename this strategy rebuilds
    distribution: str  # "wheel" (sdist later)
    source: PinnedFile
    backend: BackendPin
    requirements: tuple[BuildRequirement, ...]
    archive: ArchiveInputs
    image: str  # the image reference used to run, by digest or image id
    image_digest: str
    python_version: str
    resolved_as_of: str | None  # ISO 8601 upload time used for --exclude-newer
    interpreter_reason: str = ""  # why python_version was chosen (the traces read)
    build_requires: tuple[str, ...] = ()  # the requirement specs before resolution
    config_settings: tuple[tuple[str, tuple[str, ...]], ...] = ()  # PEP 517, as pairs
    schema: int = STRATEGY_SCHEMA
    notes: tuple[str, ...] = field(default=())
    # variables the build code documents as its pure switch (see plan.pureswitch)
    build_env: tuple[tuple[str, str], ...] = ()
    # build requirements that had no wheel, built from their sdist (see plan.sourcedeps)
    built_from_source: tuple[SourceBuild, ...] = ()

    @property
    def install_specs(self) -> tuple[str, ...]:
        """Every ``name==version`` the build installs from the wheelhouse."""
        return (
            *(r.spec for r in self.requirements),
            *(b.spec for b in self.built_from_source),
        )

    @property
    def env(self) -> dict[str, str]:
        """The environment variables the build runs with."""
        env = dict(self.build_env)
        env.update({"TZ": self.archive.tz, "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0"})
        if self.archive.source_date_epoch is not None:
            env["SOURCE_DATE_EPOCH"] = str(self.archive.source_date_epoch)
        return env

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["env"] = self.env
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Strategy:
        """Load a strategy saved by :meth:`to_json` (the evidence's ``strategy.json``)."""
        if data.get("schema") != STRATEGY_SCHEMA:
            msg = f"unsupported strategy schema {data.get('schema')!r}"
            raise ValueError(msg)
        return cls(
            project=data["project"],
            version=data["version"],
            target=data["target"],
            distribution=data["distribution"],
            source=PinnedFile(**data["source"]),
            backend=BackendPin(**data["backend"]),
            requirements=tuple(
                BuildRequirement(r["name"], r["version"], PinnedFile(**r["file"]))
                for r in data["requirements"]
            ),
            archive=_archive_inputs(data["archive"]),
            image=data["image"],
            image_digest=data["image_digest"],
            python_version=data["python_version"],
            interpreter_reason=str(data.get("interpreter_reason", "")),
            resolved_as_of=data["resolved_as_of"],
            build_requires=tuple(data.get("build_requires", ())),
            config_settings=tuple(
                (str(k), tuple(str(x) for x in v)) for k, v in data.get("config_settings", ())
            ),
            notes=tuple(data.get("notes", ())),
            build_env=tuple((str(k), str(v)) for k, v in data.get("build_env", ())),
            built_from_source=tuple(
                SourceBuild(
                    str(b["name"]),
                    str(b["version"]),
                    PinnedFile(**b["sdist"]),
                    PinnedFile(**b["wheel"]),
                )
                for b in data.get("built_from_source", ())
            ),
        )


def _archive_inputs(data: dict[str, Any]) -> ArchiveInputs:
    times = tuple((str(name), int(when)) for name, when in data.get("generated_times", ()))
    return ArchiveInputs(**{**data, "generated_times": times})
