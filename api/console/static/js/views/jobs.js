// The jobs list: live (refreshed every few seconds), filtered by status, type, name and tag, paged by cursor; and a
// form that submits a new job, named and tagged (write keys only).

import { getJson, postJson } from "../api.js";
import {
  append,
  duration,
  h,
  queueOutlook,
  replace,
  section,
  shortId,
  statusBadge,
  table,
  tagChips,
  when,
} from "../dom.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const TYPES = ["train", "predict", "explain", "import", "group"];
const PAGE_SIZE = 20;
const REFRESH_MS = 3000;

export const SPEC_TEMPLATES = {
  train: { architecture: "mlp", dataset: "builtin:iris", epochs: 20, batch_size: 16, validation_split: 0.2, seed: 1 },
  predict: { model: "<model id>", inputs: [[5.1, 3.5, 1.4, 0.2]] },
  explain: { model: "<model id>", inputs: [[5.1, 3.5, 1.4, 0.2]], method: "integrated_gradients" },
};

// Kept while the tab lives, so coming back to the list shows the same filters.
const state = { status: "", type: "", name: "", tag: "", cursors: [null] };

function progressText(job) {
  const progress = job.progress || {};
  if (job.type === "train" && progress.epochs) return `epoch ${progress.epoch || 0} / ${progress.epochs}`;
  if (job.children) return `${job.children.succeeded + job.children.failed + job.children.cancelled} / ${job.children.total} children done`;
  if (job.waiting_reason) return job.waiting_reason;
  return queueOutlook(job);
}

// Tags typed as "a, b c": split on commas and blanks, each once.
export function parseTags(text) {
  return [...new Set(String(text || "").split(/[\s,]+/).filter(Boolean))];
}

function jobsTable(jobs, pickTag) {
  return table(
    [
      { label: "Job", cell: (j) => h("a", { href: `#/jobs/${j.id}`, title: j.id, class: "mono job-link", text: shortId(j.id), dataset: { jobId: j.id } }) },
      { label: "Type", cell: (j) => j.type },
      { label: "Name", cell: (j) => h("span", { class: "job-name", text: j.name || "—" }) },
      { label: "Tags", cell: (j) => h("span", { class: "job-tags" }, tagChips(j.tags, pickTag)) },
      { label: "Status", cell: (j) => statusBadge(j.status) },
      { label: "Progress", cell: (j) => progressText(j) },
      { label: "Created", cell: (j) => when(j.created_at) },
      { label: "Ran for", cell: (j) => (j.started_at ? duration(j.started_at, j.finished_at) : "—") },
    ],
    jobs,
    { empty: "No jobs match.", id: "jobs-table" },
  );
}

function select(id, label, values, current, onChange) {
  const element = h(
    "select",
    { id, on: { change: () => onChange(element.value) } },
    h("option", { value: "", text: `any ${label}` }),
    values.map((v) => h("option", { value: v, text: v, selected: v === current })),
  );
  return h("label", { class: "inline" }, `${label} `, element);
}

function submitForm(ctx) {
  const type = h(
    "select",
    { id: "new-job-type" },
    Object.keys(SPEC_TEMPLATES).map((t) => h("option", { value: t, text: t })),
  );
  const spec = h("textarea", { id: "new-job-spec", rows: 8, spellcheck: "false", class: "mono" });
  spec.value = JSON.stringify(SPEC_TEMPLATES.train, null, 2);
  let edited = false;
  spec.addEventListener("input", () => {
    edited = true;
  });
  type.addEventListener("change", () => {
    if (!edited) spec.value = JSON.stringify(SPEC_TEMPLATES[type.value], null, 2);
  });
  const priority = h("input", { id: "new-job-priority", type: "number", min: "0", max: "9", value: "5" });
  const name = h("input", { id: "new-job-name", type: "text", maxlength: "200", placeholder: "optional", autocomplete: "off" });
  const tags = h("input", { id: "new-job-tags", type: "text", placeholder: "e.g. churn, nightly", autocomplete: "off" });
  const note = h("p", { class: "error", role: "alert", hidden: true, id: "new-job-error" });
  const button = h("button", { id: "submit-job", type: "submit", text: "Submit job" });
  const form = h(
    "form",
    { id: "new-job", class: "new-job", novalidate: true },
    h("div", { class: "row" }, h("label", { class: "inline" }, "Type ", type), h("label", { class: "inline" }, "Priority ", priority)),
    h("div", { class: "row" }, h("label", { class: "inline" }, "Name ", name), h("label", { class: "inline" }, "Tags ", tags)),
    h("label", { for: "new-job-spec", text: "Spec (JSON)" }),
    spec,
    note,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    note.hidden = true;
    let parsed;
    try {
      parsed = JSON.parse(spec.value);
    } catch (error) {
      note.textContent = `The spec is not valid JSON: ${error.message}`;
      note.hidden = false;
      return;
    }
    button.disabled = true;
    try {
      const body = { type: type.value, spec: parsed };
      const level = Number.parseInt(priority.value, 10);
      if (!Number.isNaN(level)) body.priority = level;
      if (name.value.trim()) body.name = name.value.trim();
      const tagList = parseTags(tags.value);
      if (tagList.length) body.tags = tagList;
      const job = await postJson("/v1/jobs", body);
      ctx.navigate(`#/jobs/${job.id}`);
    } catch (error) {
      note.textContent = `${error.code || "error"}: ${error.message}`;
      note.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return h("details", { class: "panel", id: "new-job-panel" }, h("summary", { text: "New job" }), form);
}

export async function renderJobs(ctx) {
  const listHolder = h("div", { id: "jobs-list" });
  const pageLabel = h("span", { class: "page-label" });
  const previous = h("button", { type: "button", class: "secondary", id: "jobs-previous", text: "← Newer" });
  const next = h("button", { type: "button", class: "secondary", id: "jobs-next", text: "Older →" });
  let nextCursor = null;
  let busy = false;

  async function load() {
    if (busy) return;
    busy = true;
    try {
      const page = await getJson("/v1/jobs", {
        params: {
          status: state.status,
          type: state.type,
          name: state.name,
          tag: state.tag,
          limit: PAGE_SIZE,
          cursor: state.cursors[state.cursors.length - 1],
        },
        signal: ctx.signal,
      });
      nextCursor = page.next_cursor;
      replace(listHolder, jobsTable(page.jobs, pickTag));
      previous.disabled = state.cursors.length <= 1;
      next.disabled = !nextCursor;
      pageLabel.textContent = `page ${state.cursors.length}`;
    } catch (error) {
      ctx.fail(error);
    } finally {
      busy = false;
    }
  }

  function refilter(field) {
    return (value) => {
      state[field] = value;
      state.cursors = [null];
      load();
    };
  }
  function textFilter(id, field, label, placeholder) {
    const input = h("input", { id, type: "search", value: state[field], placeholder, autocomplete: "off" });
    const apply = () => {
      const value = input.value.trim();
      if (value !== state[field]) refilter(field)(value);
    };
    input.addEventListener("change", apply);
    input.addEventListener("search", apply);
    return [h("label", { class: "inline" }, `${label} `, input), input];
  }
  const [nameFilter] = textFilter("filter-name", "name", "name", "any name");
  const [tagFilter, tagInput] = textFilter("filter-tag", "tag", "tag", "any tag");
  function pickTag(tag) {
    tagInput.value = tag;
    refilter("tag")(tag);
  }
  previous.addEventListener("click", () => {
    if (state.cursors.length > 1) state.cursors.pop();
    load();
  });
  next.addEventListener("click", () => {
    if (!nextCursor) return;
    state.cursors.push(nextCursor);
    load();
  });

  append(
    ctx.root,
    h("h1", { text: "Jobs" }),
    ctx.canWrite ? submitForm(ctx) : null,
    section(
      "All jobs",
      h(
        "div",
        { class: "row toolbar filters" },
        select("filter-status", "status", STATUSES, state.status, refilter("status")),
        select("filter-type", "type", TYPES, state.type, refilter("type")),
        nameFilter,
        tagFilter,
        h("span", { class: "live", text: "live" }),
      ),
      listHolder,
      h("div", { class: "row pager" }, previous, pageLabel, next),
    ),
  );
  await load();
  const timer = setInterval(() => {
    if (!document.hidden) load();
  }, REFRESH_MS);
  ctx.signal.addEventListener("abort", () => clearInterval(timer));
}
