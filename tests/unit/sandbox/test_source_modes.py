from __future__ import annotations

import os
import stat
from pathlib import Path

from rebuilder.sandbox import driver
from rebuilder.sandbox.docker import grant_read


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_private_source_files_are_opened_for_the_sandbox_and_restored_on_its_copy(
    tmp_path: Path,
) -> None:
    source = tmp_path / "src"
    (source / "keys").mkdir(parents=True)
    secret = source / "keys" / "rsa.key"
    secret.write_text("not really a key")
    secret.chmod(0o600)
    (source / "keys").chmod(0o700)
    public = source / "setup.py"
    public.write_text("")
    public.chmod(0o644)
    os.utime(secret, (1_600_000_000, 1_600_000_000))

    changed = grant_read(source)

    assert changed == {"keys": 0o700, "keys/rsa.key": 0o600}
    assert _mode(secret) & stat.S_IROTH
    assert _mode(source / "keys") & stat.S_IXOTH
    assert secret.stat().st_mtime == 1_600_000_000  # opening up keeps the mtime

    copy = tmp_path / "copy"
    driver.copy_source(source, copy, None, changed)
    assert _mode(copy / "keys" / "rsa.key") == 0o600
    assert _mode(copy / "keys") == 0o700
    assert _mode(copy / "setup.py") == 0o644
    assert (copy / "keys" / "rsa.key").stat().st_mtime == 1_600_000_000


def test_modes_naming_paths_outside_the_copy_are_ignored(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    outside = tmp_path / "outside"
    outside.write_text("x")
    outside.chmod(0o644)
    driver.copy_source(source, tmp_path / "copy", None, {"../outside": 0o600})
    assert _mode(outside) == 0o644


def test_a_top_folder_only_its_group_can_read_is_opened_and_restored(tmp_path: Path) -> None:
    """An sdist whose own folder is ``drwxr-x---``: the build user could not list it."""
    source = tmp_path / "demo-1.0"
    source.mkdir()
    (source / "setup.py").write_text("")
    (source / "setup.py").chmod(0o640)
    source.chmod(0o750)

    changed = grant_read(source)

    assert changed == {".": 0o750, "setup.py": 0o640}
    assert _mode(source) & stat.S_IROTH and _mode(source) & stat.S_IXOTH
    copy = tmp_path / "copy"
    driver.copy_source(source, copy, None, changed)
    assert _mode(copy) == 0o750
    assert _mode(copy / "setup.py") == 0o640
