"""The machine and software the figures were measured on."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("tensorflow", "keras", "numpy", "celery", "kombu", "redis", "flask", "gunicorn", "sqlalchemy", "psycopg")


def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _redis_server() -> str:
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return next((part.removeprefix("v=") for part in out.split() if part.startswith("v=")), out.strip() or "unknown")


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where /proc/loadavg is missing)."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def describe(database_url: str | None) -> dict[str, object]:
    """Cores, CPU model, memory, OS, Python and the versions of the packages that matter."""
    memory_kib = _first("/proc/meminfo", "MemTotal").split()[0]
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _first("/proc/cpuinfo", "model name"),
        "memory_gib": round(int(memory_kib) / 1024**2, 1) if memory_kib.isdigit() else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "redis_server": _redis_server(),
        "database": (database_url or "sqlite").split(":", 1)[0].split("+", 1)[0],
        "device": "CPU (worker started with --gpu none)",
        "loadavg_before": loadavg(),
    }


def summary(info: dict) -> str:
    """One line for the console header."""
    packages = info["packages"]
    return (
        f"{info['usable_cores']} cores ({info['cpu_model']}), {info['memory_gib']} GiB, Python {info['python']}, "
        f"TensorFlow {packages['tensorflow']}, Keras {packages['keras']}, Celery {packages['celery']}, "
        f"Redis {info['redis_server']}, database {info['database']}"
    )
