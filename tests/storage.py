"""A read-only artifact store for the storage-fault tests, with or without root.

Where the test may mount (root), the folder is bind-mounted onto itself and remounted read-only: its files stay
visible and every write fails with ``EROFS``, as on a store remounted read-only. Elsewhere the same folder loses
its write permission through the whole tree: every write fails with ``EACCES``, which TensorQ treats as the same
storage fault (``tensorq.core.errors.STORAGE_ERRNOS``). Only a process that may not mount but ignores permission bits
(root without ``CAP_SYS_ADMIN`` but with ``CAP_DAC_OVERRIDE``, as in some containers) can do neither: the test
is then skipped, saying so.
"""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


@contextmanager
def read_only(folder: Path) -> Iterator[str]:
    """Make ``folder`` (created when missing) refuse every write until the block ends; yields how it did:
    ``"mount"`` or ``"chmod"``."""
    folder.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0:
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True, capture_output=True)
            yield "mount"
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    modes = {path: path.stat().st_mode for path in [folder, *folder.rglob("*")] if not path.is_symlink()}
    for path, mode in modes.items():
        path.chmod(mode & ~WRITE_BITS)
    try:
        probe = folder / ".write-probe"
        try:
            probe.touch()
        except PermissionError:
            yield "chmod"
        else:
            probe.unlink()
            pytest.skip("this process may neither mount nor be stopped by file modes (root without CAP_SYS_ADMIN)")
    finally:
        for path in reversed(list(modes)):
            path.chmod(modes[path])
