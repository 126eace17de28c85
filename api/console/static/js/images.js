// Pictures: a job's input array drawn on a canvas, and artifacts shown through blob: URLs fetched with the key.

import { getBlob } from "./api.js";
import { h, number } from "./dom.js";

function isNumberGrid(value) {
  return Array.isArray(value) && value.length > 0 && value.every((row) => Array.isArray(row) && row.length === value[0].length);
}

// A 2-D [h][w] or 3-D [h][w][c] numeric input as a canvas (grey, or RGB for three channels), scaled by CSS;
// a 1-D input as a row of numbers.
export function inputPicture(input) {
  if (isNumberGrid(input) && input[0].every((cell) => typeof cell === "number" || Array.isArray(cell))) {
    const height = input.length;
    const width = input[0].length;
    const channels = Array.isArray(input[0][0]) ? input[0][0].length : 1;
    const flat = input.flat(2).filter((v) => typeof v === "number");
    let low = Infinity;
    let high = -Infinity;
    for (const v of flat) {
      if (v < low) low = v;
      if (v > high) high = v;
    }
    const span = high - low || 1;
    const canvas = h("canvas", { class: "input-picture", width: String(width), height: String(height) });
    const context = canvas.getContext("2d");
    const image = context.createImageData(width, height);
    for (let y = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1) {
        const cell = input[y][x];
        const values = Array.isArray(cell) ? cell : [cell];
        const scaled = values.map((v) => Math.round((255 * (v - low)) / span));
        const [r, g, b] = channels === 3 ? scaled : [scaled[0], scaled[0], scaled[0]];
        const at = 4 * (y * width + x);
        image.data.set([r, g, b, 255], at);
      }
    }
    context.putImageData(image, 0, 0);
    canvas.title = `input ${height}×${width}${channels > 1 ? `×${channels}` : ""}`;
    return canvas;
  }
  if (Array.isArray(input) && input.every((v) => typeof v === "number")) {
    return h("code", { class: "input-values", text: input.map(number).join(", ") });
  }
  return h("code", { class: "input-values", text: JSON.stringify(input).slice(0, 400) });
}

// An <img> of an artifact; the blob: URL is released when `signal` fires.
export function artifactImage(jobId, name, signal, onError) {
  const image = h("img", { class: "artifact-image", alt: name, dataset: { artifact: name } });
  getBlob(`/v1/jobs/${jobId}/artifacts/${encodeURIComponent(name)}`, { signal })
    .then((blob) => {
      const url = URL.createObjectURL(blob);
      image.src = url;
      signal.addEventListener("abort", () => URL.revokeObjectURL(url));
    })
    .catch(onError);
  return image;
}

// An <audio controls> of a WAV artifact; the blob: URL is released when `signal` fires.
export function artifactAudio(jobId, name, signal, onError) {
  const player = h("audio", { class: "artifact-audio", controls: "", preload: "auto", dataset: { artifact: name } });
  getBlob(`/v1/jobs/${jobId}/artifacts/${encodeURIComponent(name)}`, { signal })
    .then((blob) => {
      const url = URL.createObjectURL(blob);
      player.src = url;
      signal.addEventListener("abort", () => URL.revokeObjectURL(url));
    })
    .catch(onError);
  return player;
}
