"""``tensorq models``, ``tensorq datasets``, ``tensorq workers`` and ``tensorq queues`` through the HTTP API."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tensorq.cli_common import ApiCommand, ApiGroup, Cli, api_options, short_time
from tensorq.cli_watch import figures, watch


@click.group(cls=ApiGroup)
def models() -> None:
    """Registered models: list, show, alias, delete, upload a .keras file, download a version."""


@models.command("list")
@api_options
def models_list(cli: Cli) -> None:
    """List your models with their latest version."""
    found = cli.client.models()
    if cli.as_json:
        cli.json(found)
        return
    rows = []
    for model in found:
        latest = model.versions[-1] if model.versions else None
        rows.append(
            (
                model.id,
                model.name,
                model.latest_version,
                latest.architecture if latest else "",
                figures(latest.metrics) if latest else "",
                short_time(model.created_at),
            )
        )
    cli.table(("id", "name", "latest", "architecture", "metrics", "created (UTC)"), rows)


@models.command("get")
@click.argument("model_id")
@api_options
def models_get(cli: Cli, model_id: str) -> None:
    """Show a model and each version with its metrics and the job that made it."""
    model = cli.client.model(model_id)
    if cli.as_json:
        cli.json(model)
        return
    click.echo(f"{model.name} ({model.id}), created {short_time(model.created_at)}")
    if model.aliases:
        click.echo(
            "aliases: " + ", ".join(f"{alias} -> v{version}" for alias, version in sorted(model.aliases.items()))
        )
    rows = [
        (v.version, v.architecture, v.training_job_id, figures(v.metrics), short_time(v.created_at))
        for v in model.versions
    ]
    cli.table(("version", "architecture", "job", "metrics", "created (UTC)"), rows)


@models.command("alias")
@click.argument("model")
@click.argument("alias")
@click.argument("version", type=click.IntRange(1))
@api_options
def models_alias(cli: Cli, model: str, alias: str, version: int) -> None:
    """Point ALIAS (production, staging, ...) of MODEL (its id or name) at VERSION; the move is recorded."""
    found = cli.client.set_alias(model, alias, version)
    cli.emit(found, f"{found.name}@{alias} -> version {version}")


@models.command("delete")
@click.argument("ref")
@api_options
def models_delete(cli: Cli, ref: str) -> None:
    """Delete a model (NAME) or one version (NAME:3, NAME@production) and free their files."""
    gone = cli.client.delete_model(ref)
    if cli.as_json:
        cli.json(gone)
        return
    click.echo(
        f"deleted {gone.deleted.replace('_', ' ')} {ref} (versions {gone.versions}), freed {gone.freed_bytes} bytes"
    )


@models.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", default=None, help="model name (default: the file name)")
@click.option("--wait", is_flag=True, help="follow the import job to its end")
@click.option("--timeout", type=float, default=3600, show_default=True, help="with --wait: give up after")
@api_options
def models_upload(cli: Cli, path: str, name: str | None, wait: bool, timeout: float) -> None:
    """Upload a .keras model; prints its import job's id (the job registers the version)."""
    job = cli.client.upload_model(path, name=name)
    if wait:
        if not cli.as_json:
            click.echo(job.id)
        sys.exit(watch(cli, job.id, timeout))
    cli.emit(job, job.id)


@models.command("download")
@click.argument("model_id")
@click.option("--version", "version", type=int, default=None, help="version (default: the latest)")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="file (default ./<id>.keras)")
@api_options
def models_download(cli: Cli, model_id: str, version: int | None, output: str | None) -> None:
    """Save a model version's .keras file."""
    path = cli.client.download_model(model_id, Path(output or f"{model_id}.keras"), version=version)
    cli.emit(
        {"model": model_id, "version": version, "path": str(path), "bytes": path.stat().st_size},
        f"{path} ({path.stat().st_size} bytes)",
    )


@click.group(cls=ApiGroup)
def datasets() -> None:
    """Uploaded datasets: list, show, upload (.npz with x and y, .csv or .parquet tables, .jsonl text), delete."""


@datasets.command("list")
@api_options
def datasets_list(cli: Cli) -> None:
    """List your datasets."""
    found = cli.client.datasets()
    if cli.as_json:
        cli.json(found)
        return
    rows = [(d.id, d.name, d.format, d.size_bytes, d.info.get("rows", ""), short_time(d.created_at)) for d in found]
    cli.table(("id", "name", "format", "bytes", "rows", "created (UTC)"), rows)


@datasets.command("get")
@click.argument("dataset_id")
@api_options
def datasets_get(cli: Cli, dataset_id: str) -> None:
    """Show a dataset: its columns' inferred types and missing cells, and its first rows."""
    dataset = cli.client.dataset(dataset_id)
    if cli.as_json:
        cli.json(dataset)
        return
    rows = dataset.info.get("rows", "?")
    click.echo(f"{dataset.name} ({dataset.id}), {dataset.format}, {rows} rows, {dataset.size_bytes} bytes")
    if dataset.schema:
        cli.table(
            ("column", "type", "missing", "distinct", "problem"),
            [(c["name"], c["type"], c["missing"], c.get("distinct", ""), c.get("problem", "")) for c in dataset.schema],
        )
    if dataset.preview and dataset.preview.get("rows"):
        shown = [["" if cell is None else cell for cell in row] for row in dataset.preview["rows"]]
        cli.table(tuple(dataset.preview["columns"]), shown)


@datasets.command("delete")
@click.argument("dataset_id")
@api_options
def datasets_delete(cli: Cli, dataset_id: str) -> None:
    """Delete a dataset and its file (refused while a queued or running job reads it)."""
    gone = cli.client.delete_dataset(dataset_id)
    cli.emit(gone, f"deleted dataset {gone.id}, freed {gone.freed_bytes} bytes")


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", default=None, help="dataset name (default: the file name)")
@click.option(
    "--chunked/--single",
    default=None,
    help="send in resumable parts, or in one request (default: in parts above 32 MiB)",
)
@click.option("--resume", "resume", default=None, metavar="UPLOAD_ID", help="resume an upload cut off before")
@click.option("--through-api", is_flag=True, help="send parts through the API even where the store presigns")
@click.option("--no-checksum", is_flag=True, help="skip the whole file's sha256 check (on S3 it reads it again)")
@api_options
def datasets_upload(
    cli: Cli,
    path: str,
    name: str | None,
    chunked: bool | None,
    resume: str | None,
    through_api: bool,
    no_checksum: bool,
) -> None:
    """Upload a dataset file and print its id (a large file in parts: cut off, run again with --resume)."""

    def told(upload_id: str) -> None:
        click.echo(f"upload {upload_id} (if cut off: --resume {upload_id})", err=True)

    dataset = cli.client.upload_dataset(
        path,
        name=name,
        chunked=chunked,
        resume=resume,
        direct=not through_api,
        checksum=not no_checksum,
        on_session=told,
    )
    cli.emit(dataset, dataset.id)


@click.command("workers", cls=ApiCommand)
@api_options
def workers(cli: Cli) -> None:
    """The live workers: name, host, GPU, queues, version, what each runs, when last seen."""
    found = cli.client.workers()
    if cli.as_json:
        cli.json(found)
        return
    rows = [
        (
            w.name,
            w.host,
            (w.gpu or {}).get("index", "cpu"),
            ",".join(w.queues),
            w.version,
            short_time(w.started_at),
            w.current_job or ("busy" if w.busy else "idle"),
            short_time(w.last_seen),
        )
        for w in found
    ]
    cli.table(("name", "host", "gpu", "queues", "version", "started (UTC)", "running", "last seen (UTC)"), rows)


@click.command("queues", cls=ApiCommand)
@api_options
def queues(cli: Cli) -> None:
    """Each queue: jobs queued and running, the oldest wait, live workers taking it."""
    found = cli.client.queues()
    if cli.as_json:
        cli.json(found)
        return
    rows = [
        (
            q.name,
            q.depth,
            q.running,
            f"{q.oldest_queued_age_s:.0f} s" if q.oldest_queued_age_s is not None else "",
            q.live_workers,
        )
        for q in found
    ]
    cli.table(("queue", "queued", "running", "oldest wait", "live workers"), rows)
