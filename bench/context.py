"""What the figures share: the running stack, the sizes, the models and datasets prepared once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import TINY_ROW, digit_images, save_npz
from bench.jobs import run_job
from bench.services import Stack
from bench.sizes import Sizes
from tensorq.client import TensorQClient


@dataclass
class Context:
    """The running stack, the sizes, and what the figures prepared and share."""

    stack: Stack
    sizes: Sizes
    say: Callable[[str], None] = print
    tiny_model: str = ""
    cnn_model: str = ""
    train_dataset: str = ""
    train_x: np.ndarray | None = None
    train_y: np.ndarray | None = None
    predict_dataset: str = ""
    predict_x: np.ndarray | None = None
    predict_path: Path | None = None
    warmed: set[str] = field(default_factory=set)
    # The sharded predict figure's wide model and its rows to predict (bench/graphs.py), made once per run.
    wide_model: str = ""
    shard_dataset: str = ""
    # Figures per repeat that later groups compare against (micro-batching on, against off).
    measured: dict[int, dict[str, float]] = field(default_factory=dict)
    _raw_app: Any = None

    def client(self) -> TensorQClient:
        """A new API client with the bench's key."""
        return TensorQClient(self.stack.api_url, self.stack.key, timeout=120)

    def raw_noop(self) -> Any:
        """The raw Celery no-op task, bound to a client app on the bench's Redis."""
        if self._raw_app is None:
            from bench.raw_celery import make_app

            self._raw_app = make_app(self.stack.raw_broker_url)
        return self._raw_app.tasks["bench.noop"]

    def tiny_spec(self) -> dict:
        """A "no-op-sized" predict: one row on the tiny model."""
        return {"model": self.tiny_model, "inputs": [TINY_ROW]}

    def cnn_path(self) -> str:
        """The ``.keras`` file of the CNN the figures use."""
        return self.stack.db.models.resolve(self.stack.tenant_id, self.cnn_model).path

    def prepare(self) -> None:
        """Train the tiny model (warming the worker), make and upload the image datasets."""
        sizes = self.sizes
        with self.client() as client:
            self.say("  training the tiny model (mlp on builtin:iris; also warms the worker's TensorFlow)")
            spec = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 3, "seed": 1, "model_name": "tiny"}
            self.tiny_model = run_job(client, "train", spec, timeout=600).job.result["model_id"]
            run_job(client, "predict", self.tiny_spec())
            folder = self.stack.folder / "data"
            self.train_x, self.train_y = digit_images(sizes.train_images, seed=1)
            train_path = save_npz(folder / "train.npz", self.train_x, self.train_y)
            self.train_dataset = client.upload_dataset(train_path).id
            self.predict_x, predict_y = digit_images(sizes.predict_rows, seed=2)
            self.predict_path = save_npz(folder / "predict.npz", self.predict_x, predict_y)
            self.predict_dataset = client.upload_dataset(self.predict_path).id
        self.say(f"  uploaded {sizes.train_images} training images and {sizes.predict_rows} rows to predict")

    def ensure_cnn(self) -> None:
        """A trained CNN for the predict, explain and memory figures (a 1-epoch one if the train figure made none)."""
        if self.cnn_model:
            return
        spec = {"architecture": "cnn", "dataset": self.predict_dataset, "epochs": 1, "seed": 1, "model_name": "cnn"}
        with self.client() as client:
            self.cnn_model = run_job(client, "train", spec, timeout=3600).job.result["model_id"]
