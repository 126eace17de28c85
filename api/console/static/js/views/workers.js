// Workers and queues: who is alive, what each runs, how much waits and for how long; shown when the server
// offers them (GET /v1/workers, GET /v1/queues), refreshed every few seconds.

import { optionalJson } from "../api.js";
import { append, h, replace, section, shortId, table, when } from "../dom.js";

const REFRESH_MS = 5000;

function age(seconds) {
  if (typeof seconds !== "number") return "—";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function gpuText(gpu) {
  if (!gpu) return "CPU";
  const devices = Array.isArray(gpu.devices) ? gpu.devices : [];
  const names = devices.map((d) => [d.name, d.memory_mb ? `${Math.round(d.memory_mb / 1024)} GiB` : null].filter(Boolean).join(" "));
  const index = gpu.index === undefined || gpu.index === null ? "" : `GPU ${gpu.index}`;
  return [index, names.filter(Boolean).join(", ")].filter(Boolean).join(": ") || "CPU";
}

function queuesTable(queues) {
  return table(
    [
      { label: "Queue", cell: (q) => h("span", { class: "mono", text: q.name }) },
      { label: "Queued", cell: (q) => String(q.depth ?? "—") },
      { label: "Running", cell: (q) => String(q.running ?? "—") },
      { label: "Oldest queued", cell: (q) => age(q.oldest_queued_age_s) },
      {
        label: "Live workers",
        cell: (q) =>
          h("span", { class: q.live_workers === 0 && q.depth > 0 ? "badge status-failed" : "", text: String(q.live_workers ?? "—") }),
      },
    ],
    queues,
    { id: "queues-table", empty: "No queues." },
  );
}

function workersTable(workers) {
  return table(
    [
      { label: "Worker", cell: (w) => h("span", { class: "mono", text: w.name || w.node }) },
      { label: "Host", cell: (w) => w.host || "—" },
      { label: "Device", cell: (w) => gpuText(w.gpu) },
      { label: "Queues", cell: (w) => (Array.isArray(w.queues) ? w.queues.join(", ") : "—") },
      {
        label: "Now",
        cell: (w) =>
          w.current_job
            ? h("a", { href: `#/jobs/${w.current_job}`, class: "mono", text: `running ${shortId(w.current_job)}` })
            : w.busy
              ? "busy"
              : "idle",
      },
      { label: "Version", cell: (w) => w.version || "—" },
      { label: "Started", cell: (w) => when(w.started_at) },
      { label: "Last seen", cell: (w) => when(w.last_seen) },
    ],
    workers,
    { id: "workers-table", empty: "No live workers: queued jobs will wait." },
  );
}

function listOf(answer, field) {
  if (answer === null) return null;
  if (Array.isArray(answer)) return answer;
  return Array.isArray(answer[field]) ? answer[field] : [];
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
    replace(queues, queueRows === null ? h("p", { class: "empty", text: "This server does not report its queues." }) : queuesTable(queueRows));
    replace(workers, workerRows === null ? h("p", { class: "empty", text: "This server does not report its workers." }) : workersTable(workerRows));
  }
  await load();
  const timer = setInterval(() => {
    if (!document.hidden) load().catch(ctx.fail);
  }, REFRESH_MS);
  ctx.signal.addEventListener("abort", () => clearInterval(timer));
}
