// A tune's trials: a table (params, metric, state, epochs run; the best trial's row marked) and, for each searched
// parameter, a small SVG plot of the metric against that parameter, drawn here (no library, no CDN).

import { h, number, section, shortId } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 300;
const HEIGHT = 190;
const MARGIN = { left: 56, right: 12, top: 12, bottom: 40 };
const LIVE = { queued: "queued", running: "running", failed: "failed", cancelled: "cancelled" };

// Minimize a loss or an error, else maximize (the API's own rule when the spec names no direction).
export function directionOf(job) {
  const result = job.result || {};
  const spec = job.spec || {};
  if (result.direction || spec.direction) return result.direction || spec.direction;
  const metric = spec.metric || "val_loss";
  return ["loss", "error", "rmse", "mae"].some((word) => metric.includes(word)) ? "minimize" : "maximize";
}

// The trials table's rows: the tune's result once it has ended, else read from its children (trial jobs) so far.
export function trialRows(job, children) {
  if (job.result && Array.isArray(job.result.trials)) return job.result.trials;
  const metric = (job.spec && job.spec.metric) || "val_loss";
  return (children || [])
    .filter((child) => child.spec && child.spec.trial)
    .map((child) => {
      const result = child.result || {};
      const progress = child.progress || {};
      const figure = (result.metrics || {})[metric] ?? progress[metric];
      const state = child.status === "succeeded" ? (result.pruned ? "pruned" : "complete") : LIVE[child.status] || child.status;
      return {
        number: child.spec.trial.number,
        job_id: child.id,
        params: child.spec.trial.params || {},
        value: typeof figure === "number" ? figure : null,
        state,
        epochs_run: result.epochs_run ?? (typeof progress.epoch === "number" ? progress.epoch : null),
      };
    })
    .sort((a, b) => a.number - b.number);
}

// The best complete trial's number: the result's, else the best value so far.
export function bestNumber(job, rows) {
  if (job.result && typeof job.result.best_trial === "number") return job.result.best_trial;
  const complete = rows.filter((row) => row.state === "complete" && typeof row.value === "number");
  if (!complete.length) return null;
  const better = directionOf(job) === "minimize" ? (a, b) => a.value < b.value : (a, b) => a.value > b.value;
  return complete.reduce((best, row) => (better(row, best) ? row : best)).number;
}

function svg(tag, attrs = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = String(text);
  return element;
}

function shown(value) {
  return typeof value === "number" ? number(value) : String(value);
}

// Where each value of one parameter lies across the plot (0 to 1): a category by its place among the choices, a
// number on a linear or log scale between the smallest and largest value tried (or the range searched).
function xScale(param, values) {
  if (param && param.type === "categorical") {
    const choices = (param.choices || []).map(String);
    for (const value of values) if (!choices.includes(String(value))) choices.push(String(value));
    const at = (value) => (choices.indexOf(String(value)) + 0.5) / choices.length;
    return { at, ticks: choices.map((choice) => [at(choice), choice]) };
  }
  const numbers = values.filter((value) => typeof value === "number");
  const log = Boolean(param && param.log);
  let low = Math.min(...numbers, ...(param && typeof param.low === "number" ? [param.low] : []));
  let high = Math.max(...numbers, ...(param && typeof param.high === "number" ? [param.high] : []));
  if (!Number.isFinite(low) || !Number.isFinite(high)) [low, high] = [0, 1];
  const f = log && low > 0 ? Math.log10 : (v) => v;
  const span = f(high) - f(low) || 1;
  const at = (value) => (typeof value === "number" ? 0.04 + (0.92 * (f(value) - f(low))) / span : 0.5);
  return { at, ticks: [[at(low), shown(low)], [at(high), shown(high)]] };
}

// One plot: the metric (up) against the parameter `name` (across), one dot per trial with a value, the best one
// marked; each dot's title says the trial, its value and its state.
export function paramPlot(name, param, rows, best, metric) {
  const points = rows.filter((row) => typeof row.value === "number" && row.params && name in row.params);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const root = svg("svg", { class: "trial-plot", "data-param": name, viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, role: "img" });
  root.append(svg("title", {}, `${metric} against ${name}`));
  root.append(svg("rect", { class: "plot-frame", x: MARGIN.left, y: MARGIN.top, width: plotW, height: plotH }));
  const x = xScale(param, points.map((row) => row.params[name]));
  const values = points.map((row) => row.value);
  const low = values.length ? Math.min(...values) : 0;
  const high = values.length ? Math.max(...values) : 1;
  const span = high - low || Math.abs(high) || 1;
  const y = (value) => MARGIN.top + plotH - (0.06 + (0.88 * (value - low)) / span) * plotH;
  for (const [at, label] of x.ticks) {
    root.append(svg("text", { class: "plot-tick", x: MARGIN.left + at * plotW, y: MARGIN.top + plotH + 14, "text-anchor": "middle" }, label));
  }
  for (const value of values.length ? [low, high] : []) {
    root.append(svg("text", { class: "plot-tick", x: MARGIN.left - 4, y: y(value) + 4, "text-anchor": "end" }, number(value)));
  }
  root.append(svg("text", { class: "plot-label", x: MARGIN.left + plotW / 2, y: HEIGHT - 6, "text-anchor": "middle" }, name));
  root.append(svg("text", { class: "plot-label", x: 12, y: MARGIN.top + plotH / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${MARGIN.top + plotH / 2})` }, metric));
  for (const row of points) {
    const isBest = row.number === best;
    const dot = svg("circle", {
      class: `trial-point state-${row.state}${isBest ? " best" : ""}`,
      cx: MARGIN.left + x.at(row.params[name]) * plotW,
      cy: y(row.value),
      r: isBest ? 6 : 4,
      "data-trial": row.number,
    });
    dot.append(svg("title", {}, `trial ${row.number}: ${metric} ${number(row.value)} (${row.state})`));
    root.append(dot);
  }
  return root;
}

// The "Trials" section: what the best trial found, the table, and one plot per searched parameter.
export function tuneView(job, children) {
  const rows = trialRows(job, children);
  const best = bestNumber(job, rows);
  const space = (job.spec && job.spec.search_space) || {};
  const names = [...new Set([...Object.keys(space), ...rows.flatMap((row) => Object.keys(row.params || {}))])];
  const metric = (job.result && job.result.metric) || (job.spec && job.spec.metric) || "val_loss";
  const header = h("tr", {}, [h("th", { text: "trial" }), ...names.map((name) => h("th", { text: name })), h("th", { text: metric }), h("th", { text: "state" }), h("th", { text: "epochs run" })]);
  const body = rows.map((row) =>
    h(
      "tr",
      { class: row.number === best ? "best-trial" : null, dataset: { trial: String(row.number), state: row.state } },
      h("td", {}, row.job_id ? h("a", { href: `#/jobs/${row.job_id}`, class: "mono", title: row.job_id, text: `${row.number} · ${shortId(row.job_id)}` }) : String(row.number)),
      names.map((name) => h("td", { text: row.params && name in row.params ? shown(row.params[name]) : "—" })),
      h("td", { class: "trial-value", text: typeof row.value === "number" ? number(row.value) : "—" }),
      h("td", { class: `trial-state state-${row.state}`, text: row.state }),
      h("td", { text: row.epochs_run ?? "—" }),
    ),
  );
  const bestRow = rows.find((row) => row.number === best);
  const summary = bestRow
    ? `best: trial ${best}, ${metric} ${number(bestRow.value)} (${directionOf(job)}d) at ${names.map((n) => `${n} = ${shown(bestRow.params[n])}`).join(", ")}`
    : "no trial has completed yet";
  const importances = Object.entries((job.result && job.result.importances) || {}).sort((a, b) => b[1] - a[1]);
  const element = section(
    "Trials",
    h("p", { id: "tune-best", text: summary }),
    importances.length ? h("p", { id: "tune-importances", text: `importance: ${importances.map(([n, v]) => `${n} ${number(v)}`).join(", ")}` }) : null,
    rows.length ? h("table", { class: "grid", id: "trials-table" }, h("thead", {}, header), h("tbody", {}, body)) : h("p", { class: "empty", text: "No trial has started yet." }),
    h("div", { class: "trial-plots", id: "trial-plots" }, names.map((name) => h("figure", { class: "trial-plot-box" }, paramPlot(name, space[name], rows, best, metric), h("figcaption", { text: `${metric} against ${name}` })))),
  );
  element.id = "tune-trials";
  return element;
}
