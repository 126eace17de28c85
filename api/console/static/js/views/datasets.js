// The tenant's datasets, an upload form and delete buttons for write keys, and one dataset's page: the
// column types inferred at upload and its first rows.

import { deleteJson, foundJson, getJson, request } from "../api.js";
import { append, bytes, confirmButton, facts, h, notFound, number, replace, section, shortId, table, when } from "../dom.js";

function infoText(info) {
  return Object.entries(info || {})
    .map(([name, value]) => {
      if (Array.isArray(value)) return `${name} ${value.slice(0, 8).join(", ")}${value.length > 8 ? ` … (${value.length})` : ""}`;
      if (value !== null && typeof value === "object") return `${name} ${JSON.stringify(value).slice(0, 80)}`;
      return `${name} ${value}`;
    })
    .join(" · ");
}

function uploadForm(reload, fail) {
  const file = h("input", { id: "dataset-file", type: "file", accept: ".npz,.csv,.parquet,.jsonl,.zip" });
  const button = h("button", { id: "dataset-upload", type: "submit", text: "Upload" });
  const form = h("form", { class: "row", novalidate: true }, file, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file.files.length) return;
    const body = new FormData();
    body.append("file", file.files[0]);
    button.disabled = true;
    try {
      await request("POST", "/v1/datasets", { form: body });
      file.value = "";
      await reload();
    } catch (error) {
      fail(error);
    } finally {
      button.disabled = false;
    }
  });
  return section("Upload a dataset", h("p", { class: "hint", text: ".npz with x and y, a .csv or .parquet table (columns typed on upload: see docs/data.md), .jsonl text, or a .zip of WAV clips in folders named by their label (docs/speech.md)." }), form);
}

export async function renderDatasets(ctx) {
  const holder = h("div");
  async function load() {
    const answer = await getJson("/v1/datasets", { signal: ctx.signal });
    const remove = {
      label: "",
      cell: (d) =>
        confirmButton({
          label: "Delete",
          question: `Delete ${d.name} and free its storage?`,
          data: { datasetId: d.id },
          fail: ctx.fail,
          onConfirm: async () => {
            await deleteJson(`/v1/datasets/${d.id}`);
            await load();
          },
        }),
    };
    replace(
      holder,
      table(
        [
          { label: "Name", cell: (d) => h("a", { href: `#/datasets/${d.id}`, text: d.name }) },
          { label: "Id", cell: (d) => h("span", { class: "mono", title: d.id, text: shortId(d.id) }) },
          { label: "Format", cell: (d) => d.format },
          { label: "Size", cell: (d) => bytes(d.size_bytes) },
          { label: "Shape", cell: (d) => infoText(d.info) },
          { label: "Uploaded", cell: (d) => when(d.created_at) },
          ...(ctx.canWrite ? [remove] : []),
        ],
        answer.datasets,
        { empty: "No datasets uploaded. Built-in ones (builtin:digits, builtin:iris, …) need no upload.", id: "datasets-table" },
      ),
    );
  }
  append(ctx.root, h("h1", { text: "Datasets" }), ctx.canWrite ? uploadForm(load, ctx.fail) : null, section("Datasets", holder));
  await load();
}

function schemaTable(schema) {
  return table(
    [
      { label: "Column", cell: (c) => h("span", { class: "mono", text: c.name }) },
      { label: "Type", cell: (c) => c.type },
      { label: "Missing", cell: (c) => number(c.missing) },
      { label: "Distinct", cell: (c) => (c.distinct === null || c.distinct === undefined ? "" : number(c.distinct)) },
      { label: "Problem", cell: (c) => c.problem || "" },
    ],
    schema,
    { id: "dataset-schema" },
  );
}

function previewTable(preview) {
  const columns = preview.columns.map((name, i) => ({
    label: name,
    cell: (row) => (row[i] === null ? h("span", { class: "missing", text: "(missing)" }) : row[i]),
  }));
  return table(columns, preview.rows, { empty: "The table has no rows.", id: "dataset-preview" });
}

export async function renderDataset(ctx, id) {
  const dataset = await foundJson(`/v1/datasets/${id}`, { signal: ctx.signal });
  if (dataset === null) return notFound(ctx.root, "dataset", id);
  const noProfile = "Columns are profiled for CSV and Parquet tables uploaded by this version of TensorQ.";
  append(
    ctx.root,
    h("h1", { text: dataset.name }),
    section(
      "Dataset",
      facts([
        ["Id", h("span", { class: "mono", text: dataset.id })],
        ["Format", dataset.format],
        ["Size", bytes(dataset.size_bytes)],
        ["Shape", infoText(dataset.info)],
        ["Uploaded", when(dataset.created_at)],
      ]),
    ),
    section("Columns", dataset.schema ? schemaTable(dataset.schema) : h("p", { class: "empty", text: noProfile })),
    section("First rows", dataset.preview ? previewTable(dataset.preview) : h("p", { class: "empty", text: noProfile })),
  );
}
