"""Which backend built a wheel, and what to install to build it again.

The published wheel's ``WHEEL`` file names its generator (``bdist_wheel (0.42.0)``,
``hatchling 1.27.0``, ``flit 3.12.0`` ...). That exact version is pinned on top of the
sdist's own ``[build-system] requires``, because a different backend version changes
the metadata it writes.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from rebuilder.plan.strategy import BackendPin

logger = logging.getLogger(__name__)

# Generator names that are not the name of the distribution providing them.
_GENERATOR_DISTRIBUTIONS = {
    "bdist-wheel": "wheel",
    "flit": "flit-core",
    "hatch": "hatchling",
    "uv": "uv-build",
    "uv-build": "uv-build",
}
# Before flit_core existed (flit < 2) the generator was flit itself.
_FLIT_CORE_FIRST = Version("2.0")
# setuptools took bdist_wheel over from the `wheel` distribution in 70.1.
_SETUPTOOLS_OWN_BDIST_WHEEL = "70.1"

_GENERATOR_RE = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\(?\s*v?(?P<version>[0-9][^\s()]*)\s*\)?)?\s*$"
)

LEGACY_BUILD_REQUIRES = ("setuptools>=40.8.0",)
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"


def parse_generator(line: str | None) -> BackendPin:
    """Read a ``Generator:`` value into the distribution and version to pin.

    Unknown generators are kept verbatim with their name as the distribution; a line
    with no version pins nothing but the name.
    """
    if not line or not line.strip():
        return BackendPin(generator=line or "", distribution=None, version=None)
    match = _GENERATOR_RE.match(line)
    if match is None:
        logger.info("unrecognised Generator line %r", line)
        return BackendPin(generator=line, distribution=None, version=None)
    name = canonicalize_name(match.group("name"))
    version = match.group("version")
    if version is not None:
        try:
            Version(version)
        except InvalidVersion:
            logger.info("Generator %r carries no valid version", line)
            version = None
    distribution = _GENERATOR_DISTRIBUTIONS.get(name, name)
    if name == "flit" and version is not None and Version(version) < _FLIT_CORE_FIRST:
        distribution = "flit"
    return BackendPin(generator=line, distribution=distribution, version=version)


@dataclass(frozen=True)
class BuildSystem:
    """The ``[build-system]`` table of a source tree (with PEP 517's defaults)."""

    requires: tuple[str, ...]
    backend: str
    declared: bool  # False when the defaults were used (no pyproject.toml or table)
    in_tree: bool = False  # ``backend-path`` given: the backend is imported from the source
    backend_path: tuple[str, ...] = ()  # the ``backend-path`` folders, as written


def read_build_system(pyproject_text: str | None) -> BuildSystem:
    """Parse ``pyproject.toml`` text; malformed TOML raises ValueError."""
    if pyproject_text is None:
        return BuildSystem(LEGACY_BUILD_REQUIRES, LEGACY_BACKEND, declared=False)
    try:
        data = tomllib.loads(pyproject_text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"pyproject.toml is not valid TOML: {exc}"
        raise ValueError(msg) from None
    table = data.get("build-system")
    if not isinstance(table, dict):
        return BuildSystem(LEGACY_BUILD_REQUIRES, LEGACY_BACKEND, declared=False)
    requires = table.get("requires", list(LEGACY_BUILD_REQUIRES))
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        msg = "pyproject.toml: build-system.requires must be a list of strings"
        raise ValueError(msg)
    backend = table.get("build-backend", LEGACY_BACKEND)
    if not isinstance(backend, str):
        msg = "pyproject.toml: build-system.build-backend must be a string"
        raise ValueError(msg)  # noqa: TRY004 - a malformed file, reported as a value error
    paths = table.get("backend-path") or []
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        msg = "pyproject.toml: build-system.backend-path must be a list of strings"
        raise ValueError(msg)
    return BuildSystem(
        tuple(requires), backend, declared=True, in_tree=bool(paths), backend_path=tuple(paths)
    )


def alias_through_requirements(pin: BackendPin, system: BuildSystem) -> BackendPin:
    """Map a Generator name to the distribution the sdist itself requires for it.

    Some backends write the name of their import package, not of their distribution,
    as Generator (``poetry 1.0.7`` from ``poetry-core``). When the sdist's
    ``build-backend`` is imported from that package, the Generator's distribution is
    not among the sdist's requirements, and exactly one requirement is named
    ``<name>-...``, that requirement is the distribution to pin at the Generator's
    version.
    """
    if pin.distribution is None or pin.version is None or not system.declared:
        return pin
    name = canonicalize_name(pin.distribution)
    top = canonicalize_name(system.backend.split(":", 1)[0].split(".", 1)[0])
    if top != name:
        return pin
    try:
        required = {canonicalize_name(Requirement(r).name) for r in system.requires}
    except InvalidRequirement:
        return pin
    if name in required:
        return pin
    candidates = sorted(r for r in required if r.startswith(f"{name}-"))
    if len(candidates) != 1:
        return pin
    return BackendPin(pin.generator, candidates[0], pin.version)


def build_requirements(
    system: BuildSystem, pin: BackendPin, project: str | None = None
) -> tuple[str, ...]:
    """The requirements to resolve: the sdist's own, with the generator's version pinned.

    A project that builds itself (an in-tree backend naming the project as generator,
    as setuptools does) gets no pin: its backend is the source being built.

    A requirement on the pinned distribution is replaced by the exact pin. A wheel made
    by the ``wheel`` distribution's ``bdist_wheel`` also means setuptools was older than
    the release that took that command over, and setuptools builds of that era asked
    for ``wheel`` dynamically, so it is added.
    """
    out: list[str] = []
    pinned = canonicalize_name(pin.distribution) if pin.distribution else None
    if system.in_tree and project is not None and pinned == canonicalize_name(project):
        pinned = None
        pin = BackendPin(pin.generator, None, None)
    for raw in system.requires:
        try:
            req = Requirement(raw)
        except InvalidRequirement as exc:
            msg = f"invalid build requirement {raw!r}: {exc}"
            raise ValueError(msg) from None
        if pinned is not None and canonicalize_name(req.name) == pinned and pin.version:
            continue
        out.append(str(req))
    # Without a version there is nothing to pin: the sdist's own requirements decide
    # (a Generator name need not even be a distribution).
    if pin.requirement is not None and pin.version:
        out.append(pin.requirement)
    if pinned == "wheel" and ("setuptools" in _names(out) or "setuptools" in system.backend):
        out.append(f"setuptools<{_SETUPTOOLS_OWN_BDIST_WHEEL}")
    return tuple(out)


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


# setuptools 64 added ``--build-option`` for options of the command; before it,
# ``--global-option`` values were appended after the command and served the same end.
_SETUPTOOLS_BUILD_OPTION = Version("64")
_BDIST_WHEEL_PROVIDERS = {"wheel", "setuptools"}


def infer_config_settings(
    pin: BackendPin, tags: Sequence[str], setuptools_version: str | None
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """PEP 517 config settings the original build must have used, read from its tags.

    A pure wheel tagged for both Python 2 and 3 (``py2.py3-none-any``) comes from
    ``bdist_wheel --universal`` (the option or ``universal = 1`` in ``setup.cfg``);
    passing it again is harmless when the configuration already says so.
    """
    interpreters = {tag.split("-", 1)[0] for tag in tags}
    if pin.distribution not in _BDIST_WHEEL_PROVIDERS or not {"py2", "py3"} <= interpreters:
        return ()
    return ((setuptools_option_key(setuptools_version), ("--universal",)),)


def setuptools_option_key(setuptools_version: str | None) -> str:
    """The PEP 517 config setting by which setuptools puts an option on ``setup.py``'s argv.

    From setuptools 64 on, ``--build-option`` values follow the command; before it, only
    ``--global-option`` existed (appended after ``bdist_wheel`` by the legacy hooks).
    Either way a ``setup.py`` that looks for the option in ``sys.argv`` sees it.
    """
    if setuptools_version is not None:
        try:
            if Version(setuptools_version) < _SETUPTOOLS_BUILD_OPTION:
                return "--global-option"
        except InvalidVersion:
            pass
    return "--build-option"


def with_options(
    settings: tuple[tuple[str, tuple[str, ...]], ...], key: str, options: Sequence[str]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``settings`` with ``options`` appended to ``key``'s values (added when absent)."""
    if not options:
        return settings
    merged = dict(settings)
    merged[key] = (*merged.get(key, ()), *(o for o in options if o not in merged.get(key, ())))
    return tuple(merged.items())
