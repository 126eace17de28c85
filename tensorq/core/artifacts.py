"""Removing what deletes free: files and folders under the artifact directory, never outside it."""

from __future__ import annotations

from pathlib import Path


def _inside(root: str | Path, path: str | Path) -> Path | None:
    """``path`` resolved when it lies under ``root``, else None."""
    resolved = Path(path).resolve()
    return resolved if resolved.is_relative_to(Path(root).resolve()) else None


def remove_file(root: str | Path, path: str | Path) -> int:
    """Delete the file at ``path`` (only under ``root``) and its folder when that is left empty; bytes freed."""
    target = _inside(root, path)
    if target is None or not target.is_file():
        return 0
    size = target.stat().st_size
    target.unlink(missing_ok=True)
    try:
        target.parent.rmdir()  # only when empty
    except OSError:
        pass
    return size


def remove_folder(root: str | Path, folder: str | Path, keep: list[str]) -> int:
    """Delete ``folder`` (only under ``root``) except the files in ``keep``; bytes freed."""
    target = _inside(root, folder)
    if target is None or not target.is_dir():
        return 0
    kept = {p for p in (_inside(root, k) for k in keep) if p is not None}
    freed = 0
    for item in sorted(target.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if item in kept:
            continue
        try:
            if item.is_file() or item.is_symlink():
                freed += item.lstat().st_size
                item.unlink(missing_ok=True)
            elif item.is_dir() and not any(item.iterdir()):
                item.rmdir()
        except FileNotFoundError:  # a concurrent sweep removed it first
            continue
    try:
        if not any(target.iterdir()):
            target.rmdir()
    except FileNotFoundError:
        pass
    return freed
