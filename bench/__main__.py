"""``python -m bench``: measure TensorQ against raw Celery and plain Keras on real services, in one run."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.context import Context
    from bench.figures import Group
    from bench.sizes import Sizes
    from bench.specs import Measurement

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts: the whole run in a few minutes")
    parser.add_argument("--check", action="store_true", help="exit 1 when any figure is missing or NaN (not speed)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where to write the figures ({DEFAULT_JSON})")
    parser.add_argument("--repeats", type=int, default=None, help="runs per figure (3, training 7; quick 1)")
    parser.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite in a temp folder)")
    parser.add_argument("--only", default=None, help="comma-separated figure groups (latency, throughput, ...)")
    parser.add_argument("--grown-finished", type=int, default=None, help="finished jobs the grown figure adds")
    parser.add_argument("--grown-queued", type=int, default=None, help="queued jobs the grown figure adds")
    parser.add_argument("--waiters", type=int, default=None, help="long-polls the waits figure holds at once")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder with the services' logs")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def say(text: str) -> None:
    """Print a progress line at once."""
    print(text, flush=True)


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM behaves like Ctrl-C, so every ``finally`` stops its services."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Start the services, run every figure group, print the table, write the JSON; the exit code."""
    args = parse_args(argv)
    # The worker runs with --gpu none; the in-process baselines must use the same device.
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)

    from bench import machine, report
    from bench.figures import GROUPS
    from bench.sizes import sizes_for

    wanted = set(args.only.split(",")) if args.only else {g.name for g in GROUPS}
    if wanted - {g.name for g in GROUPS}:
        say(f"unknown figure groups {sorted(wanted - {g.name for g in GROUPS})}; known: {[g.name for g in GROUPS]}")
        return 2
    groups = [g for g in GROUPS if g.name in wanted]
    sizes = sizes_for(args.quick, args.repeats, args.grown_finished, args.grown_queued, args.waiters)
    mode = "quick" if args.quick else "full"
    info = machine.describe(args.database_url)
    say(f"TensorQ bench ({mode}): {machine.summary(info)}")
    load = info["loadavg_before"]
    say(f"load average before the run: {load} (1, 5, 15 min)")
    if load and load[0] > 0.5 * (info["usable_cores"] or 1):
        say("warning: the machine is busy; other work skews every figure (the baselines share the same noise)")
    say("sizes: " + ", ".join(f"{k}={v}" for k, v in sizes.as_dict().items()))

    started, began = time.monotonic(), datetime.now(UTC)
    measurements: dict[str, list[Measurement]] = defaultdict(list)
    errors: list[str] = []
    try:
        _run(args, sizes, groups, measurements, errors)
    except KeyboardInterrupt:
        say("interrupted; services stopped")
        return 130
    except Exception as exc:  # noqa: BLE001 - a failed start is reported like a failed figure
        traceback.print_exc()
        errors.append(f"setup: {type(exc).__name__}: {exc}")
    duration = time.monotonic() - started

    result = report.build(
        measurements,
        [name for g in groups for name in g.names],
        command="python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        mode=mode,
        started_at=began.isoformat(),
        duration_s=round(duration, 1),
        machine={**info, "loadavg_after": machine.loadavg()},
        sizes=sizes.as_dict(),
        errors=errors,
        note="value and baseline are medians over the repeats; ratio = value / baseline",
    )
    say("\n" + report.table(result))
    if notes := report.breakdowns(result):
        say("\n" + notes)
    say(f"\n{mode} run, {sizes.repeats} repeat(s), {duration:.0f} s; sizes as listed above; JSON: {args.json}")
    report.write_json(result, args.json)
    for error in errors:
        say(f"error: {error}")
    if args.check:
        missing = report.problems(result)
        for problem in missing:
            say(f"check: {problem}")
        return 1 if missing or errors else 0
    return 0


def _run(args: argparse.Namespace, sizes: Sizes, groups: list[Group], measurements: dict, errors: list[str]) -> None:
    """Start the services, prepare the shared models and data, and run the groups; stops everything after."""
    from bench.context import Context
    from bench.services import running_stack

    start = time.monotonic()
    with running_stack(args.database_url, keep=args.keep, say=say) as stack:
        say(f"services up in {time.monotonic() - start:.1f} s")
        ctx = Context(stack, sizes, say)
        try:
            ctx.prepare()
            for group in groups:
                _run_group(ctx, group, measurements, errors)
        finally:
            if errors:
                say(stack.log_tails())


def _run_group(ctx: Context, group: Group, measurements: dict[str, list[Measurement]], errors: list[str]) -> None:
    """Run one figure group once, or once per repeat; an error ends the group and is recorded."""
    repeats = 1 if group.once else getattr(ctx.sizes, group.repeats)
    for run in range(repeats):
        start = time.monotonic()
        try:
            for measurement in group.run(ctx, run):
                measurements[measurement.name].append(measurement)
        except Exception as exc:  # noqa: BLE001 - one failed figure must not hide the others
            traceback.print_exc()
            errors.append(f"{group.name}: {type(exc).__name__}: {exc}")
            return
        ctx.say(f"[{group.name}] run {run + 1}/{repeats} done in {time.monotonic() - start:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
