"""The in-container driver's pure parts, run on the host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rebuilder.sandbox import driver
from rebuilder.sandbox.docker import driver_spec
from rebuilder.sandbox.model import BuildRequest, SandboxLimits


def make_site(tmp_path: Path, dists: dict[str, tuple[str, list[str]]]) -> list[str]:
    site = tmp_path / "site-packages"
    for name, (version, requires) in dists.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        lines += [f"Requires-Dist: {r}" for r in requires]
        (info / "METADATA").write_text("\n".join(lines) + "\n")
    return [str(site)]


def test_the_host_spec_is_what_the_driver_reads(tmp_path: Path) -> None:
    request = BuildRequest(
        image="i",
        source_dir=tmp_path,
        wheelhouse=tmp_path,
        requirements=("setuptools==75.0.0", "wheel==0.45.0"),
        distribution="wheel",
        env={"SOURCE_DATE_EPOCH": "1700000000", "TZ": "UTC"},
        output_dir=tmp_path,
        umask=0o002,
        build_clock=1_600_000_000,
        source_mtime=1_500_000_000,
        source_mode_mask=0o022,
        limits=SandboxLimits(output_bytes=1234),
        config_settings={"--global-option": ("--universal",)},
    )

    spec = driver.DriverSpec.from_json(driver_spec(request))

    assert spec == driver.DriverSpec(
        distribution="wheel",
        requirements=("setuptools==75.0.0", "wheel==0.45.0"),
        env={"SOURCE_DATE_EPOCH": "1700000000", "TZ": "UTC"},
        umask=0o002,
        build_clock=1_600_000_000,
        source_mtime=1_500_000_000,
        source_mode_mask=0o022,
        output_bytes=1234,
        config_settings={"--global-option": ["--universal"]},
    )


def test_an_unknown_distribution_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown distribution"):
        driver.DriverSpec.from_json('{"distribution": "egg"}')


def test_unmet_requirements(tmp_path: Path) -> None:
    site = make_site(
        tmp_path,
        {
            "setuptools": ("75.0.0", []),
            "Flit_Core": ("3.9.0", []),
            "plugin": ("1.0", ["extra-dep>=2; extra == 'fancy'"]),
        },
    )
    dists = driver.installed(site)

    missing = driver.unmet(
        [
            "setuptools>=61",
            "flit-core<4",
            "wheel",
            "cython<3",
            "windows-only; sys_platform == 'win32'",
            "plugin",
            "plugin[fancy]",
            "not a requirement!",
        ],
        dists,
    )

    assert missing == ["cython<3", "not a requirement!", "plugin[fancy]", "wheel"]


def test_copy_source_keeps_mtimes_and_modes(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    script = source / "pkg" / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o750)
    os.utime(script, (1_000_000_000, 1_000_000_000))
    (source / "link").symlink_to("pkg/run.sh")

    driver.copy_source(source, tmp_path / "copy", mtime=None)

    copied = tmp_path / "copy" / "pkg" / "run.sh"
    assert copied.stat().st_mtime == 1_000_000_000
    assert copied.stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "copy" / "link").is_symlink()


def test_copy_source_can_give_every_entry_one_mtime(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "a.py").write_text("")

    driver.copy_source(source, tmp_path / "copy", mtime=1_500_000_000)

    for path in (tmp_path / "copy", tmp_path / "copy" / "pkg", tmp_path / "copy" / "pkg" / "a.py"):
        assert path.stat().st_mtime == 1_500_000_000


def test_copy_source_can_clear_mode_bits_as_the_data_filter_does(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    for name, mode in (("a.py", 0o664), ("run.sh", 0o775), ("key", 0o600), ("w", 0o666)):
        (source / "pkg" / name).write_text("")
        (source / "pkg" / name).chmod(mode)
        os.utime(source / "pkg" / name, (1_000_000_000, 1_000_000_000))

    driver.copy_source(source, tmp_path / "copy", mtime=None, mode_mask=0o022)

    copied = tmp_path / "copy" / "pkg"
    modes = {p.name: p.stat().st_mode & 0o777 for p in copied.iterdir()}
    assert modes == {"a.py": 0o644, "run.sh": 0o755, "key": 0o600, "w": 0o644}
    assert all(p.stat().st_mtime == 1_000_000_000 for p in copied.iterdir())


def test_a_metadata_only_run_is_accepted() -> None:
    assert driver.DriverSpec.from_json('{"distribution": "metadata"}').distribution == "metadata"
