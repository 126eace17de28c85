"""Print the requirements of pyproject.toml's base install plus the given extras, one a line (stdlib only).

    python3 deploy/requirements.py pyproject.toml api,autoscale

Self-references (``tensorq[worker-base]``) are expanded, so the lines can go to ``pip install`` or ``pip wheel``
before the project itself is copied into an image (a dependency layer that code changes do not rebuild).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The base dependencies and those of ``extras``, self-references expanded, in order, without duplicates."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    name = project["name"]
    out: list[str] = list(project.get("dependencies", []))
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"unknown extra {extra!r}; known: {', '.join(optional)}")
        seen.add(extra)
        for line in optional[extra]:
            own = re.fullmatch(rf"{re.escape(name)}\[([^\]]+)\]", line.strip())
            if own:
                todo.extend(part.strip() for part in own.group(1).split(","))
            else:
                out.append(line)
    return list(dict.fromkeys(out))


if __name__ == "__main__":
    wanted = [e for e in (sys.argv[2] if len(sys.argv) > 2 else "").split(",") if e]
    print("\n".join(requirements(Path(sys.argv[1]), wanted)))
