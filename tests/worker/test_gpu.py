"""GPU pinning: the value set before TensorFlow loads, and TensorFlow honouring it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from worker.gpu import visible_devices


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("0", "0"), ("3", "3"), ("0,1", "0,1"), ("none", "-1"), ("CPU", "-1"), ("auto", None)],
)
def test_visible_devices(choice: str, expected: str | None) -> None:
    assert visible_devices(choice) == expected


def test_bad_gpu_choice_is_refused() -> None:
    with pytest.raises(ValueError):
        visible_devices("gpu0")


def test_gpu_none_hides_every_gpu_from_tensorflow() -> None:
    code = (
        "from worker.gpu import pin_gpu, configure_tensorflow\n"
        "import os\npin_gpu('none')\nprint(os.environ['CUDA_VISIBLE_DEVICES'], configure_tensorflow())"
    )
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "-1 []"


def test_pinning_after_tensorflow_loaded_is_an_error() -> None:
    code = "import tensorflow\nfrom worker.gpu import pin_gpu\npin_gpu('0')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "before TensorFlow" in out.stderr
