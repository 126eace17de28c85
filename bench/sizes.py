"""How much work each figure does: the full run and the ``--quick`` run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Sizes:
    """Counts and shapes for one bench run."""

    repeats: int
    # Training repeats: one fit moves by up to ±8% here, so its median needs more of them.
    train_repeats: int
    latency_samples: int
    latency_warmup: int
    clients: int
    throughput_jobs: int
    raw_throughput_tasks: int
    train_images: int
    train_epochs: int
    batch_size: int
    validation_split: float
    predict_rows: int
    explain_images: int
    explain_steps: int
    memory_jobs: int
    memory_first: int
    submit_samples: int
    submit_requests: int
    # The grown database: finished jobs and queued backlog added, and samples of each step before and after.
    grown_finished: int
    grown_queued: int
    grown_samples: int
    batch_count: int  # 100-job batches in the batch figure
    explain_batch_jobs: int  # tiny explain jobs each way (micro-batching on, off) in the explain_batching figure
    speech_epochs: int  # epochs of the audio_cnn on builtin:spoken_digits in the speech figure (issue 24)
    waiters: int  # concurrent long-polls one API process holds in the waits figure
    # Jobs made of jobs (issue 22): rows of the sharded predict; trials and epochs of each tune.
    shard_rows: int = 200_000
    tune_trials: int = 30
    tune_epochs: int = 12

    def as_dict(self) -> dict[str, int | float]:
        """The sizes as a plain dict (for the JSON and the header)."""
        return asdict(self)


FULL = Sizes(
    repeats=3,
    train_repeats=7,
    latency_samples=200,
    latency_warmup=10,
    clients=8,
    throughput_jobs=300,
    raw_throughput_tasks=1000,
    train_images=20_000,
    train_epochs=2,
    batch_size=32,
    validation_split=0.2,
    predict_rows=10_000,
    explain_images=100,
    explain_steps=64,
    memory_jobs=1000,
    memory_first=10,
    submit_samples=200,
    submit_requests=500,
    grown_finished=1_000_000,
    grown_queued=50_000,
    grown_samples=100,
    batch_count=10,
    explain_batch_jobs=400,
    speech_epochs=6,
    waiters=1000,
)

QUICK = Sizes(
    repeats=1,
    train_repeats=1,
    latency_samples=40,
    latency_warmup=5,
    clients=4,
    throughput_jobs=80,
    raw_throughput_tasks=300,
    train_images=5_000,
    train_epochs=1,
    batch_size=32,
    validation_split=0.2,
    predict_rows=2_000,
    explain_images=20,
    explain_steps=64,
    memory_jobs=200,
    memory_first=10,
    submit_samples=50,
    submit_requests=150,
    grown_finished=5_000,
    grown_queued=2_000,
    grown_samples=15,
    batch_count=2,
    explain_batch_jobs=120,
    speech_epochs=1,
    waiters=200,
    shard_rows=4_000,
    tune_trials=3,
    tune_epochs=2,
)


def sizes_for(
    quick: bool,
    repeats: int | None = None,
    grown_finished: int | None = None,
    grown_queued: int | None = None,
    waiters: int | None = None,
) -> Sizes:
    """The quick or full sizes; ``repeats``, when given, sets the repeats of every figure, and the grown
    sizes, when given, how many finished and queued jobs the grown figure adds."""
    chosen = QUICK if quick else FULL
    if repeats:
        chosen = replace(chosen, repeats=repeats, train_repeats=repeats)
    if grown_finished is not None:
        chosen = replace(chosen, grown_finished=grown_finished)
    if grown_queued is not None:
        chosen = replace(chosen, grown_queued=grown_queued)
    if waiters is not None:
        chosen = replace(chosen, waiters=waiters)
    return chosen
