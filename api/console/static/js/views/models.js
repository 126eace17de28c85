// Registered models: the list, and one model's versions with their metrics, aliases and lineage (the job and the
// dataset that made each), downloads, alias moves and version deletes (write keys only), and the registry history.

import { ApiError, deleteJson, foundJson, getBlob, getJson, optionalJson, putJson } from "../api.js";
import { append, confirmButton, facts, h, notFound, number, replace, saveBlob, section, shortId, table, when } from "../dom.js";

function metricsText(metrics) {
  return Object.entries(metrics || {})
    .filter(([, v]) => typeof v === "number")
    .map(([name, value]) => `${name} ${number(value)}`)
    .join(" · ");
}

// Each alias as a badge, "production → v3"; `only` keeps those naming one version (shown as the bare alias).
function aliasBadges(aliases, only) {
  return Object.entries(aliases || {})
    .filter(([, version]) => only === undefined || version === only)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([alias, version]) => h("span", { class: "alias", dataset: { alias }, text: only === undefined ? `${alias} → v${version}` : alias }));
}

function lineageCell(version) {
  const lineage = version.lineage || {};
  const dataset = lineage.dataset;
  const parts = [];
  if (dataset) {
    const label = dataset.name ? `${dataset.name}` : dataset.ref;
    parts.push(h("div", {}, "data ", h("span", { class: "mono", title: dataset.id || dataset.ref, text: label })));
    if (dataset.sha256) parts.push(h("div", { class: "muted mono", title: dataset.sha256, text: `sha256 ${dataset.sha256.slice(0, 12)}…` }));
  }
  if (lineage.environment) parts.push(h("div", {}, "environment ", h("span", { class: "mono", text: lineage.environment })));
  const jobId = lineage.training_job_id || version.training_job_id;
  if (jobId) {
    const link = version.training_job_id
      ? h("a", { href: `#/jobs/${jobId}`, class: "mono", title: jobId, text: shortId(jobId) })
      : h("span", { class: "mono muted", title: `${jobId} (deleted)`, text: `${shortId(jobId)} (deleted)` });
    parts.push(h("div", {}, "job ", link));
  }
  if (lineage.spec && lineage.spec.epochs) parts.push(h("div", { class: "muted", text: `${lineage.spec.epochs} epochs` }));
  return parts.length ? h("div", { class: "lineage" }, parts) : "upload";
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
          { label: "Aliases", cell: (m) => aliasBadges(m.aliases) },
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
  let model = await foundJson(`/v1/models/${id}`, { signal: ctx.signal });
  if (model === null) return notFound(ctx.root, "model", id);
  const download = (version) => async () => {
    try {
      const blob = await getBlob(`/v1/models/${model.id}/download`, { params: { version }, signal: ctx.signal });
      saveBlob(blob, `${model.name}-v${version}.keras`);
    } catch (error) {
      ctx.fail(error);
    }
  };
  const info = h("div");
  const aliasesHolder = section("Aliases");
  aliasesHolder.id = "aliases";
  const versionsHolder = h("div");
  const historyHolder = h("div");

  async function reload() {
    try {
      model = await getJson(`/v1/models/${model.id}`, { signal: ctx.signal });
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        ctx.navigate("#/models");
        return;
      }
      throw error;
    }
    draw();
    await drawHistory();
  }

  function aliasForm() {
    const alias = h("input", { id: "alias-name", type: "text", maxlength: "64", placeholder: "production", autocomplete: "off" });
    const version = h(
      "select",
      { id: "alias-version" },
      [...model.versions].reverse().map((v) => h("option", { value: String(v.version), text: `v${v.version}` })),
    );
    const button = h("button", { id: "alias-set", type: "submit", text: "Set alias" });
    const form = h("form", { id: "alias-form", class: "row", novalidate: true }, h("label", { class: "inline" }, "Alias ", alias), h("label", { class: "inline" }, "→ version ", version), button);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = alias.value.trim();
      if (!name) return;
      button.disabled = true;
      try {
        await putJson(`/v1/models/${model.id}/aliases/${encodeURIComponent(name)}`, { version: Number(version.value) });
        await reload();
      } catch (error) {
        ctx.fail(error);
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  function draw() {
    replace(
      info,
      facts([
        ["id", h("span", { class: "mono", text: model.id })],
        ["created", when(model.created_at)],
        ["latest version", model.latest_version ?? "—"],
      ]),
    );
    const aliasRows = Object.entries(model.aliases || {}).sort(([a], [b]) => a.localeCompare(b));
    replace(
      aliasesHolder,
      h("h2", { text: "Aliases" }),
      h("p", { class: "hint", text: `Predict and explain take ${model.name}@<alias> wherever a model id goes; moving an alias is recorded below.` }),
      table(
        [
          { label: "Alias", cell: ([alias]) => h("span", { class: "alias", dataset: { alias }, text: alias }) },
          { label: "Version", cell: ([, version]) => `v${version}` },
          { label: "Reference", cell: ([alias]) => h("span", { class: "mono", text: `${model.name}@${alias}` }) },
        ],
        aliasRows,
        { empty: "No aliases yet.", id: "aliases-table" },
      ),
      ctx.canWrite && model.versions.length ? aliasForm() : null,
    );
    const columns = [
      { label: "Version", cell: (v) => String(v.version) },
      { label: "Aliases", cell: (v) => aliasBadges(model.aliases, v.version) },
      { label: "Architecture", cell: (v) => v.architecture || "—" },
      { label: "Metrics", cell: (v) => metricsText(v.metrics) || "—" },
      { label: "Input shape", cell: (v) => (v.signature && v.signature.input_shape ? JSON.stringify(v.signature.input_shape) : "—") },
      {
        label: "Made by",
        cell: (v) => (v.training_job_id ? h("a", { href: `#/jobs/${v.training_job_id}`, class: "mono", title: v.training_job_id, text: shortId(v.training_job_id) }) : "upload"),
      },
      { label: "Lineage", cell: (v) => lineageCell(v) },
      { label: "Created", cell: (v) => when(v.created_at) },
      { label: "", cell: (v) => h("button", { type: "button", class: "secondary small", text: "Download .keras", on: { click: download(v.version) } }) },
    ];
    if (ctx.canWrite) {
      columns.push({
        label: "",
        cell: (v) =>
          confirmButton({
            label: "Delete",
            question: `Delete version ${v.version} and its file?`,
            data: { version: String(v.version) },
            fail: ctx.fail,
            onConfirm: async () => {
              await deleteJson(`/v1/models/${model.id}:${v.version}`);
              await reload();
            },
          }),
      });
    }
    replace(versionsHolder, section("Versions", table(columns, [...model.versions].reverse(), { empty: "No versions.", id: "versions-table" })));
  }

  async function drawHistory() {
    const answer = await optionalJson(`/v1/models/${model.id}/events`, { signal: ctx.signal });
    const events = answer && Array.isArray(answer.events) ? answer.events : [];
    const describe = (e) => {
      const data = e.data || {};
      if (e.kind === "alias_set") return `${data.alias} → v${data.to_version}${data.from_version ? ` (was v${data.from_version})` : ""}`;
      if (e.kind === "alias_deleted") return `${data.alias} removed`;
      if (e.kind === "version_deleted") return `version ${(data.versions || [data.version]).join(", ")} deleted`;
      return e.kind;
    };
    replace(
      historyHolder,
      section(
        "History",
        table(
          [
            { label: "When", cell: (e) => when(e.created_at) },
            { label: "Change", cell: (e) => e.kind },
            { label: "What", cell: (e) => describe(e) },
            { label: "Key", cell: (e) => h("span", { class: "mono", text: e.key_id || "—" }) },
          ],
          [...events].reverse(),
          { empty: "No registry changes yet.", id: "model-history" },
        ),
      ),
    );
  }

  append(
    ctx.root,
    h("p", {}, h("a", { href: "#/models", text: "← All models" })),
    h("h1", {}, "Model ", h("span", { id: "model-name", text: model.name })),
    info,
    aliasesHolder,
    versionsHolder,
    historyHolder,
  );
  draw();
  await drawHistory();
}
