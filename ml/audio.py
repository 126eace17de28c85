"""Audio: WAV clips decoded with ``soundfile``, resampled to a model's rate, fitted to its window; zips of clips.

A dataset is a zip of ``.wav`` files labelled by their folder (``zero/take1.wav``) or by a ``labels.csv`` of
``file,label`` rows. Each clip is checked (a coded error names it): ``corrupt_audio`` when it cannot be decoded,
``unsupported_audio`` for another format, ``clip_too_long`` beyond the model's window (or ``AUDIO_MAX_CLIP_SECONDS``
at upload), and the whole zip is held to ``AUDIO_MAX_CLIPS`` clips and ``AUDIO_MAX_TOTAL_SECONDS``.
This module does not import TensorFlow (the API checks uploads and inline clips with it).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Any

import numpy as np

from ml.catalog import AUDIO_MAX_CLIP_SECONDS, AUDIO_MAX_CLIPS, AUDIO_MAX_TOTAL_SECONDS
from tensorq.core.errors import InvalidRequest, OutOfRange

LABELS_FILE = "labels.csv"
MAX_INLINE_SAMPLES = 48_000 * int(AUDIO_MAX_CLIP_SECONDS)


@dataclass(frozen=True)
class ClipInfo:
    """A clip's header: its format, rate, channels and length, read without decoding the samples."""

    format: str
    rate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        """The clip's duration."""
        return self.frames / self.rate if self.rate else 0.0


def _soundfile() -> Any:
    import soundfile

    return soundfile


def clip_info(data: bytes, name: str) -> ClipInfo:
    """The header of WAV bytes ``data``; ``unsupported_audio`` for another format, ``corrupt_audio`` when unreadable."""
    sf = _soundfile()
    if data[:4] not in (b"RIFF", b"RIFX", b"RF64") or data[8:12] != b"WAVE":
        raise InvalidRequest(
            f"{name} is not a WAV file; clips must be WAV (RIFF/WAVE)",
            code="unsupported_audio",
            details={"clip": name},
        )
    try:
        info = sf.info(io.BytesIO(data))
    except (RuntimeError, sf.LibsndfileError, ValueError) as exc:
        raise _corrupt(name, exc) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise InvalidRequest(f"{name} holds no samples", code="corrupt_audio", details={"clip": name})
    return ClipInfo(str(info.format), int(info.samplerate), int(info.channels), int(info.frames))


def _corrupt(name: str, exc: Exception) -> InvalidRequest:
    return InvalidRequest(f"{name} is a corrupt WAV file: {exc}", code="corrupt_audio", details={"clip": name})


def _too_long(name: str, seconds: float, limit: float) -> OutOfRange:
    return OutOfRange(
        f"{name} lasts {seconds:.2f} s; clips may last at most {limit:g} s",
        code="clip_too_long",
        details={"clip": name, "seconds": round(seconds, 3), "limit_seconds": limit},
    )


def decode(data: bytes, name: str, max_seconds: float = AUDIO_MAX_CLIP_SECONDS) -> tuple[np.ndarray, int]:
    """WAV bytes as mono float32 samples in [-1, 1] and their rate; a coded error when not a usable clip."""
    info = clip_info(data, name)
    if info.seconds > max_seconds + 1e-6:
        raise _too_long(name, info.seconds, max_seconds)
    sf = _soundfile()
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError) as exc:
        raise _corrupt(name, exc) from None
    mono = samples.mean(axis=1)
    if len(mono) == 0 or not np.all(np.isfinite(mono)):
        raise InvalidRequest(f"{name} holds no finite samples", code="corrupt_audio", details={"clip": name})
    return mono.astype(np.float32), int(rate)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` at ``rate`` resampled to ``target`` Hz (polyphase filtering, scipy)."""
    if rate == target:
        return np.asarray(samples, dtype=np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), int(target))
    return resample_poly(samples, target // g, rate // g).astype(np.float32)


def fit(samples: np.ndarray, rate: int, target: int, length: int, name: str) -> np.ndarray:
    """A clip resampled to ``target`` Hz and zero-padded to ``length`` samples; longer is ``clip_too_long``."""
    out = resample(samples, rate, target)
    if len(out) > length:
        slack = max(1, target // 100)  # resampling may round a clip of exactly the window up by a few samples
        if len(out) > length + slack:
            raise _too_long(name, len(samples) / rate, length / target)
        out = out[:length]
    return np.pad(out, (0, length - len(out))).astype(np.float32)


def _total_too_long() -> OutOfRange:
    return OutOfRange(
        f"the clips last more than {AUDIO_MAX_TOTAL_SECONDS:g} s in all",
        code="audio_too_long",
        details={"limit_seconds": AUDIO_MAX_TOTAL_SECONDS},
    )


def _labels_csv(archive: zipfile.ZipFile, name: str) -> dict[str, str]:
    """``labels.csv``'s ``file`` -> ``label`` rows."""
    text = archive.read(name).decode("utf-8", errors="replace")
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise InvalidRequest(f"{LABELS_FILE} needs a header with 'file' and 'label' columns")
    return {str(row["file"]).strip(): str(row["label"]).strip() for row in rows}


def _members(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, str]]:
    """The zip's clips and each one's label (its folder, or its ``labels.csv`` row), in name order."""
    infos = [i for i in archive.infolist() if not i.is_dir() and not PurePosixPath(i.filename).name.startswith(".")]
    labels_at = [i.filename for i in infos if PurePosixPath(i.filename).name == LABELS_FILE]
    table = _labels_csv(archive, labels_at[0]) if labels_at else None
    clips: list[tuple[zipfile.ZipInfo, str]] = []
    for info in sorted(infos, key=lambda i: i.filename):
        path = PurePosixPath(info.filename)
        if path.name == LABELS_FILE or "__MACOSX" in path.parts:
            continue
        if path.suffix.lower() != ".wav":
            raise InvalidRequest(
                f"{info.filename} is not a .wav file; an audio zip holds WAV clips (and {LABELS_FILE})",
                code="unsupported_audio",
                details={"clip": info.filename},
            )
        label = _label_of(info.filename, path, table)
        clips.append((info, label))
    if len(clips) > AUDIO_MAX_CLIPS:
        raise InvalidRequest(f"an audio dataset may hold at most {AUDIO_MAX_CLIPS} clips")
    if not clips:
        raise InvalidRequest("the zip holds no .wav clips", code="empty_dataset")
    return clips


def _label_of(filename: str, path: PurePosixPath, table: dict[str, str] | None) -> str:
    if table is not None:
        label = table.get(filename, table.get(path.name))
        if not label:
            raise InvalidRequest(f"{LABELS_FILE} has no label for {filename}", details={"clip": filename})
        return label
    if len(path.parts) < 2:
        raise InvalidRequest(
            f"{filename} is in no folder: label clips by folder (label/clip.wav) or with a {LABELS_FILE}",
            details={"clip": filename},
        )
    return path.parts[-2]


def _archive(source: str | IO[bytes] | Any) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidRequest(f"not a readable zip of WAV clips: {exc}", code="corrupt_audio") from None


def is_audio_zip(path: Any) -> bool:
    """Whether a zip holds WAV clips rather than an ``.npz``'s arrays (a bad zip is left to the ``.npz`` check)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name.lower() for name in archive.namelist()]
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return "x.npy" not in names and any(name.endswith(".wav") for name in names)


def describe_zip(path: Any) -> dict[str, Any]:
    """An audio zip checked from its clips' headers (each decodable, within the clip and total limits): clips,
    labels, total seconds and rates."""
    total = 0.0
    rates: set[int] = set()
    labels: set[str] = set()
    with _archive(path) as archive:
        clips = _members(archive)
        for info, label in clips:
            header = clip_info(archive.read(info), info.filename)
            if header.seconds > AUDIO_MAX_CLIP_SECONDS:
                raise _too_long(info.filename, header.seconds, AUDIO_MAX_CLIP_SECONDS)
            total += header.seconds
            if total > AUDIO_MAX_TOTAL_SECONDS:
                raise _total_too_long()
            rates.add(header.rate)
            labels.add(label)
    return {"clips": len(clips), "rows": len(clips), "labels": sorted(labels)[:100], "seconds": round(total, 3),
            "sample_rates": sorted(rates)}  # fmt: skip


def load_zip(path: Any, rate: int, length: int) -> tuple[np.ndarray, list[str]]:
    """Every clip of an audio zip at ``rate`` Hz, padded to ``length`` samples, and each clip's label."""
    window = length / rate
    x = np.zeros((0, length), dtype=np.float32)
    rows: list[np.ndarray] = []
    labels: list[str] = []
    total = 0.0
    with _archive(path) as archive:
        for info, label in _members(archive):
            samples, clip_rate = decode(archive.read(info), info.filename, max_seconds=window)
            total += len(samples) / clip_rate
            if total > AUDIO_MAX_TOTAL_SECONDS:
                raise _total_too_long()
            rows.append(fit(samples, clip_rate, rate, length, info.filename))
            labels.append(label)
    if rows:
        x = np.stack(rows)
    return x, labels


def _inline_clip(item: Any, i: int) -> tuple[np.ndarray, int | None]:
    """One inline input: ``{"wav": base64}``, ``{"samples": [...], "rate": n}`` or a list of samples."""
    name = f"inputs[{i}]"
    if isinstance(item, dict):
        unknown = sorted(set(item) - {"wav", "samples", "rate"})
        if unknown or ("wav" in item) == ("samples" in item):
            raise InvalidRequest(
                f'{name}: a clip is {{"wav": "<base64 WAV>"}} or {{"samples": [...], "rate": Hz}}',
                details={"field": name, "unknown": unknown},
            )
        if "wav" in item:
            if not isinstance(item["wav"], str):
                raise InvalidRequest(f"{name}.wav must be a base64 string", details={"field": name})
            try:
                data = base64.b64decode(item["wav"], validate=True)
            except (binascii.Error, ValueError):
                raise InvalidRequest(f"{name}.wav is not valid base64", details={"field": name}) from None
            return decode(data, name)
        rate = item.get("rate")
        if isinstance(rate, bool) or not isinstance(rate, int) or not 1000 <= rate <= 192_000:
            raise OutOfRange(f"{name}.rate must be an integer number of Hz in [1000, 192000]", details={"field": name})
        return _samples(item["samples"], name), rate
    return _samples(item, name), None


def _samples(values: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim != 1 or len(array) == 0 or not np.all(np.isfinite(array)):
        raise InvalidRequest(f"{name}: samples must be a non-empty list of finite numbers", details={"field": name})
    if len(array) > MAX_INLINE_SAMPLES:
        raise OutOfRange(f"{name}: at most {MAX_INLINE_SAMPLES} samples", code="clip_too_long", details={"field": name})
    return array


def clips(inputs: Any, rate: int, length: int) -> np.ndarray:
    """Inline inputs of an audio model as a (N, ``length``) float32 batch at ``rate`` Hz: WAV files in base64,
    samples with their rate, or samples at the model's rate; a clip longer than the window is ``clip_too_long``."""
    if isinstance(inputs, np.ndarray) and inputs.ndim == 2 and inputs.dtype.kind == "f":
        return inputs.astype(np.float32)
    if not isinstance(inputs, list | tuple) or not inputs:
        raise InvalidRequest("an audio model takes a non-empty list of clips")
    rows = []
    for i, item in enumerate(inputs):
        samples, clip_rate = _inline_clip(item, i)
        rows.append(fit(samples, clip_rate or rate, rate, length, f"inputs[{i}]"))
    return np.stack(rows)


def check_inline(inputs: Any, rate: int, window_seconds: float) -> int:
    """Check inline clips without resampling (the API's submit check): their form, and each within the model's
    window (``clip_too_long``); the number of clips."""
    if not isinstance(inputs, list | tuple) or not inputs:
        raise InvalidRequest("an audio model takes a non-empty list of clips")
    for i, item in enumerate(inputs):
        samples, clip_rate = _inline_clip(item, i)
        seconds = len(samples) / (clip_rate or rate)
        if seconds > window_seconds + 0.01:
            raise _too_long(f"inputs[{i}]", seconds, window_seconds)
    return len(inputs)


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """Mono float samples as 16-bit PCM WAV bytes."""
    sf = _soundfile()
    out = io.BytesIO()
    sf.write(out, np.clip(samples, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()
