// One job: its state, a live progress bar and curves while it trains (driven by the job's event stream), the
// timeline of its events, the result, its artifacts (heatmaps beside their inputs), its logs, cancel and resubmit.

import { ApiError, deleteJson, followEvents, foundJson, getBlob, getJson, optionalJson, postJson, request } from "../api.js";
import { curveChart, seriesFromHistory, seriesFromProgress } from "../charts.js";
import {
  append,
  confirmButton,
  duration,
  facts,
  h,
  jsonText,
  notFound,
  number,
  queueOutlook,
  replace,
  saveBlob,
  section,
  shortId,
  statusBadge,
  table,
  tagChips,
  when,
} from "../dom.js";
import { artifactAudio, artifactImage, inputPicture } from "../images.js";
import { tuneView } from "../tune.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
// Figures of a progress report that are not charted: the learning rate and an agent's counters.
const COUNTERS = new Set(["lr", "learning_rate", "episodes", "env_steps"]);
const RETRY_MS = 3000;
const PLAIN_POLL_MS = 2000; // how often a job is read while its event stream is refused (all wait slots taken)
const PLAIN_FOR_MS = 30000; // and for how long before a stream is tried again
const EVENTS_EVERY_MS = 2000; // the longest a running job's timeline goes without a re-read
const QUEUED_READ_MS = 5000; // how often a queued job is read besides its stream (its place moves without a change)

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// The part of the page that shows training progress: a bar, a line of figures, and two charts.
function trainingPanel() {
  const bar = h("progress", { id: "job-progress", max: 1, value: 0 });
  const text = h("span", { id: "job-progress-text", class: "progress-text", text: "waiting for the first epoch" });
  const lossCanvas = h("canvas", { id: "loss-chart" });
  const metricCanvas = h("canvas", { id: "metric-chart" });
  const element = section(
    "Training",
    h("div", { class: "progress-row" }, bar, text),
    h("div", { class: "charts" }, h("div", { class: "chart-box" }, lossCanvas), h("div", { class: "chart-box" }, metricCanvas)),
  );
  element.id = "training";
  let loss = null;
  let metrics = null;
  return {
    element,
    update(job, curves) {
      const progress = job.progress || {};
      const epochs = progress.epochs || job.spec.epochs || 1;
      const epoch = job.status === "succeeded" ? epochs : progress.epoch || 0;
      bar.max = epochs;
      bar.value = Math.min(epoch, epochs);
      const figures = Object.entries(progress)
        .filter(([name, value]) => name !== "epoch" && name !== "epochs" && typeof value === "number")
        .map(([name, value]) => `${name} ${number(value)}`);
      let eta = "";
      if (job.status === "running" && job.started_at && epoch > 0 && epoch < epochs) {
        const perEpoch = (Date.now() - new Date(job.started_at)) / 1000 / epoch;
        eta = ` · about ${Math.round(perEpoch * (epochs - epoch))} s left`;
      }
      text.textContent = epoch ? `epoch ${epoch} / ${epochs}${eta}${figures.length ? ` · ${figures.join(" · ")}` : ""}` : text.textContent;
      if (job.status === "succeeded" && !progress.epoch) text.textContent = "finished";
      loss ||= curveChart(lossCanvas, { title: "loss", accept: (name) => name.endsWith("loss") });
      // An agent's counters (episodes, env_steps) are not curves; its mean return per iteration is.
      metrics ||= curveChart(metricCanvas, { title: "metrics", accept: (name) => !name.endsWith("loss") && !COUNTERS.has(name) });
      loss.update(curves);
      metrics.update(curves);
    },
  };
}

// What the job reads: the model it runs (a link) and its dataset, when the spec names them.
function inputsOf(job) {
  const spec = job.spec || {};
  const pairs = [];
  if (typeof spec.model === "string") {
    const [modelId, version] = spec.model.split(":");
    pairs.push(["model", h("a", { href: `#/models/${modelId}`, class: "mono", text: version ? `${shortId(modelId)} v${version}` : shortId(modelId), title: spec.model })]);
  }
  if (typeof spec.dataset === "string") pairs.push(["dataset", h("span", { class: "mono", text: spec.dataset })]);
  if (spec.environment && typeof spec.environment.name === "string") pairs.push(["environment", h("span", { class: "mono", id: "job-environment", text: spec.environment.name })]);
  if (typeof spec.method === "string") pairs.push(["method", spec.method]);
  return pairs;
}

function timeline(events) {
  const states = events.filter((e) => e.kind === "state");
  const progress = events.filter((e) => e.kind === "progress");
  const others = events.filter((e) => e.kind !== "state" && e.kind !== "progress");
  const items = [...states, ...others]
    .sort((a, b) => a.seq - b.seq)
    .map((e) =>
      h(
        "li",
        { dataset: { to: e.to_status || e.kind } },
        h("time", { text: when(e.created_at) }),
        " ",
        e.kind === "state"
          ? [e.from_status ? [statusBadge(e.from_status), " → "] : "submitted → ", statusBadge(e.to_status)]
          : h("span", { text: `${e.kind}${e.data ? ` ${JSON.stringify(e.data).slice(0, 200)}` : ""}` }),
      ),
    );
  const last = progress[progress.length - 1];
  if (last) {
    const epoch = last.data && last.data.epoch;
    items.push(h("li", { class: "muted", text: `${progress.length} progress report${progress.length === 1 ? "" : "s"}${epoch ? `, the last at epoch ${epoch} (${when(last.created_at)})` : ""}` }));
  }
  return h("ol", { id: "timeline", class: "timeline" }, items);
}

function errorBlock(error) {
  const details = error.details && typeof error.details === "object" && !Array.isArray(error.details) ? error.details : {};
  const rest = error.details && details !== error.details ? { details: error.details } : { ...details };
  delete rest.phase;
  return h(
    "div",
    { class: "error-block", id: "job-error" },
    h("p", {}, h("strong", { class: "mono", text: error.code || "error" }), " ", error.message || ""),
    details.phase ? h("p", { text: `phase: ${details.phase}` }) : null,
    Object.keys(rest).length ? h("pre", { class: "mono", text: jsonText(rest, 4000) }) : null,
  );
}

function metricsTable(metricsByName) {
  const rows = Object.entries(metricsByName || {}).filter(([, v]) => typeof v === "number" || typeof v === "string");
  return table([{ label: "metric", cell: (r) => r[0] }, { label: "value", cell: (r) => number(r[1]) }], rows, { empty: "No metrics." });
}

// A policy's answer: per observation, the action it takes and each action's probability.
function actionsTable(result) {
  const rows = result.actions.map((action, i) => ({ i, action, name: (result.action_names || [])[i], p: (result.probabilities || [])[i] || [] }));
  return table(
    [
      { label: "observation", cell: (r) => r.i },
      { label: "action", cell: (r) => (r.name ? `${r.action} (${r.name})` : r.action) },
      { label: "probabilities", cell: (r) => r.p.map((v) => number(v)).join(" · ") },
    ],
    rows.slice(0, 100),
    { empty: "No observations.", id: "policy-actions" },
  );
}

// An agent's explanation: per observation, the explained action and each feature's attribution.
function featureTable(result) {
  const names = result.feature_names || (result.attributions[0] || []).map((_, j) => `feature ${j}`);
  const rows = result.attributions.map((values, i) => ({ i, values, target: (result.target_names || result.targets)[i] }));
  return table(
    [{ label: "observation", cell: (r) => r.i }, { label: "action", cell: (r) => r.target }, ...names.map((name, j) => ({ label: name, cell: (r) => number(r.values[j]) }))],
    rows.slice(0, 100),
    { empty: "No attributions.", id: "policy-attributions" },
  );
}

function resultView(job) {
  const result = job.result || {};
  const parts = [];
  if (job.type === "train" || job.type === "import") {
    if (result.model_id) {
      parts.push(
        facts([
          ["model", h("a", { href: `#/models/${result.model_id}`, id: "result-model", text: result.model_name || job.spec.model_name || shortId(result.model_id) })],
          ["version", result.version],
        ]),
      );
    }
    if (result.metrics) parts.push(h("h3", { text: "Metrics" }), metricsTable(result.metrics));
    if (result.stopped_by) parts.push(h("p", { id: "result-stopped-by", text: `stopped by ${result.stopped_by}` }));
  } else if (job.type === "tune" && result.model_id) {
    parts.push(
      facts([
        ["best model", h("a", { href: `#/models/${result.model_id}`, id: "result-model", text: result.model_name || shortId(result.model_id) })],
        ["version", result.version],
      ]),
    );
  } else if (job.type === "predict") {
    if (Array.isArray(result.classes)) parts.push(h("p", { text: `classes: ${result.classes.slice(0, 50).join(", ")}${result.classes.length > 50 ? " …" : ""}` }));
    if (Array.isArray(result.actions)) parts.push(actionsTable(result));
    if (Array.isArray(result.labels)) parts.push(h("p", { id: "predicted-labels", text: `labels: ${result.labels.slice(0, 50).join(", ")}${result.labels.length > 50 ? " …" : ""}` }));
  } else if (job.type === "explain" && result.quality) {
    parts.push(h("h3", { text: "Quality" }), metricsTable(result.quality));
    if (result.explained === "logit") parts.push(h("h3", { text: "Attributions of the chosen action's logit" }), featureTable(result));
  }
  parts.push(h("details", { class: "raw" }, h("summary", { text: "Raw result" }), h("pre", { class: "mono", text: jsonText(result) })));
  return parts;
}

// Explanations: each input beside its heatmap (an audio clip: its player, its spectrogram and the heatmap).
function explanationView(job, signal, fail) {
  const artifacts = (job.result && job.result.artifacts) || [];
  if (artifacts.some((name) => /^clip_\d+\.wav$/.test(name))) return audioExplanationView(job, artifacts, signal, fail);
  const heatmaps = artifacts.filter((name) => /^heatmap_\d+\.png$/.test(name)).sort((a, b) => Number(a.match(/\d+/)[0]) - Number(b.match(/\d+/)[0]));
  if (!heatmaps.length) return null;
  const inputs = Array.isArray(job.spec.inputs) ? job.spec.inputs : [];
  return section(
    "Explanations",
    h(
      "div",
      { class: "pairs", id: "explanations" },
      heatmaps.map((name) => {
        const index = Number(name.match(/\d+/)[0]);
        return h(
          "figure",
          { class: "pair" },
          inputs[index] !== undefined ? h("div", { class: "pair-input" }, inputPicture(inputs[index]), h("span", { text: "input" })) : null,
          h("div", { class: "pair-heatmap" }, artifactImage(job.id, name, signal, fail), h("span", { text: "attributions" })),
          h("figcaption", { text: `input ${index}` }),
        );
      }),
    ),
  );
}

// Audio explanations: per clip an <audio> player of the clip as the model heard it, its log-mel spectrogram, and
// the attributions over time (across) and frequency (up) drawn over it.
function audioExplanationView(job, artifacts, signal, fail) {
  const clips = artifacts.filter((name) => /^clip_\d+\.wav$/.test(name)).sort((a, b) => Number(a.match(/\d+/)[0]) - Number(b.match(/\d+/)[0]));
  const labelled = (node, text) => h("div", { class: "pair-heatmap" }, node, h("span", { text }));
  return section(
    "Explanations",
    h(
      "div",
      { class: "pairs", id: "explanations" },
      clips.map((clip) => {
        const index = Number(clip.match(/\d+/)[0]);
        const target = job.result.targets && job.result.targets[index];
        return h(
          "figure",
          { class: "pair audio-pair" },
          labelled(artifactAudio(job.id, clip, signal, fail), "clip"),
          labelled(artifactImage(job.id, `spectrogram_${index}.png`, signal, fail), "spectrogram"),
          labelled(artifactImage(job.id, `heatmap_${index}.png`, signal, fail), "attributions (time × frequency)"),
          h("figcaption", { text: `clip ${index}${target !== undefined ? `, class ${target}` : ""}` }),
        );
      }),
    ),
  );
}

function artifactsView(job, signal, fail, shownInline) {
  const artifacts = (job.result && job.result.artifacts) || [];
  if (!artifacts.length) return null;
  return section(
    "Artifacts",
    h(
      "ul",
      { class: "artifacts", id: "artifacts" },
      artifacts.map((name) =>
        h(
          "li",
          {},
          h("span", { class: "mono", text: name }),
          " ",
          h("button", {
            type: "button",
            class: "secondary small",
            text: "Download",
            on: {
              click: () =>
                getBlob(`/v1/jobs/${job.id}/artifacts/${encodeURIComponent(name)}`, { signal })
                  .then((blob) => saveBlob(blob, name))
                  .catch(fail),
            },
          }),
          name.endsWith(".png") && !shownInline.has(name) ? h("div", {}, artifactImage(job.id, name, signal, fail)) : null,
        ),
      ),
    ),
  );
}

const LOG_PAGE = 1000;
const LOG_KEEP = 5000; // lines kept on the page; the API keeps a bounded log per job anyway

// One line of a job's log: its time, level, logger and message (the API's shape; other shapes as JSON).
function logLine(line) {
  if (typeof line === "string") return h("div", { text: line });
  const at = line.time || line.ts || line.created_at;
  const level = String(line.level || "");
  const parts = [at ? new Date(at).toLocaleTimeString() : "", level.padEnd(7), line.logger ? `${line.logger}:` : "", line.message ?? JSON.stringify(line)];
  return h("div", { class: `log-line log-${level.toLowerCase()}`, text: parts.filter(Boolean).join(" ") });
}

// A parent's children by status: "2/5 succeeded, 1 running, 2 queued".
export function childrenText(children) {
  const shown = [`${children.succeeded}/${children.total} succeeded`];
  for (const name of ["running", "queued", "failed", "cancelled"]) if (children[name]) shown.push(`${children[name]} ${name}`);
  return shown.join(", ");
}

export async function renderJob(ctx, id) {
  const { signal } = ctx;
  let job = await foundJson(`/v1/jobs/${id}`, { signal });
  if (job === null) return notFound(ctx.root, "job", id, { href: "#/jobs", text: "← All jobs" });

  const status = h("span", { id: "job-status" });
  const actions = h("div", { class: "actions", id: "job-actions" });
  const info = h("div", { id: "job-info" });
  const waiting = h("p", { id: "job-waiting", class: "waiting", hidden: true });
  const errorHolder = h("div");
  const training = job.type === "train" ? trainingPanel() : null;
  const resultHolder = section("Result");
  resultHolder.id = "result";
  const explanationHolder = h("div");
  const childrenHolder = section("Children");
  childrenHolder.id = "job-children";
  childrenHolder.hidden = !job.children;
  const tuneHolder = h("div", { id: "tune-holder" });
  const artifactsHolder = h("div");
  const timelineHolder = section("Timeline");
  const logsBody = h("div", { id: "job-logs", class: "logs mono" });
  const logsHolder = section("Logs", logsBody);
  logsHolder.hidden = true;
  const specHolder = h("details", { class: "panel" }, h("summary", { text: "Spec" }), h("pre", { class: "mono", id: "spec-json", text: jsonText(job.spec) }));

  append(
    ctx.root,
    h("p", {}, h("a", { href: "#/jobs", text: "← All jobs" })),
    h("h1", {}, `${job.type} job `, h("span", { class: "mono", text: job.id }), " ", status),
    actions,
    info,
    waiting,
    errorHolder,
    training ? training.element : null,
    childrenHolder,
    tuneHolder,
    resultHolder,
    explanationHolder,
    artifactsHolder,
    timelineHolder,
    logsHolder,
    specHolder,
  );

  let progressReports = [];
  let finishedShown = false;
  let shownError = "null";

  // Drawn again only when what they offer changes: a re-read must not close a delete confirmation being answered.
  let actionsFor = null;
  function renderActions() {
    if (!ctx.canWrite) return replace(actions);
    const offered = `${job.status}|${job.cancel_requested}`;
    if (offered === actionsFor) return actions;
    actionsFor = offered;
    const buttons = [];
    if (!TERMINAL.has(job.status)) {
      buttons.push(
        h("button", {
          id: "cancel-job",
          type: "button",
          class: "danger",
          text: job.cancel_requested ? "Cancel requested" : "Cancel",
          disabled: job.cancel_requested,
          on: {
            click: async () => {
              try {
                apply(await postJson(`/v1/jobs/${job.id}/cancel`, {}));
              } catch (error) {
                ctx.fail(error);
              }
            },
          },
        }),
      );
    } else if (job.type !== "import") {
      if (job.status === "failed" || job.status === "cancelled") {
        buttons.push(
          h("button", {
            id: "retry-job",
            type: "button",
            text: "Retry",
            title: "submit this job's spec again as a new job linked to this one",
            on: {
              click: async () => {
                try {
                  const again = await postJson(`/v1/jobs/${job.id}/retry`, {});
                  ctx.navigate(`#/jobs/${again.id}`);
                } catch (error) {
                  ctx.fail(error);
                }
              },
            },
          }),
        );
      }
      buttons.push(
        h("button", {
          id: "resubmit-job",
          type: "button",
          text: "Resubmit",
          on: {
            click: async () => {
              const body = { type: job.type, spec: job.spec, priority: job.priority, max_attempts: job.max_attempts };
              if (job.timeout_s) body.timeout_s = job.timeout_s;
              try {
                const again = await postJson("/v1/jobs", body);
                ctx.navigate(`#/jobs/${again.id}`);
              } catch (error) {
                ctx.fail(error);
              }
            },
          },
        }),
      );
    }
    if (TERMINAL.has(job.status)) {
      buttons.push(
        confirmButton({
          id: "delete-job",
          label: "Delete",
          question: "Delete this job with its events, logs and artifacts? A model it trained stays.",
          fail: ctx.fail,
          onConfirm: async () => {
            await deleteJson(`/v1/jobs/${job.id}`);
            ctx.navigate("#/jobs");
          },
        }),
      );
    }
    return replace(actions, buttons);
  }

  // A parent's first children, each a link (the counts above say how many there are in all).
  // A tune's trials (its children, read with their specs and results) are drawn as a table and plots.
  let childrenShown = "";
  let childJobs = [];
  async function showChildren() {
    const counts = JSON.stringify(job.children);
    if (counts === childrenShown) return;
    childrenShown = counts;
    try {
      const params = { parent: job.id, limit: 50, ...(job.type === "tune" ? { fields: "all" } : {}) };
      const page = await getJson("/v1/jobs", { params, signal });
      childJobs = page.jobs;
      if (job.type === "tune") replace(tuneHolder, tuneView(job, childJobs));
      const rows = page.jobs.map((child) =>
        h("li", {}, h("a", { href: `#/jobs/${child.id}`, class: "mono child-link", title: child.id, text: shortId(child.id) }), " ", statusBadge(child.status), child.name ? ` ${child.name}` : ""),
      );
      replace(childrenHolder, h("h2", { text: "Children" }), h("ul", { id: "job-children-list" }, rows));
      childrenHolder.hidden = false;
    } catch (error) {
      ctx.fail(error);
    }
  }

  function apply(latest) {
    job = latest;
    replace(status, statusBadge(job.status));
    renderActions();
    replace(
      info,
      facts([
        ["created", when(job.created_at)],
        ["started", when(job.started_at)],
        ["finished", when(job.finished_at)],
        ["ran for", job.started_at ? duration(job.started_at, job.finished_at) : "—"],
        ["attempts", `${job.attempts} of ${job.max_attempts}`],
        ["priority", job.priority],
        ["name", h("span", { id: "job-name", text: job.name || "—" })],
        ["tags", h("span", { id: "job-tags" }, job.tags && job.tags.length ? tagChips(job.tags) : "—")],
        ...(job.parent_id
          ? [["parent", h("a", { href: `#/jobs/${job.parent_id}`, id: "job-parent", class: "mono", title: job.parent_id, text: shortId(job.parent_id) })]]
          : []),
        ...(job.children ? [["children", h("span", { id: "job-children-counts", text: childrenText(job.children) })]] : []),
        ...(job.retry_of
          ? [["retry of", h("a", { href: `#/jobs/${job.retry_of}`, id: "job-retry-of", class: "mono", title: job.retry_of, text: shortId(job.retry_of) })]]
          : []),
        ...(job.max_retries || job.retry_number ? [["retries", `${job.retry_number || 0} of ${job.max_retries || 0} automatic`]] : []),
        ...(job.callback_url ? [["webhook", h("span", { class: "mono", text: job.callback_url })]] : []),
        ...inputsOf(job),
      ]),
    );
    // Why it waits (no live worker serves its queue) says more than a position no worker will reach.
    const waitingText = job.waiting_reason || queueOutlook(job);
    waiting.hidden = !(waitingText && job.status === "queued");
    waiting.textContent = waitingText || "";
    if (job.children) showChildren();
    const errorText = JSON.stringify(job.error);
    if (errorText !== shownError) {
      shownError = errorText;
      replace(errorHolder, job.error ? section("Error", errorBlock(job.error)) : null);
    }
    if (training) {
      // A job that ended before its first epoch has nothing to chart.
      training.element.hidden = TERMINAL.has(job.status) && job.status !== "succeeded" && !progressReports.length && !(job.progress && job.progress.epoch);
      const fromHistory = job.status === "succeeded" && job.result && job.result.history;
      const curves = fromHistory ? seriesFromHistory(job.result.history) : seriesFromProgress([...progressReports, job.progress]);
      training.update(job, { ...curves, total: (job.progress && job.progress.epochs) || job.spec.epochs });
    }
    resultHolder.hidden = !job.result;
    if (job.result && !finishedShown && TERMINAL.has(job.status)) {
      finishedShown = true;
      replace(resultHolder, h("h2", { text: "Result" }), resultView(job));
      if (job.type === "tune") replace(tuneHolder, tuneView(job, childJobs));
      const explanation = job.type === "explain" ? explanationView(job, signal, ctx.fail) : null;
      replace(explanationHolder, explanation);
      const inline = new Set(explanation ? job.result.artifacts.filter((n) => /^(heatmap|spectrogram)_\d+\.png$/.test(n)) : []);
      replace(artifactsHolder, artifactsView(job, signal, ctx.fail, inline));
    }
  }

  async function refreshEvents() {
    const answer = await getJson(`/v1/jobs/${id}/events`, { signal });
    progressReports = answer.events.filter((e) => e.kind === "progress").map((e) => e.data);
    replace(timelineHolder, h("h2", { text: "Timeline" }), timeline(answer.events));
  }

  // New log lines since the last look, page by page (`after` is the last line's seq).
  let logAfter = 0;
  async function refreshLogs() {
    for (let page = 0; page < 20; page += 1) {
      const answer = await optionalJson(`/v1/jobs/${id}/logs`, { params: { after: logAfter, limit: LOG_PAGE }, signal });
      if (answer === null) {
        logsHolder.hidden = true;
        return;
      }
      logsHolder.hidden = false;
      const lines = Array.isArray(answer.lines) ? answer.lines : [];
      if (lines.length) {
        if (!logAfter) replace(logsBody);
        append(logsBody, lines.map(logLine));
        while (logsBody.childElementCount > LOG_KEEP) logsBody.firstElementChild.remove();
        logsBody.scrollTop = logsBody.scrollHeight;
      } else if (!logsBody.childElementCount) {
        append(logsBody, h("div", { class: "muted", text: "No log lines yet." }));
      }
      if (typeof answer.next_after !== "number" || answer.next_after === logAfter) return;
      logAfter = answer.next_after;
      if (lines.length < LOG_PAGE) return;
    }
  }

  // The events are re-read on a state change and at most every EVENTS_EVERY_MS; between two reads the
  // latest progress of each answer is added locally (a long training reports thousands of epochs).
  let eventsAt = 0;
  let eventsStatus = null;
  async function refresh(latest) {
    if (latest.status !== eventsStatus || Date.now() - eventsAt >= EVENTS_EVERY_MS) {
      await refreshEvents().catch(ctx.fail);
      eventsAt = Date.now();
      eventsStatus = latest.status;
    } else if (latest.progress && typeof latest.progress.epoch === "number") {
      progressReports.push(latest.progress);
    }
    apply(latest);
    refreshLogs().catch(() => {
      logsHolder.hidden = true;
    });
  }

  await refresh(job);
  // The stream sends the job's own changes; a queued job's place in the queue and the reason it waits move
  // without one (other jobs start, the last worker goes away): while it is queued, read it now and then too.
  (async () => {
    while (!signal.aborted && job.status === "queued") {
      await sleep(QUEUED_READ_MS, signal);
      if (signal.aborted || job.status !== "queued") return;
      await getJson(`/v1/jobs/${id}`, { signal }).then(refresh).catch(() => {});
    }
  })();
  let plainUntil = 0; // while the API refuses another stream (429 too_many_waits), read every PLAIN_POLL_MS
  while (!signal.aborted && !TERMINAL.has(job.status)) {
    try {
      if (Date.now() >= plainUntil) {
        // The job now and at each change, until it has finished (or the server ends the stream: follow again).
        await followEvents(`/v1/jobs/${id}`, refresh, { signal });
        continue;
      }
      await sleep(PLAIN_POLL_MS, signal);
      if (signal.aborted) return;
      await refresh(await getJson(`/v1/jobs/${id}`, { signal }));
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status === 429) {
        plainUntil = Date.now() + PLAIN_FOR_MS;
        continue;
      }
      ctx.fail(error);
      await sleep(RETRY_MS, signal);
    }
  }
  // One last look: the final events and log lines may land just after the state change.
  if (!signal.aborted) await request("GET", `/v1/jobs/${id}`, { signal }).then((r) => r.json()).then(refresh).catch(() => {});
}
