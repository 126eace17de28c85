"""``tensorq jobs watch``: follow a job by long-polls, with a progress bar for training and a spinner otherwise."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tensorq.cli_common import Cli
from tensorq.client import Job

# Exit statuses of ``watch`` (and of ``submit --wait``); 2 stays click's for usage errors.
EXIT_SUCCEEDED, EXIT_FAILED, EXIT_CANCELLED, EXIT_TIMEOUT = 0, 1, 3, 4
LONG_POLL_S = 25.0
SKIPPED_FIGURES = frozenset({"epoch", "epochs"})
# Figures that count things (an agent's episodes and environment steps): printed as whole numbers.
COUNTS = frozenset({"episodes", "env_steps", "eval_episodes", "iterations"})


def figures(progress: dict[str, Any] | None) -> str:
    """The latest loss and metrics of a progress report, e.g. ``loss 0.4210  accuracy 0.8800`` (an agent's
    ``loss 12.5000  mean_return 187.2500  episodes 96  env_steps 9216``)."""
    items = [(k, v) for k, v in (progress or {}).items() if k not in SKIPPED_FIGURES and isinstance(v, int | float)]
    items.sort(key=lambda kv: (kv[0] != "loss", kv[0] in COUNTS, kv[0]))
    return "  ".join(f"{k} {int(v)}" if k in COUNTS else f"{k} {v:.4f}" for k, v in items)


def state_line(job: Job) -> str:
    """The job's state in words, with why it waits when the API says so."""
    line = f"{job.type} {job.id}: {job.status}"
    if job.attempts > 1:
        line += f" (attempt {job.attempts})"
    if job.status == "queued" and job.queue_position is not None:
        line += f" - {job.queue_position} ahead"
        if job.expected_start_s is not None:
            line += f", starts in ~{job.expected_start_s:.0f}s"
    if job.status == "queued" and job.waiting_reason:
        line += f" - {job.waiting_reason}"
    if job.children:
        line += " - children " + children_line(job.children)
    return line


def children_line(children: dict[str, int]) -> str:
    """A parent's children by status, e.g. ``2/5 succeeded, 1 running, 2 queued``: the statuses it has."""
    shown = [f"{children.get('succeeded', 0)}/{children.get('total', 0)} succeeded"]
    shown += [f"{children[s]} {s}" for s in ("running", "queued", "failed", "cancelled") if children.get(s)]
    return ", ".join(shown)


class _RichView:
    """A live rich display: a bar with epoch i/n, ETA and figures for training, a spinner for the rest."""

    def __init__(self, cli: Cli, job: Job) -> None:
        self.training = job.type == "train"
        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
        if self.training:
            columns += [BarColumn(), MofNCompleteColumn(), TextColumn("epochs"), TimeRemainingColumn()]
            columns += [TextColumn("{task.fields[figures]}")]
        else:
            columns += [TimeElapsedColumn()]
        # Epochs can be minutes apart: estimate the speed over the whole run, not rich's default 30 s.
        self.progress = Progress(*columns, console=cli.console, transient=False, speed_estimate_period=3600)
        self.task: TaskID = self.progress.add_task(state_line(job), total=None, figures="")

    def __enter__(self) -> _RichView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, job: Job) -> None:
        """Show the job's state and, while training, its epoch and latest figures."""
        progress = job.progress or {}
        fields: dict[str, Any] = {"description": state_line(job)}
        if self.training and progress.get("epochs"):
            fields.update(total=progress["epochs"], completed=progress.get("epoch", 0), figures=figures(progress))
        self.progress.update(self.task, **fields)


class _PlainView:
    """Plain lines for pipes and logs: one per state change and one per new epoch."""

    def __init__(self, cli: Cli, job: Job) -> None:
        self.quiet = cli.as_json
        self.last_state = ""
        self.last_epoch = 0
        self.update(job)

    def __enter__(self) -> _PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, job: Job) -> None:
        """Print what changed since the last update."""
        if self.quiet:
            return
        state = state_line(job)
        if state != self.last_state:
            self.last_state = state
            click.echo(state)
        progress = job.progress or {}
        epoch = progress.get("epoch")
        if isinstance(epoch, int) and epoch > self.last_epoch:
            self.last_epoch = epoch
            click.echo(f"epoch {epoch}/{progress.get('epochs', '?')}  {figures(progress)}".rstrip())


def watch(cli: Cli, job_id: str, timeout: float) -> int:
    """Follow the job until it ends (each request a ``?wait=`` long-poll) and return the exit status."""
    deadline = time.monotonic() + timeout
    job = cli.client.job(job_id)
    view: _RichView | _PlainView = _RichView(cli, job) if cli.interactive else _PlainView(cli, job)
    with view:
        view.update(job)
        while not job.finished:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            job = cli.client.job(job_id, wait=max(min(LONG_POLL_S, left), 0.1))
            view.update(job)
    return report_end(cli, job, timeout)


def report_end(cli: Cli, job: Job, timeout: float) -> int:
    """Print how the job ended (the error's code and message when it failed) and return the exit status."""
    if cli.as_json:
        cli.json(job)
    if job.children and not cli.as_json:
        click.echo(f"children: tensorq jobs list --parent {job.id}")
    if not job.finished:
        click.echo(f"job {job.id} is still {job.status} after {timeout:g} s", err=True)
        return EXIT_TIMEOUT
    if job.status == "succeeded":
        if not cli.as_json:
            click.echo(f"job {job.id} succeeded{_result_summary(job)}")
        return EXIT_SUCCEEDED
    if job.status == "cancelled":
        click.echo(f"job {job.id} cancelled", err=True)
        return EXIT_CANCELLED
    error = job.error
    code, message = (error.code, error.message) if error else ("unknown", "no error recorded")
    details = error.details if error and isinstance(error.details, dict) else {}
    where = f" (while {details['phase']})" if details.get("phase") else ""
    click.echo(f"job {job.id} failed{where}: {code}: {message}", err=True)
    return EXIT_FAILED


def _result_summary(job: Job) -> str:
    result = job.result or {}
    parts = []
    if "model_id" in result:
        parts.append(f"model {result['model_id']} v{result.get('version', '?')}")
    metrics = result.get("metrics")
    if isinstance(metrics, dict) and metrics:
        parts.append(figures(metrics))
    if result.get("stopped_by"):
        parts.append(f"stopped by {result['stopped_by']}")
    if isinstance(result.get("actions"), list):  # a policy's predict: its actions, by name when it has them
        actions = result.get("action_names") or result["actions"]
        parts.append("actions " + ", ".join(str(a) for a in actions[:20]) + (" ..." if len(actions) > 20 else ""))
    if result.get("artifacts"):
        parts.append("artifacts " + ", ".join(result["artifacts"]))
    return (": " + "; ".join(parts)) if parts else ""
