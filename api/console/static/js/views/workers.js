// Workers and queues: who is alive, what each runs, and how much waits; shown when the server offers them.

import { optionalJson } from "../api.js";
import { append, h, replace, section, table, when } from "../dom.js";

const REFRESH_MS = 5000;

function cellOf(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) return when(value);
  if (typeof value === "object") return h("code", { text: JSON.stringify(value) });
  return String(value);
}

// A table of whatever fields the objects carry, in the order of the first one.
function genericTable(rows, id, empty) {
  const names = [];
  for (const row of rows) for (const name of Object.keys(row)) if (!names.includes(name)) names.push(name);
  return table(
    names.map((name) => ({ label: name.replaceAll("_", " "), cell: (row) => cellOf(row[name]) })),
    rows,
    { id, empty },
  );
}

function listOf(answer, field) {
  if (answer === null) return null;
  if (Array.isArray(answer)) return answer;
  const value = answer[field];
  if (Array.isArray(value)) return value;
  if (value && typeof value === "object") return Object.entries(value).map(([name, row]) => ({ name, ...row }));
  return [];
}

export async function renderWorkers(ctx) {
  const workers = h("div", { id: "workers" });
  const queues = h("div", { id: "queues" });
  append(ctx.root, h("h1", { text: "Workers & queues" }), section("Queues", queues), section("Workers", workers));
  async function load() {
    const [queueAnswer, workerAnswer] = await Promise.all([
      optionalJson("/v1/queues", { signal: ctx.signal }),
      optionalJson("/v1/workers", { signal: ctx.signal }),
    ]);
    const queueRows = listOf(queueAnswer, "queues");
    const workerRows = listOf(workerAnswer, "workers");
    replace(queues, queueRows === null ? h("p", { class: "empty", text: "This server does not report its queues." }) : genericTable(queueRows, "queues-table", "No queues."));
    replace(workers, workerRows === null ? h("p", { class: "empty", text: "This server does not report its workers." }) : genericTable(workerRows, "workers-table", "No live workers."));
  }
  await load();
  const timer = setInterval(() => {
    if (!document.hidden) load().catch(ctx.fail);
  }, REFRESH_MS);
  ctx.signal.addEventListener("abort", () => clearInterval(timer));
}
