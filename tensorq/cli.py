"""The ``tensorq`` command: server side (migrate, api, worker, keys, demo) and client side (jobs, models,
datasets: see ``cli_jobs`` and ``cli_catalog``, which import only the HTTP client)."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from tensorq.core import __version__
from tensorq.core.settings import Settings
from tensorq.extras import require_extra

# The client side's commands, imported only when named: a worker's or the API's start (a cold start from zero
# workers among them) never loads the HTTP client and its console.
CLIENT_COMMANDS = {
    "jobs": "tensorq.cli_jobs:jobs",
    "models": "tensorq.cli_catalog:models",
    "datasets": "tensorq.cli_catalog:datasets",
    "workers": "tensorq.cli_catalog:workers",
    "queues": "tensorq.cli_catalog:queues",
}


class LazyGroup(click.Group):
    """A command group whose ``lazy`` commands (name -> ``module:attribute``) are imported when first named."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, the lazy ones too."""
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command called ``cmd_name``, imported now if it is a lazy one."""
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=CLIENT_COMMANDS)
@click.version_option(__version__, prog_name="tensorq")
def main() -> None:
    """TensorQ: TensorFlow jobs behind an HTTP API."""


@main.command()
def migrate() -> None:
    """Bring the database up to the latest schema (Alembic upgrade head), and make the tune jobs' study
    storage beside it (its own schema or database file)."""
    require_extra("api", "migrate")
    from db.migrate import upgrade
    from db.studies import ensure_storage

    settings = Settings()
    upgrade(settings.database_url)
    ensure_storage(settings.database_url)
    click.echo("database is at the latest revision")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn worker processes")
@click.option(
    "--threads", default=16, show_default=True, type=int, help="threads per process (api_worker_class=gthread only)"
)
def api(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the HTTP API under gunicorn."""
    require_extra("api", "api")
    from tensorq.server import serve

    serve(Settings(), host, port, workers=workers, threads=threads)


@main.command()
@click.option("--queues", default="train,predict,explain", show_default=True, help="comma-separated queues")
@click.option("--gpu", default=None, help="GPU index to pin to, 'none' for the CPU (default: TENSORQ_GPU)")
@click.option("--concurrency", default=1, show_default=True, type=int, help="processes; keep 1 per GPU")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--name", default=None, help="node name (default tensorq-<cpu|gpuN>-<pid>@<host>)")
def worker(queues: str, gpu: str | None, concurrency: int, loglevel: str, name: str | None) -> None:
    """Run a Celery worker pinned to one GPU (or the CPU)."""
    require_extra("worker", "worker")
    from worker.main import start_worker

    try:
        start_worker(
            Settings(),
            queues=tuple(q.strip() for q in queues.split(",") if q.strip()),
            gpu=gpu,
            concurrency=concurrency,
            loglevel=loglevel,
            name=name,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@main.command()
@click.option("--wait-s", default=600.0, show_default=True, type=float, help="longest wait for the running job")
def drain(wait_s: float) -> None:
    """Tell the workers of this host to take no new job and wait until their job ends (a preStop hook)."""
    require_extra("worker", "worker")
    import socket

    from worker.drain import drain_host

    host = socket.gethostname()
    if drain_host(Settings(), host, wait_s):
        click.echo(f"{host}: drained, no job runs")
    else:
        click.echo(f"{host}: a job still runs after {wait_s:.0f}s; it is handed back at the stop", err=True)


@main.command()
@click.option("--metrics-only", is_flag=True, help="serve the queue metrics without Docker (for KEDA on Kubernetes)")
def autoscale(metrics_only: bool) -> None:
    """Set the worker-cpu replicas (and one GPU worker per GPU, when configured) from the SQL backlog through
    the Docker Engine API (compose services)."""
    require_extra("autoscale", "autoscale")
    import logging

    from worker.autoscale.main import run_autoscaler, run_queue_metrics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        (run_queue_metrics if metrics_only else run_autoscaler)(Settings())
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


@main.group()
def keys() -> None:
    """Create, list and revoke API keys."""


def _db():
    require_extra("api", "keys")
    from db.database import Database

    return Database(Settings())


@keys.command("create")
@click.option("--tenant", required=True, help="tenant name (created if new)")
@click.option("--read-only", is_flag=True, help="a key that can read but not submit or cancel")
def keys_create(tenant: str, read_only: bool) -> None:
    """Print a new API key once; only its salted hash is stored."""
    click.echo(_db().keys.create(tenant, read_only=read_only))


@keys.command("list")
def keys_list() -> None:
    """List keys (ids, tenants, scope, last use), never their secrets."""
    for key in _db().keys.list():
        scope = "read-only" if key.read_only else "read-write"
        state = f"revoked {key.revoked_at}" if key.revoked_at else "active"
        click.echo(f"{key.id}  {key.tenant}  {scope}  {state}  last used {key.last_used_at or 'never'}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id (the part after 'tq_')."""
    from tensorq.core.errors import NotFound

    try:
        _db().keys.revoke(key_id)
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"revoked {key_id}")


@main.command()
@click.option("--home", default=None, type=click.Path(file_okay=False), help="folder for the demo's database")
@click.option("--epochs", default=8, show_default=True, type=int)
@click.option("--broker", default=None, help="broker URL (default: local Redis if it answers, else filesystem://)")
def demo(home: str | None, epochs: int, broker: str | None) -> None:
    """Train a CNN on digits, predict and explain, end to end through the API, queue and a worker."""
    require_extra("all", "demo")
    from tensorq.demo import run_demo

    sys.exit(run_demo(home=home, epochs=epochs, broker=broker))


if __name__ == "__main__":
    main()
