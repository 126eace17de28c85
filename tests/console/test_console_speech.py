"""The console's speech explanation in a real browser against a real stack: an audio_cnn trained on an uploaded
zip of tones explains a clip, and its page shows the clip in an <audio> player, its spectrogram and the heatmap;
a predict job's page shows the predicted labels."""

from __future__ import annotations

import base64
import io
import zipfile
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tensorq.client import TensorQClient
from tests.console.test_console_browser import IMAGE_LOADED, console_problems, find, sign_in, status_of, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

RATE = 8000
AUDIO_READY = "return arguments[0].readyState >= 1 && arguments[0].duration"


def tone(hz: float, seconds: float = 0.4) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def wav(samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


def tones_zip() -> bytes:
    """Low and high tones, twenty of each, in folders named by their class."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(20):
            archive.writestr(f"low/{i}.wav", wav(tone(200 + 10 * i)))
            archive.writestr(f"high/{i}.wav", wav(tone(2000 + 40 * i)))
    return out.getvalue()


def test_a_speech_explanation_shows_the_clip_its_spectrogram_and_the_heatmap(
    console_stack: dict, browser: Any, screenshots: Any
) -> None:
    client = TensorQClient(console_stack["url"], console_stack["keys"]["acme"])
    answer = client._call("POST", "/v1/datasets", files={"file": ("tones.zip", io.BytesIO(tones_zip()))})  # noqa: SLF001
    dataset = answer.json()["id"]
    params = {"sample_rate": RATE, "clip_seconds": 0.5, "filters": [4], "dense": 8, "n_mels": 16}
    spec = {"architecture": "audio_cnn", "params": params, "dataset": dataset, "epochs": 3, "seed": 1}
    trained = client.run("train", spec | {"register_as": "tones"}, timeout=600)
    assert trained.status == "succeeded", trained.error
    clip = {"wav": base64.b64encode(wav(tone(2100))).decode()}
    explained = client.run("explain", {"model": "tones", "inputs": [clip], "steps": 16}, timeout=300)
    assert explained.status == "succeeded", explained.error
    predicted = client.run("predict", {"model": "tones", "inputs": [clip, {"wav": clip["wav"]}]}, timeout=300)
    assert predicted.result["labels"] == ["high", "high"]
    client.close()

    driver = browser
    sign_in(driver, console_stack["url"], console_stack["keys"]["acme"])
    driver.get(f"{console_stack['url']}/console/#/jobs/{explained.id}")
    wait_until(lambda: status_of(driver) == "succeeded", 60, "the explanation's page")

    player = wait_until(lambda: find(driver, "#explanations audio.artifact-audio"), 30, "the clip's player")
    assert player.get_attribute("data-artifact") == "clip_0.wav"
    assert player.get_attribute("controls") is not None
    duration = wait_until(lambda: driver.execute_script(AUDIO_READY, player), 30, "the clip to load")
    assert duration == pytest.approx(0.5, abs=0.01)  # the clip as the model heard it: its 0.5 s window
    assert player.get_attribute("src").startswith("blob:")

    def pictures() -> list[Any]:
        images = driver.find_elements("css selector", "#explanations img.artifact-image")
        loaded = [i for i in images if driver.execute_script(IMAGE_LOADED, i)]
        return loaded if len(loaded) == len(images) == 2 else []

    shown = wait_until(pictures, 30, "the spectrogram and the heatmap to render")
    assert [img.get_attribute("data-artifact") for img in shown] == ["spectrogram_0.png", "heatmap_0.png"]
    captions = [c.text for c in driver.find_elements("css selector", "#explanations .audio-pair span")]
    assert captions == ["clip", "spectrogram", "attributions (time × frequency)"]
    assert find(driver, "#artifacts").text.count("clip_0.wav") == 1  # still downloadable
    driver.save_screenshot(str(screenshots / "speech-explanation-page.png"))
    assert console_problems(driver) == []

    driver.get(f"{console_stack['url']}/console/#/jobs/{predicted.id}")
    labels = wait_until(lambda: find(driver, "#predicted-labels"), 60, "the predict job's labels")
    assert labels.text == "labels: high, high"
    assert console_problems(driver) == []
