"""The build driver that runs *inside* the sandbox container.

It is bind-mounted read-only into the container and run with the image's tools
interpreter (``/opt/rebuilder-tools/bin/python -I driver.py SPEC_JSON``). It may use
only the standard library and the tools installed there (build, pyproject_hooks,
packaging); it never imports ``rebuilder``.

Steps: copy the read-only source tree to scratch (mtimes and modes kept), apply the
umask, make a fresh virtualenv, install the requested wheels from the read-only
wheelhouse only, ask the backend for its dynamic build requirements (stopping with
``missing-requirements`` when some are not installed) and build into ``/out`` (a tmpfs
of the container). The outcome goes to ``/out/result.json``; the warden (PID 1, see
``warden.py``) hands both to the host. The build log is this process's output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

SOURCE = Path("/src")
WHEELHOUSE = Path("/wheelhouse")
OUT = Path("/out")
SCRATCH = Path("/scratch")
TOOLS = Path("/opt/rebuilder-tools")
CLOCK_REPLAY = Path(__file__).resolve().parent / "clockreplay"
RESULT_NAME = "result.json"

#: Exit codes; the host reads result.json first and uses these as a cross-check.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_MISSING = 3
EXIT_TOO_LARGE = 4

_EXIT_CODES = {
    "ok": EXIT_OK,
    "failed": EXIT_FAILED,
    "missing-requirements": EXIT_MISSING,
    "output-too-large": EXIT_TOO_LARGE,
}


@dataclass(frozen=True)
class DriverSpec:
    """What the host asks for (the JSON document given as the only argument)."""

    # "metadata": only the wheel's METADATA, from prepare_metadata_for_build_wheel
    distribution: Literal["wheel", "sdist", "metadata"] = "wheel"
    requirements: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    umask: int = 0o022
    build_clock: int | None = None
    source_mtime: int | None = None
    source_mode_mask: int = 0
    output_bytes: int = 512 * 1024**2
    config_settings: Mapping[str, list[str]] = field(default_factory=dict)
    clock_map: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> DriverSpec:
        """Parse and check the spec; anything unexpected is an error."""
        raw: dict[str, Any] = json.loads(text)
        distribution = raw.get("distribution", "wheel")
        if distribution not in ("wheel", "sdist", "metadata"):
            raise ValueError(f"unknown distribution {distribution!r}")
        env = {str(k): str(v) for k, v in dict(raw.get("env", {})).items()}
        return cls(
            distribution=distribution,
            requirements=tuple(str(r) for r in raw.get("requirements", ())),
            env=env,
            umask=int(raw.get("umask", 0o022)),
            build_clock=None if raw.get("build_clock") is None else int(raw["build_clock"]),
            source_mtime=None if raw.get("source_mtime") is None else int(raw["source_mtime"]),
            source_mode_mask=int(raw.get("source_mode_mask", 0)) & 0o777,
            output_bytes=int(raw.get("output_bytes", 512 * 1024**2)),
            config_settings={
                str(k): [str(v) for v in values]
                for k, values in dict(raw.get("config_settings", {})).items()
            },
            clock_map={str(k): int(v) for k, v in dict(raw.get("clock_map", {})).items()},
        )


class Stop(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Ends the build early with a status other than ``ok``."""

    def __init__(self, status: str, detail: str, missing: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.missing = tuple(missing)


class Phases:
    """Wall-clock seconds per phase, in the order run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        say(f"phase {name}")
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - start, 4)


def say(message: str) -> None:
    """One line of the driver's own narration in the build log."""
    print(f"[rebuilder-driver] {message}", flush=True)


def read_source_modes() -> dict[str, int]:
    """The modes the host opened up (see ``grant_read``), staged beside this driver."""
    path = Path(__file__).resolve().parent / "source-modes.json"
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): int(v) for k, v in dict(raw).items()}


def copy_source(
    source: Path,
    target: Path,
    mtime: int | None,
    modes: Mapping[str, int] | None = None,
    mode_mask: int = 0,
) -> None:
    """Copy the tree keeping modes and mtimes; then give every entry ``mtime`` if set.

    ``modes`` are the original modes of entries the host had to open up for reading.
    ``mode_mask`` bits are then cleared from every regular file, as the original build's
    extraction of the sdist did (tarfile's ``data`` filter clears ``0o022``).
    """
    shutil.copytree(source, target, symlinks=True, copy_function=shutil.copy2)
    for relative, mode in (modes or {}).items():
        path = (target / relative).resolve()
        if path.is_relative_to(target.resolve()) and not path.is_symlink():
            path.chmod(mode & 0o7777 | stat.S_IRUSR | stat.S_IWUSR)
    if mode_mask:
        for top, _, files in os.walk(target):
            for name in files:
                path = Path(top, name)
                info = path.lstat()
                if stat.S_ISREG(info.st_mode):
                    path.chmod(
                        stat.S_IMODE(info.st_mode) & ~mode_mask | stat.S_IRUSR | stat.S_IWUSR
                    )
    if mtime is None:
        return
    for top, dirs, files in os.walk(target, topdown=False):
        for name in (*files, *dirs):
            os.utime(Path(top, name), (mtime, mtime), follow_symlinks=False)
    os.utime(target, (mtime, mtime))


def base_environment(spec: DriverSpec, env_dir: Path) -> dict[str, str]:
    """The environment of every tool and backend the driver starts."""
    env = {
        "PATH": f"{env_dir / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(SCRATCH / "home"),
        "TMPDIR": str(SCRATCH / "tmp"),
        "LANG": "C.UTF-8",
        "VIRTUAL_ENV": str(env_dir),
        "UV_CACHE_DIR": str(SCRATCH / "uv-cache"),
        "UV_NO_CONFIG": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "PIP_NO_INDEX": "1",
    }
    env.update(spec.env)
    return env


def installed(site_dirs: Iterable[str]) -> dict[str, metadata.Distribution]:
    """The distributions found in ``site_dirs``, by normalized name."""
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=list(site_dirs)):
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist)
    return found


def unmet(requirements: Iterable[str], dists: Mapping[str, metadata.Distribution]) -> list[str]:
    """The requirements (as written) that the installed ``dists`` do not satisfy."""
    return sorted(r for r in set(requirements) if not _satisfied(r, dists, frozenset()))


def _satisfied(
    text: str, dists: Mapping[str, metadata.Distribution], seen: frozenset[str], extra: str = ""
) -> bool:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return False
    if req.marker is not None and not req.marker.evaluate({"extra": extra}):
        return True
    name = canonicalize_name(req.name)
    dist = dists.get(name)
    if dist is None or not req.specifier.contains(dist.version, prereleases=True):
        return False
    for wanted in sorted(req.extras):
        key = f"{name}[{wanted}]"
        if key in seen:
            continue
        for dep in dist.requires or ():
            dep_req = Requirement(dep)
            if dep_req.marker is None or not dep_req.marker.evaluate({"extra": wanted}):
                continue  # not part of this extra
            if not _satisfied(dep, dists, seen | {key}, extra=wanted):
                return False
    return True


def run_tool(command: Sequence[str], env: Mapping[str, str], what: str) -> None:
    """Run a tool with its output in the build log; a failure stops the build."""
    say(" ".join(command))
    completed = subprocess.run(command, env=dict(env), cwd=SCRATCH, check=False)
    if completed.returncode != 0:
        raise Stop("failed", f"{what} failed (exit {completed.returncode})")


def build(spec: DriverSpec, phases: Phases) -> tuple[str, str | None]:
    """Run every step; return (status, artifact file name)."""
    # Imported here so that a broken tools environment still yields a result.json.
    from build import BuildBackendException, BuildException, ProjectBuilder  # noqa: PLC0415

    os.umask(spec.umask)
    for sub in ("home", "tmp"):
        (SCRATCH / sub).mkdir(exist_ok=True)
    tree = SCRATCH / "src"
    env_dir = SCRATCH / "env"
    dist_dir = SCRATCH / "dist"
    with phases("copy"):
        copy_source(SOURCE, tree, spec.source_mtime, read_source_modes(), spec.source_mode_mask)
    env = base_environment(spec, env_dir)
    uv = str(TOOLS / "bin" / "uv")
    with phases("venv"):
        interpreter = os.path.realpath(sys.executable)
        run_tool([uv, "venv", "--offline", "--python", interpreter, str(env_dir)], env, "venv")
    python = str(env_dir / "bin" / "python")
    with phases("install"):
        if spec.requirements:
            run_tool(
                [uv, "pip", "install", "--python", python, "--offline", "--no-index",
                 "--find-links", str(WHEELHOUSE), "--no-deps", "--no-build",
                 *spec.requirements],
                env,
                "installing the build requirements",
            )  # fmt: skip
    site_dirs = [str(p) for p in (env_dir / "lib").glob("python*/site-packages")]

    backend_env = dict(env)
    if spec.build_clock is not None:
        backend_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(CLOCK_REPLAY), backend_env.get("PYTHONPATH", "")) if p
        )
        backend_env["REBUILDER_BUILD_CLOCK"] = str(spec.build_clock)
        if spec.clock_map:
            backend_env["REBUILDER_BUILD_CLOCK_MAP"] = json.dumps(dict(spec.clock_map))
        # Everything the backend touches from here on counts as "written by the build".
        backend_env["REBUILDER_BUILD_START_NS"] = str(time.time_ns())

    def runner(
        cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
    ) -> None:
        subprocess.run(cmd, cwd=cwd, env={**backend_env, **(extra_environ or {})}, check=True)

    # Lists, as old setuptools concatenate them onto argv. Only the build hook gets them:
    # old setuptools hand ``--global-option`` to ``egg_info`` when asked for requirements.
    settings = {k: list(v) for k, v in spec.config_settings.items()}
    try:
        builder = ProjectBuilder(tree, python_executable=python, runner=runner)
        with phases("requires"):
            missing = unmet(builder.build_system_requires, installed(site_dirs))
            if not missing:
                kind = "wheel" if spec.distribution == "metadata" else spec.distribution
                dynamic = builder.get_requires_for_build(kind)
                missing = unmet(dynamic, installed(site_dirs))
            if missing:
                raise Stop("missing-requirements", "build requirements not installed", missing)
        with phases("build"):
            if spec.distribution == "metadata":
                built = Path(builder.metadata_path(dist_dir)) / "METADATA"
            else:
                built = Path(builder.build(spec.distribution, dist_dir, settings))
    except (BuildBackendException, BuildException) as exc:
        raise Stop("failed", f"the build backend failed: {exc}") from None
    size = built.stat().st_size
    if size > spec.output_bytes:
        raise Stop("output-too-large", f"{built.name} is {size} bytes, over {spec.output_bytes}")
    shutil.copyfile(built, OUT / built.name)
    return "ok", built.name


def write_result(result: Mapping[str, object]) -> None:
    """Write result.json atomically, so the host never reads half of it."""
    partial = OUT / f".{RESULT_NAME}.partial"
    partial.write_text(json.dumps(result, indent=2, sort_keys=True), encoding="utf-8")
    partial.replace(OUT / RESULT_NAME)


def main(argv: Sequence[str]) -> int:
    """Run the build described by ``argv[1]``; the exit code mirrors the status."""
    # One stream for everything: the engine logs stdout and stderr through separate
    # pipes, so lines written to both would otherwise come out of order.
    sys.stdout.flush()
    os.dup2(sys.stdout.fileno(), sys.stderr.fileno())
    phases = Phases()
    status, artifact, detail = "failed", None, ""
    missing: tuple[str, ...] = ()
    try:
        spec = DriverSpec.from_json(argv[1])
        status, artifact = build(spec, phases)
    except Stop as stop:
        status, detail, missing = stop.status, stop.detail, stop.missing
        say(f"{status}: {detail}" + (f": {', '.join(missing)}" if missing else ""))
    except Exception as exc:  # noqa: BLE001 - any surprise must still leave a result
        traceback.print_exc()
        detail = f"driver error: {type(exc).__name__}: {exc}"
    write_result(
        {
            "status": status,
            "artifact": artifact,
            "detail": detail,
            "missing": list(missing),
            "timings": phases.seconds,
        }
    )
    say(f"result: {status}" + (f" ({artifact})" if artifact else ""))
    return _EXIT_CODES[status]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
