#!/usr/bin/env python3
"""A TensorFlow-free check of GPU discovery and pinning, for a host with NVIDIA GPUs.

    pip install nvidia-ml-py            # the only dependency (pure Python; NVML comes with the driver)
    python3 deploy/gpu-check.py         # from a checkout; prints one JSON report, exits 0 when every check passes

What it checks, for every GPU NVML lists:
  1. discovery: TensorQ's own ``worker.gpu_check.nvml_gpus`` names the same GPUs (index, name, UUID, memory)
     as NVML read directly;
  2. pinning: a fresh process started with ``CUDA_VISIBLE_DEVICES=N`` (what ``tensorq worker --gpu N`` sets
     through ``worker.gpu.pin_gpu``) sees exactly one CUDA device through the CUDA driver API (libcuda, via
     ctypes), and its UUID is GPU N's;
  3. refusal: ``check_gpu_request`` refuses an index past the last GPU with a clear message.
TensorFlow is never imported (the TensorFlow half of ``check_gpu_request`` is replaced by the driver count).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import ctypes, json, sys
cuda = ctypes.CDLL("libcuda.so.1")
assert cuda.cuInit(0) == 0, "cuInit failed"
count = ctypes.c_int()
assert cuda.cuDeviceGetCount(ctypes.byref(count)) == 0
devices = []
for ordinal in range(count.value):
    device = ctypes.c_int()
    cuda.cuDeviceGet(ctypes.byref(device), ordinal)
    name = ctypes.create_string_buffer(256)
    cuda.cuDeviceGetName(name, 256, device)
    uuid = (ctypes.c_ubyte * 16)()
    get_uuid = getattr(cuda, "cuDeviceGetUuid_v2", None) or cuda.cuDeviceGetUuid
    get_uuid(ctypes.byref(uuid), device)
    raw = bytes(uuid).hex()
    text = f"GPU-{raw[0:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:32]}"
    devices.append({"name": name.value.decode(), "uuid": text})
print(json.dumps(devices))
"""


def cuda_devices(visible: str) -> list[dict]:
    """CUDA devices a fresh process sees with ``CUDA_VISIBLE_DEVICES=visible`` (driver API, no TensorFlow)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible}
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-500:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    """Run the checks and print the report; exit status 0 when all pass."""
    report: dict = {"host": os.uname().nodename, "checks": []}

    def check(name: str, ok: bool, **details: object) -> None:
        report["checks"].append({"check": name, "ok": bool(ok), **details})

    import pynvml

    from worker.gpu import visible_devices
    from worker.gpu_check import GpuUnavailable, check_gpu_request, nvml_gpus

    gpus, why = nvml_gpus()
    report["gpus"] = [g.__dict__ for g in gpus]
    if why is not None or not gpus:
        check("discovery", False, reason=why or "NVML lists no GPU")
        report["ok"] = False
        print(json.dumps(report, indent=2))
        return 1
    pynvml.nvmlInit()
    direct = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(index))
        direct.append((index, uuid.decode() if isinstance(uuid, bytes) else uuid))
    driver = pynvml.nvmlSystemGetDriverVersion()
    report["driver"] = driver.decode() if isinstance(driver, bytes) else driver
    pynvml.nvmlShutdown()
    check("discovery", [(g.index, g.uuid) for g in gpus] == direct, nvml=direct)

    for gpu in gpus:
        visible = visible_devices(str(gpu.index))
        try:
            seen = cuda_devices(visible)
            check(f"pin gpu {gpu.index}", len(seen) == 1 and seen[0]["uuid"] == gpu.uuid, seen=seen, want=gpu.uuid)
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the other GPUs still get checked
            check(f"pin gpu {gpu.index}", False, error=str(exc))
        accepted = check_gpu_request(str(gpu.index), tensorflow_count=lambda v: len(cuda_devices(v)))
        check(f"worker accepts --gpu {gpu.index}", [g.uuid for g in accepted] == [gpu.uuid])

    check("cpu pinning hides every GPU", cuda_devices(visible_devices("none")) == [])
    past = len(gpus)
    try:
        check_gpu_request(str(past), tensorflow_count=lambda v: len(cuda_devices(v)))
        check(f"worker refuses --gpu {past}", False)
    except GpuUnavailable as exc:
        check(f"worker refuses --gpu {past}", "does not have" in str(exc), message=str(exc))

    report["ok"] = all(c["ok"] for c in report["checks"])
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
