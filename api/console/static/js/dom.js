// Building the page from data with DOM calls only: every value becomes text, never parsed markup.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = String(value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "on") for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    else if (name in element && typeof value !== "string") element[name] = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

// Append children (nodes or text), skipping null, undefined and false.
export function append(element, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(element) {
  while (element.firstChild) element.firstChild.remove();
  return element;
}

export function replace(element, ...children) {
  clear(element);
  append(element, children);
  return element;
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, text: status, dataset: { status } });
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function duration(startIso, endIso) {
  if (!startIso) return "—";
  const end = endIso ? new Date(endIso) : new Date();
  let seconds = Math.max(0, Math.round((end - new Date(startIso)) / 1000));
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  seconds %= 60;
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${seconds} s`;
  return `${seconds} s`;
}

export function number(value) {
  if (typeof value !== "number") return value === undefined || value === null ? "—" : String(value);
  if (Number.isInteger(value)) return String(value);
  const magnitude = Math.abs(value);
  return magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6) ? value.toExponential(3) : value.toFixed(4);
}

export function bytes(size) {
  if (typeof size !== "number") return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = size;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "—";
}

// JSON shown as text, cut at `limit` characters (attributions can be large).
export function jsonText(value, limit = 20000) {
  const text = JSON.stringify(value, null, 2);
  return text.length > limit ? `${text.slice(0, limit)}\n… (${text.length - limit} more characters)` : text;
}

// A table of `rows` with `columns` = [{label, cell(row) -> node or text}].
export function table(columns, rows, { empty = "Nothing here yet.", id } = {}) {
  if (!rows.length) return h("p", { class: "empty", text: empty });
  return h(
    "table",
    { class: "grid", id },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { text: c.label })))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", {}, c.cell(row)))))),
  );
}

// Key/value pairs as a definition list.
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(([, value]) => value !== undefined).map(([label, value]) => [h("dt", { text: label }), h("dd", {}, value)]),
  );
}

// Save a Blob under `name` through a temporary object URL.
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", { text: title }), children);
}

// The page of a `noun` ("job", "dataset", "model") that this tenant does not have: a heading, the line
// `#<noun>-missing`, and with `back` = {href, text} a link back to the list.
export function notFound(root, noun, id, back) {
  append(
    root,
    h("h1", { text: `${noun[0].toUpperCase()}${noun.slice(1)} not found` }),
    h("p", { id: `${noun}-missing`, class: "empty", text: `There is no ${noun} ${id} among this tenant's ${noun}s.` }),
    back && h("p", {}, h("a", { href: back.href, text: back.text })),
  );
}

// A button that asks before it acts: the first click shows the question with "Yes" and "Keep"; "Yes" runs
// `onConfirm` (errors go to `fail`). The confirming button is `.confirm-yes`, with the id `<id>-confirm`.
export function confirmButton({ id, label, question, onConfirm, fail, data }) {
  const holder = h("span", { class: "confirm" });
  const start = h("button", { type: "button", class: "danger small", id, text: label, dataset: data });
  function reset() {
    replace(holder, start);
  }
  start.addEventListener("click", () => {
    const yes = h("button", { type: "button", class: "danger small confirm-yes", id: id ? `${id}-confirm` : undefined, text: `Yes, ${label.toLowerCase()}` });
    const no = h("button", { type: "button", class: "secondary small confirm-no", text: "Keep" });
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      no.disabled = true;
      try {
        await onConfirm();
      } catch (error) {
        if (fail) fail(error);
      } finally {
        reset();
      }
    });
    no.addEventListener("click", reset);
    replace(holder, h("span", { class: "question", text: question }), yes, no);
  });
  append(holder, start);
  return holder;
}

// A job's tags as small chips; with `onPick`, each is a button that picks that tag.
export function tagChips(tags, onPick) {
  return (tags || []).map((tag) =>
    onPick
      ? h("button", { type: "button", class: "tag", text: tag, dataset: { tag }, on: { click: () => onPick(tag) } })
      : h("span", { class: "tag", text: tag, dataset: { tag } }),
  );
}

// Where a queued job stands: "3 ahead, starts in ~40 s" (empty when the server says nothing).
export function queueOutlook(job) {
  if (job.status !== "queued" || job.queue_position == null) return "";
  const ahead = job.queue_position === 0 ? "next in its queue" : `${job.queue_position} ahead`;
  if (job.expected_start_s == null) return ahead;
  return `${ahead}, starts in ~${Math.round(job.expected_start_s)} s`;
}
