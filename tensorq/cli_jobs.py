"""``tensorq jobs``: submit, watch, get, list, cancel, retry, delete and fetch the artifacts of jobs through the
HTTP API."""

from __future__ import annotations

import base64
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from tensorq.cli_common import ApiGroup, Cli, api_options, short_time, to_jsonable
from tensorq.cli_watch import watch
from tensorq.client import Job, LogLine

JOB_TYPES = ("train", "predict", "explain", "tune")
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@click.group(cls=ApiGroup)
def jobs() -> None:
    """Submit, follow and inspect jobs (talks to the API at --url / TENSORQ_URL)."""


def parse_param(text: str) -> tuple[list[str], Any]:
    """``key=value`` (``a.b=value`` for nested keys); the value is read as JSON when it parses, else as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"'{text}' is not key=value", param_hint="-p")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.split("."), value


def build_spec(spec_file: str | None, params: tuple[str, ...], wavs: tuple[str, ...] = ()) -> dict[str, Any]:
    """The spec from ``--spec`` (a JSON file, ``-`` for stdin) with each ``-p key=value`` set on top, and each
    ``--wav`` file appended to its ``inputs`` as ``{"wav": "<base64>"}`` (an audio model's clips)."""
    spec: dict[str, Any] = {}
    if spec_file is not None:
        text = sys.stdin.read() if spec_file == "-" else Path(spec_file).read_text()
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--spec") from None
        if not isinstance(spec, dict):
            raise click.BadParameter("the spec must be a JSON object", param_hint="--spec")
    for raw in params:
        path, value = parse_param(raw)
        node = spec
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise click.BadParameter(f"'{part}' is not an object in the spec", param_hint="-p")
        node[path[-1]] = value
    if wavs:
        inputs = spec.setdefault("inputs", [])
        if not isinstance(inputs, list):
            raise click.BadParameter("the spec's inputs must be a list to add clips to", param_hint="--wav")
        inputs.extend({"wav": base64.b64encode(Path(path).read_bytes()).decode()} for path in wavs)
    return spec


def parse_since(text: str) -> datetime:
    """``30m``, ``2h``, ``1d`` (ago) or an ISO 8601 time, as an aware UTC datetime."""
    if match := DURATION.match(text):
        return datetime.now(UTC) - timedelta(**{UNITS[match.group(2)]: float(match.group(1))})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter("use e.g. 30m, 2h, 1d or an ISO 8601 time", param_hint="--since") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@jobs.command("submit")
@click.argument("job_type", metavar="TYPE", type=click.Choice(JOB_TYPES))
@click.option("--spec", "spec_file", type=click.Path(dir_okay=False, allow_dash=True), help="JSON spec ('-': stdin)")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="set a spec field (repeatable)")
@click.option(
    "--wav",
    "wavs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="a WAV file to add to the inputs of an audio model's predict or explain (repeatable)",
)
@click.option("--priority", type=int, default=None)
@click.option("--max-attempts", type=int, default=None)
@click.option("--timeout-s", type=int, default=None, help="fail the job after this many seconds of running")
@click.option("--idempotency-key", default=None, help="submitting again with the same key returns the same job")
@click.option("--name", default=None, help="a label for the job (jobs list --name finds it)")
@click.option("--tag", "tags", multiple=True, help="a tag for the job (repeatable; jobs list --tag finds it)")
@click.option("--callback-url", default=None, help="POST the job's record here, signed, when it ends (webhooks)")
@click.option("--max-retries", type=click.IntRange(0, 10), default=None, help="resubmit it after a retryable failure")
@click.option("--wait", is_flag=True, help="follow the job to its end (as 'watch') and exit with its outcome")
@click.option("--timeout", type=float, default=24 * 3600, show_default=True, help="with --wait: give up after")
@api_options
def submit(
    cli: Cli,
    job_type: str,
    spec_file: str | None,
    params: tuple[str, ...],
    wavs: tuple[str, ...],
    priority: int | None,
    max_attempts: int | None,
    timeout_s: int | None,
    idempotency_key: str | None,
    name: str | None,
    tags: tuple[str, ...],
    callback_url: str | None,
    max_retries: int | None,
    wait: bool,
    timeout: float,
) -> None:
    """Submit a job of TYPE and print its id (with --wait, follow it)."""
    spec = build_spec(spec_file, params, wavs)
    job = cli.client.submit(
        job_type,
        spec,
        priority=priority,
        max_attempts=max_attempts,
        timeout_s=timeout_s,
        idempotency_key=idempotency_key,
        name=name,
        tags=list(tags) or None,
        callback_url=callback_url,
        max_retries=max_retries,
    )
    if wait:
        if not cli.as_json:
            click.echo(job.id)
        sys.exit(watch(cli, job.id, timeout))
    cli.emit(job, job.id)


@jobs.command("submit-many")
@click.argument("batch_file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--idempotency-key", default=None, help="submitting the same batch again returns the same jobs")
@api_options
def submit_many(cli: Cli, batch_file: str, idempotency_key: str | None) -> None:
    """Submit a batch in one request, all or none: BATCH_FILE ('-': stdin) holds a JSON array of submissions
    (``{"type", "spec", "priority"?, ...}``) or one per line; prints the ids in order."""
    text = sys.stdin.read() if batch_file == "-" else Path(batch_file).read_text()
    try:
        stripped = text.strip()
        items = (
            json.loads(stripped)
            if stripped.startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="BATCH_FILE") from None
    if not items or not all(isinstance(item, dict) for item in items):
        raise click.BadParameter("give a non-empty list of JSON objects", param_hint="BATCH_FILE")
    submitted = cli.client.submit_many(items, idempotency_key=idempotency_key)
    if cli.as_json:
        cli.json(submitted)
    else:
        for job in submitted:
            click.echo(job.id)


@jobs.command("watch")
@click.argument("job_id")
@click.option("--timeout", type=float, default=24 * 3600, show_default=True, help="give up after this many seconds")
@api_options
def watch_command(cli: Cli, job_id: str, timeout: float) -> None:
    """Follow a job live; exit 0 when it succeeds, 1 failed, 3 cancelled, 4 still running at --timeout."""
    sys.exit(watch(cli, job_id, timeout))


@jobs.command("get")
@click.argument("job_id")
@api_options
def get(cli: Cli, job_id: str) -> None:
    """Print the job as JSON."""
    cli.json(cli.client.job(job_id))


def _progress_cell(job: Job) -> str:
    progress = job.progress or {}
    if progress.get("epochs"):
        return f"{progress.get('epoch', 0)}/{progress['epochs']}"
    return ""


@jobs.command("list")
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--type", "job_type", type=click.Choice((*JOB_TYPES, "import", "group")), default=None)
@click.option("--since", default=None, help="only jobs created since: 30m, 2h, 1d or an ISO 8601 time")
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@click.option("--cursor", default=None, help="the next cursor a previous page printed")
@click.option("--name", default=None, help="only jobs of this name")
@click.option("--tag", default=None, help="only jobs with this tag")
@click.option("--parent", default=None, help="only the children of this job")
@click.option("--fields", default=None, help="with --json: add spec, result, spec,result or all to each job")
@api_options
def list_command(
    cli: Cli,
    status: str | None,
    job_type: str | None,
    since: str | None,
    limit: int,
    cursor: str | None,
    name: str | None,
    tag: str | None,
    parent: str | None,
    fields: str | None,
) -> None:
    """List your jobs, newest first (the next page's cursor goes to stderr)."""
    oldest = parse_since(since) if since else None
    shown: list[Job] = []
    next_cursor = cursor
    while True:
        page = cli.client.jobs(
            status=status,
            type=job_type,
            limit=limit - len(shown),
            cursor=next_cursor,
            fields=fields,
            name=name,
            tag=tag,
            parent=parent,
        )
        fresh = [j for j in page.jobs if oldest is None or (j.created_at and j.created_at >= oldest)]
        shown += fresh
        next_cursor = page.next_cursor
        if len(fresh) < len(page.jobs):  # reached jobs older than --since: nothing further back qualifies
            next_cursor = None
        if next_cursor is None or len(shown) >= limit or oldest is None:
            break
    if cli.as_json:
        cli.json({"jobs": shown, "next_cursor": next_cursor})
        return
    rows = [
        (
            j.id,
            j.type,
            j.status,
            _progress_cell(j),
            short_time(j.created_at),
            short_time(j.finished_at),
            j.error.code if j.error else "",
        )
        for j in shown
    ]
    cli.table(("id", "type", "status", "epoch", "created (UTC)", "finished (UTC)", "error"), rows)
    if next_cursor:
        click.echo(f"more: --cursor {next_cursor}", err=True)


@jobs.command("cancel")
@click.argument("job_id")
@api_options
def cancel(cli: Cli, job_id: str) -> None:
    """Cancel a queued job, or stop a running one at its next batch or epoch."""
    job = cli.client.cancel(job_id)
    if cli.as_json:
        cli.json(job)
    elif job.status == "cancelled":
        click.echo(f"job {job.id} cancelled")
    else:
        click.echo(f"job {job.id} is {job.status}; it stops at its next batch or epoch")


@jobs.command("retry")
@click.argument("job_id")
@api_options
def retry(cli: Cli, job_id: str) -> None:
    """Submit a failed or cancelled job's spec again as a new job linked to it."""
    job = cli.client.retry(job_id)
    cli.emit(job, f"job {job.id} queued (retries {job_id})")


@jobs.command("delete")
@click.argument("job_id")
@api_options
def delete(cli: Cli, job_id: str) -> None:
    """Delete a finished job with its events, logs and artifacts (a model it trained stays)."""
    gone = cli.client.delete_job(job_id)
    cli.emit(gone, f"deleted job {gone.id}, freed {gone.freed_bytes} bytes")


LEVEL_STYLES = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red"}


def _print_line(cli: Cli, line: LogLine) -> None:
    if cli.as_json:
        click.echo(json.dumps(to_jsonable(line), sort_keys=True))
        return
    stamp = line.time.strftime("%H:%M:%S") if line.time else "--:--:--"
    text = f"{stamp} {line.level:<7} [{line.attempt}] {line.logger}: {line.message}"
    if cli.interactive:
        cli.console.print(text, style=LEVEL_STYLES.get(line.level), markup=False, highlight=False)
    else:
        click.echo(text)


@jobs.command("logs")
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="keep printing new lines until the job has finished")
@click.option("--after", type=click.IntRange(0), default=0, help="only lines after this seq")
@api_options
def logs(cli: Cli, job_id: str, follow: bool, after: int) -> None:
    """Print the log lines the worker wrote while running the job (time, level, [attempt], logger)."""
    if follow:
        for line in cli.client.follow_logs(job_id, after=after):
            _print_line(cli, line)
        return
    while True:
        page = cli.client.logs(job_id, after=after, limit=1000)
        for line in page.lines:
            _print_line(cli, line)
        if not page.lines:
            return
        after = page.next_after


@jobs.command("artifacts")
@click.argument("job_id")
@click.argument("name", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), help="file to write ('-': stdout)")
@api_options
def artifacts(cli: Cli, job_id: str, name: str | None, output: str | None) -> None:
    """List the job's artifacts, or download the one called NAME (to ./NAME unless -o)."""
    if name is None:
        job = cli.client.job(job_id)
        names = list((job.result or {}).get("artifacts", []))
        if cli.as_json:
            cli.json({"artifacts": names})
        else:
            for listed in names:
                click.echo(listed)
        return
    data = cli.client.artifact(job_id, name)
    if output == "-":
        sys.stdout.buffer.write(data)
        return
    path = Path(output or Path(name).name)
    path.write_bytes(data)
    cli.emit({"artifact": name, "path": str(path), "bytes": len(data)}, f"{path} ({len(data)} bytes)")
