"""Which optional extra a command needs, and a clear message when it is not installed."""

from __future__ import annotations

import importlib.util

import click

# The modules each extra brings, as the commands that need them import them.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "api": ("flask", "gunicorn", "sqlalchemy", "alembic", "celery", "prometheus_client"),
    "worker": ("tensorflow", "keras", "sqlalchemy", "celery"),
    "autoscale": ("docker", "sqlalchemy", "prometheus_client"),
    "all": ("flask", "gunicorn", "sqlalchemy", "celery", "tensorflow", "keras"),
}


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (empty when the extra is installed)."""
    return [name for name in EXTRA_MODULES[extra] if not _importable(name)]


def _importable(name: str) -> bool:
    """Whether ``name`` can be found without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require_extra(extra: str, command: str) -> None:
    """Stop ``tensorq COMMAND`` with the install line to run when the ``extra`` is not installed."""
    missing = missing_modules(extra)
    if missing:
        raise click.ClickException(
            f"'tensorq {command}' needs the [{extra}] extra (missing: {', '.join(missing)}); "
            f"install it with: pip install 'tensorq[{extra}]'"
        )
