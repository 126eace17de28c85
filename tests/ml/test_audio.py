"""Audio: zips of WAV clips, inline clips, builtin:spoken_digits, and the audio_cnn trained and explained on it."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ml import audio, spoken_digits
from ml.datasets import Dataset, load_audio_zip
from tensorq.core.errors import InvalidRequest, OutOfRange

RATE = 8000
SECONDS = 0.6


def tone(hz: float, seconds: float, rate: int) -> np.ndarray:
    """A sine of ``hz`` at half scale."""
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def wav(samples: np.ndarray, rate: int, fmt: str = "WAV") -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, rate, format=fmt)
    return out.getvalue()


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def test_a_zip_labelled_by_folders_loads_resampled_to_the_window(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "clips.zip",
        {
            "low/a.wav": wav(tone(300, 0.5, 16_000), 16_000),
            "low/b.wav": wav(tone(300, 0.4, 22_050), 22_050),
            "high/c.wav": wav(np.stack([tone(1200, 0.5, 16_000)] * 2, axis=1), 16_000),  # stereo: averaged
        },
    )
    data = load_audio_zip(path, RATE, 8000)
    assert data.kind == "audio"
    assert data.sample_rate == RATE
    assert data.x.shape == (3, 8000)
    assert data.x.dtype == np.float32
    assert data.class_names == ["high", "low"]
    assert data.y.tolist() == [0, 1, 1]  # clips in name order: high/c, low/a, low/b
    assert peak_hz(data.x[0][:4000], RATE) == pytest.approx(1200, abs=4)
    assert peak_hz(data.x[2][:3200], RATE) == pytest.approx(300, abs=4)
    assert np.all(data.x[1][4100:] == 0)  # 0.5 s of 1 s: padded with silence
    info = audio.describe_zip(path)
    assert info["clips"] == 3
    assert info["labels"] == ["high", "low"]
    assert info["sample_rates"] == [16_000, 22_050]


def test_a_labels_csv_names_each_clip(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "clips.zip",
        {
            "labels.csv": b"file,label\nx.wav,yes\nsub/y.wav,no\n",
            "x.wav": wav(tone(440, 0.2, RATE), RATE),
            "sub/y.wav": wav(tone(880, 0.2, RATE), RATE),
        },
    )
    data = load_audio_zip(path, RATE, 4000)
    assert data.class_names == ["no", "yes"]
    assert data.y.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("members", "code"),
    [
        ({"a/x.wav": b"RIFF\x10\x00\x00\x00WAVEfmt garbage"}, "corrupt_audio"),
        ({"a/x.wav": wav(tone(440, 0.2, RATE), RATE, fmt="FLAC")}, "unsupported_audio"),
        ({"a/x.mp3": b"ID3\x03\x00"}, "unsupported_audio"),
        ({"a/x.wav": wav(tone(440, 1.5, RATE), RATE)}, "clip_too_long"),
    ],
)
def test_a_bad_clip_is_a_coded_error_naming_it(tmp_path: Path, members: dict[str, bytes], code: str) -> None:
    path = make_zip(tmp_path / "bad.zip", members)
    with pytest.raises((InvalidRequest, OutOfRange)) as caught:
        load_audio_zip(path, RATE, RATE)  # a window of 1 s
    assert caught.value.code == code
    assert caught.value.details["clip"] in members


def test_a_clip_over_the_upload_limit_is_refused_at_upload(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "long.zip", {"a/x.wav": wav(np.zeros(31 * 1000, np.float32), 1000)})
    with pytest.raises(OutOfRange) as caught:
        audio.describe_zip(path)
    assert caught.value.code == "clip_too_long"


def test_inline_clips_are_wav_in_base64_samples_with_their_rate_or_samples_at_the_models_rate() -> None:
    encoded = base64.b64encode(wav(tone(500, 0.5, 16_000), 16_000)).decode()
    batch = audio.clips(
        [{"wav": encoded}, {"samples": tone(500, 0.5, 32_000).tolist(), "rate": 32_000}, tone(500, 0.5, RATE).tolist()],
        RATE,
        RATE,
    )
    assert batch.shape == (3, RATE)
    for row in batch:
        assert peak_hz(row[:4000], RATE) == pytest.approx(500, abs=4)
    with pytest.raises(InvalidRequest, match="base64"):
        audio.clips([{"wav": "not base64!"}], RATE, RATE)
    with pytest.raises(OutOfRange) as caught:
        audio.clips([tone(500, 2.0, RATE).tolist()], RATE, RATE)
    assert caught.value.code == "clip_too_long"


def test_spoken_digits_without_espeak_ng_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no espeak-ng on it
    with pytest.raises(InvalidRequest, match=r"apt-get install -y espeak-ng") as caught:
        spoken_digits.clips(tmp_path / "cache")
    assert caught.value.code == "espeak_ng_missing"


@pytest.fixture(scope="module")
def trained_speech(spoken_digits_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """An audio_cnn trained on spoken_digits at 8 kHz without the held-out voices (every fifth), and those."""
    from ml.inference import load_model
    from ml.training import TrainConfig, train

    x, y, voice = spoken_digits.clips(spoken_digits_cache)
    x = spoken_digits.at_rate(x, RATE, round(RATE * SECONDS))
    held = voice % 5 == 0
    data = Dataset(x[~held], y[~held], "audio", class_names=list(spoken_digits.WORDS), sample_rate=RATE)
    params = {"sample_rate": RATE, "clip_seconds": SECONDS, "filters": [16, 32], "dense": 32, "n_mels": 32}
    config = TrainConfig("audio_cnn", params, epochs=6, batch_size=32, validation_split=0.0, seed=0, learning_rate=2e-3)
    outcome = train(config, data, tmp_path_factory.mktemp("speech"))
    return load_model(outcome.model_path), outcome, x[held], y[held], voice


def test_audio_cnn_recognises_digits_spoken_by_voices_it_never_heard(trained_speech) -> None:
    from ml.inference import predict

    model, outcome, x_held, y_held, voice = trained_speech
    assert len(set(voice.tolist())) == len(spoken_digits.voices()) == 30
    assert outcome.signature["sample_rate"] == RATE
    assert outcome.signature["kind"] == "audio"
    assert outcome.signature["class_names"] == list(spoken_digits.WORDS)
    accuracy = float((predict(model, x_held).argmax(axis=1) == y_held).mean())
    assert len(y_held) == 240
    assert accuracy >= 0.9


def test_audio_explanations_are_over_time_and_frequency(trained_speech, tmp_path: Path) -> None:
    from ml.explainers.audio import explain_audio
    from ml.heatmap import save_heatmap

    model, _, x_held, y_held, _ = trained_speech
    explanation = explain_audio(model, x_held[:2], "integrated_gradients", None, 64, {})
    spectrograms = explanation.extras["spectrograms"]
    assert spectrograms.shape == explanation.attributions.shape == (2, 58, 32)  # frames x mels
    assert explanation.quality["completeness_gap"] < 0.05
    assert explanation.targets == y_held[:2].tolist()
    # Silence before and after the word matters far less than the word itself.
    energy = np.abs(explanation.attributions[0]).sum(axis=1)
    loud = spectrograms[0].mean(axis=1) > 0
    assert energy[loud].mean() > 3 * energy[~loud].mean()
    picture = save_heatmap(spectrograms[0].T[::-1], explanation.attributions[0].T[::-1], tmp_path / "h.png")
    assert picture.read_bytes()[:4] == b"\x89PNG"
    occluded = explain_audio(model, x_held[:1], "occlusion", None, 64, {"window": 8, "seed": 0})
    assert occluded.attributions.shape == (1, 58, 32)
