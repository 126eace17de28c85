"""``builtin:spoken_digits``: "zero" to "nine" spoken by Debian's ``espeak-ng`` in several voices, speeds and
pitches, made here (no download) once and cached as an ``.npz`` of clips at ``RATE`` Hz in a folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ml import audio
from tensorq.core.errors import InvalidRequest

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc")
VARIANTS = ("m1", "m3", "m7", "f2", "f4")
SPEEDS = (150, 190)  # words per minute
PITCHES = (35, 65)  # espeak-ng's 0..99
RATE = 16_000
SECONDS = 1.0
SILENCE = 0.01  # samples quieter than this (of full scale) at a clip's ends are trimmed
INSTALL = "install Debian's espeak-ng (apt-get install -y espeak-ng) on the worker to make builtin:spoken_digits"


def voices() -> list[str]:
    """Every voice, as espeak-ng names it (accent+variant), in a fixed order."""
    return [f"{accent}+{variant}" for accent in ACCENTS for variant in VARIANTS]


def _recipe() -> str:
    """What the cache file is made from (its name changes when this does)."""
    return repr((WORDS, ACCENTS, VARIANTS, SPEEDS, PITCHES, RATE, SECONDS, SILENCE))


def _speak(binary: str, voice: str, speed: int, pitch: int, word: str, folder: str) -> np.ndarray:
    """One word as float32 samples at ``RATE``, its silent ends trimmed, padded to ``SECONDS``."""
    path = os.path.join(folder, f"{voice}-{speed}-{pitch}-{word}.wav")
    subprocess.run(
        [binary, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", path, word],
        check=True,
        capture_output=True,
        timeout=60,
    )
    samples, rate = audio.decode(Path(path).read_bytes(), path)
    loud = np.flatnonzero(np.abs(samples) > SILENCE)
    if len(loud):
        samples = samples[loud[0] : loud[-1] + 1]
    length = round(RATE * SECONDS)
    return audio.fit(samples[: int(rate * SECONDS)], rate, RATE, length, word)


def generate(path: Path) -> None:
    """Speak every word in every voice, speed and pitch; write ``x``, ``y`` and ``voice`` to ``path``."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise InvalidRequest(f"espeak-ng is not installed: {INSTALL}", code="espeak_ng_missing")
    jobs = [(v, s, p, w) for v in voices() for s in SPEEDS for p in PITCHES for w in WORDS]
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(max_workers=4) as pool:
        try:
            clips = list(pool.map(lambda job: _speak(binary, *job, folder), jobs))
        except (subprocess.SubprocessError, OSError) as exc:
            raise InvalidRequest(f"espeak-ng failed ({exc}); {INSTALL}", code="espeak_ng_missing") from None
    x = np.stack(clips)
    y = np.asarray([WORDS.index(w) for *_, w in jobs], dtype=np.int64)
    voice = np.asarray([voices().index(v) for v, *_ in jobs], dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part.npz")
    np.savez(partial, x=x, y=y, voice=voice)
    partial.replace(path)


def clips(cache_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, voice)``: every clip at ``RATE`` Hz, its word's id and its voice's index into ``voices()``,
    made on first use and then read from ``cache_dir``."""
    digest = hashlib.sha256(_recipe().encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"spoken_digits-{digest}.npz"
    if not path.is_file():
        generate(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive["x"], archive["y"], archive["voice"]
    except (OSError, ValueError, KeyError) as exc:
        path.unlink(missing_ok=True)
        raise InvalidRequest(f"the cached spoken_digits was unreadable and is removed; retry ({exc})") from None


def at_rate(x: np.ndarray, rate: int, length: int) -> np.ndarray:
    """Clips at ``RATE`` resampled to ``rate`` and padded (or cut) to ``length`` samples."""
    resampled = audio.resample(x.T, RATE, rate).T if rate != RATE else x
    resampled = resampled[:, :length]
    return np.pad(resampled, ((0, 0), (0, length - resampled.shape[1]))).astype(np.float32)
