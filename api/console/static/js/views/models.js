// Registered models: the list, and one model's versions with their metrics, the job that made each, and downloads.

import { ApiError, getBlob, getJson } from "../api.js";
import { append, facts, h, number, saveBlob, section, shortId, table, when } from "../dom.js";

function metricsText(metrics) {
  return Object.entries(metrics || {})
    .filter(([, v]) => typeof v === "number")
    .map(([name, value]) => `${name} ${number(value)}`)
    .join(" · ");
}

export async function renderModels(ctx) {
  const answer = await getJson("/v1/models", { signal: ctx.signal });
  append(
    ctx.root,
    h("h1", { text: "Models" }),
    section(
      "Registered models",
      table(
        [
          { label: "Name", cell: (m) => h("a", { href: `#/models/${m.id}`, class: "model-link", text: m.name }) },
          { label: "Id", cell: (m) => h("span", { class: "mono", title: m.id, text: shortId(m.id) }) },
          { label: "Latest version", cell: (m) => m.latest_version ?? "—" },
          { label: "Latest metrics", cell: (m) => metricsText((m.versions[m.versions.length - 1] || {}).metrics) },
          { label: "Created", cell: (m) => when(m.created_at) },
        ],
        answer.models,
        { empty: "No models yet: a succeeded training job registers one.", id: "models-table" },
      ),
    ),
  );
}

export async function renderModel(ctx, id) {
  let model;
  try {
    model = await getJson(`/v1/models/${id}`, { signal: ctx.signal });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      append(ctx.root, h("h1", { text: "Model not found" }), h("p", { id: "model-missing", class: "empty", text: `There is no model ${id} among this tenant's models.` }));
      return;
    }
    throw error;
  }
  const download = (version) => async () => {
    try {
      const blob = await getBlob(`/v1/models/${model.id}/download`, { params: { version }, signal: ctx.signal });
      saveBlob(blob, `${model.name}-v${version}.keras`);
    } catch (error) {
      ctx.fail(error);
    }
  };
  append(
    ctx.root,
    h("p", {}, h("a", { href: "#/models", text: "← All models" })),
    h("h1", {}, "Model ", h("span", { text: model.name })),
    facts([
      ["id", h("span", { class: "mono", text: model.id })],
      ["created", when(model.created_at)],
      ["latest version", model.latest_version ?? "—"],
    ]),
    section(
      "Versions",
      table(
        [
          { label: "Version", cell: (v) => String(v.version) },
          { label: "Architecture", cell: (v) => v.architecture || "—" },
          { label: "Metrics", cell: (v) => metricsText(v.metrics) || "—" },
          { label: "Input shape", cell: (v) => (v.signature && v.signature.input_shape ? JSON.stringify(v.signature.input_shape) : "—") },
          {
            label: "Made by",
            cell: (v) => (v.training_job_id ? h("a", { href: `#/jobs/${v.training_job_id}`, class: "mono", title: v.training_job_id, text: shortId(v.training_job_id) }) : "upload"),
          },
          { label: "Created", cell: (v) => when(v.created_at) },
          { label: "", cell: (v) => h("button", { type: "button", class: "secondary small", text: "Download .keras", on: { click: download(v.version) } }) },
        ],
        [...model.versions].reverse(),
        { empty: "No versions.", id: "versions-table" },
      ),
    ),
  );
}
