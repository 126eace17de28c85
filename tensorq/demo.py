"""``tensorq demo``: a real train, predict and explain round trip on the embedded default."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import click

from tensorq.client import Job, TensorQClient
from tensorq.core.settings import Settings

DEFAULT_REDIS = "redis://localhost:6379/0"


def demo_settings(home: Path, broker: str | None = None) -> Settings:
    """SQLite under ``home``; ``broker``, else Redis when one answers at the default URL, else kombu's
    filesystem transport."""
    from tensorq.localstack import redis_answers

    if broker is None:
        broker = DEFAULT_REDIS if redis_answers(DEFAULT_REDIS) else "filesystem://"
    return Settings(
        database_url=f"sqlite:///{home / 'tensorq.sqlite3'}",
        broker_url=broker,
        artifact_dir=home / "artifacts",
        lease_s=60,
        heartbeat_s=5,
        reaper_interval_s=5,
    )


def run_demo(home: str | None = None, epochs: int = 8, broker: str | None = None) -> int:
    """Run the round trip and print its figures; returns the exit code."""
    from sklearn.datasets import load_digits

    from db.database import Database
    from db.migrate import upgrade
    from tensorq.localstack import ApiThread, WorkerProcess, wait_http

    folder = Path(home) if home else Path(tempfile.mkdtemp(prefix="tensorq-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(folder, broker)
    click.echo(f"TensorQ demo in {folder}")
    click.echo(f"  database: {settings.database_url}")
    click.echo(f"  broker:   {settings.broker_url}")
    upgrade(settings.database_url)
    key = Database(settings).keys.create("demo")
    api = ApiThread(settings).start()
    worker = WorkerProcess(settings, folder / "worker.log", gpu=settings.gpu).start()
    started = time.monotonic()
    try:
        wait_http(f"{api.url}/healthz")
        with TensorQClient(api.url, key) as client:
            return _round_trip(client, folder, epochs, load_digits(), started)
    finally:
        worker.stop()
        api.stop()


def _round_trip(client: TensorQClient, folder: Path, epochs: int, digits: Any, started: float) -> int:
    shown: set[int] = set()

    def show(job: Job) -> None:
        progress = job.progress or {}
        if progress.get("epoch") and progress["epoch"] not in shown:
            shown.add(progress["epoch"])
            click.echo(
                f"  epoch {progress['epoch']}/{progress['epochs']}: loss {progress.get('loss', 0):.4f} "
                f"val_accuracy {progress.get('val_accuracy', 0):.4f}"
            )

    click.echo(f"\n1. train: cnn on builtin:digits, {epochs} epochs (the worker warms TensorFlow first)")
    train = client.submit(
        "train",
        {
            "architecture": "cnn",
            "dataset": "builtin:digits",
            "epochs": epochs,
            "batch_size": 32,
            "validation_split": 0.15,
            "test_split": 0.15,
            "seed": 7,
            "model_name": "demo-digits-cnn",
        },
    )
    train = client.wait(train.id, timeout=1800, on_update=show)
    if train.status != "succeeded":
        click.echo(f"training ended {train.status}: {train.error}", err=True)
        return 1
    result = train.result or {}
    metrics = result["metrics"]
    click.echo(
        f"  model {result['model_id']} v{result['version']}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
    )

    images = digits.images[-10:]
    labels = digits.target[-10:].tolist()
    click.echo("\n2. predict: 10 digit images")
    predict = client.run("predict", {"model": result["model_id"], "inputs": images.tolist()}, timeout=600)
    if predict.status != "succeeded":
        click.echo(f"predict ended {predict.status}: {predict.error}", err=True)
        return 1
    predicted = (predict.result or {})["classes"]
    hits = sum(p == t for p, t in zip(predicted, labels, strict=True))
    click.echo(f"  predicted {predicted}\n  true      {labels}\n  {hits}/10 right")

    click.echo("\n3. explain: integrated gradients on 2 images, 128 steps")
    explain = client.run(
        "explain",
        {"model": result["model_id"], "inputs": images[:2].tolist(), "method": "integrated_gradients", "steps": 128},
        timeout=600,
    )
    if explain.status != "succeeded":
        click.echo(f"explain ended {explain.status}: {explain.error}", err=True)
        return 1
    explained = explain.result or {}
    gap = explained["quality"]["completeness_gap"]
    click.echo(f"  targets {explained['targets']}, completeness gap {gap:.2%}")
    for name in explained.get("artifacts", []):
        path = folder / f"{explain.id[:8]}-{name}"
        path.write_bytes(client.artifact(explain.id, name))
        click.echo(f"  heatmap: {path}")
    click.echo(f"\nround trip done in {time.monotonic() - started:.1f} s")
    return 0
