// Loss and metric curves per epoch, drawn with the vendored Chart.js (window.Chart, loaded before this module).

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

// The figures of each epoch, {name: [value per epoch]}, from progress events' data or a result's history.
export function seriesFromProgress(reports) {
  const series = {};
  const epochs = [];
  const index = new Map();
  for (const report of reports) {
    if (!report || typeof report.epoch !== "number") continue;
    if (!index.has(report.epoch)) index.set(report.epoch, epochs.push(report.epoch) - 1);
    const at = index.get(report.epoch);
    for (const [name, value] of Object.entries(report)) {
      if (name === "epoch" || name === "epochs" || typeof value !== "number") continue;
      (series[name] ||= [])[at] = value;
    }
  }
  return { epochs, series };
}

export function seriesFromHistory(history) {
  const series = {};
  let length = 0;
  for (const [name, values] of Object.entries(history || {})) {
    if (!Array.isArray(values)) continue;
    series[name] = values.map((v) => (typeof v === "number" ? v : null));
    length = Math.max(length, values.length);
  }
  return { epochs: Array.from({ length }, (_, i) => i + 1), series };
}

// One chart on `canvas` of the series whose names `accept` picks; update() redraws with new figures.
export function curveChart(canvas, { title, accept }) {
  const ChartJs = window.Chart;
  if (!ChartJs) return { update() {} };
  const chart = new ChartJs(canvas, {
    type: "line",
    data: { labels: [], datasets: [] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      plugins: {
        title: { display: true, text: title },
        legend: { position: "bottom", labels: { usePointStyle: true, pointStyle: "line" } },
      },
      scales: { x: { title: { display: true, text: "epoch" } }, y: { beginAtZero: false } },
    },
  });
  return {
    // `total`, when known, lays out the x axis for every epoch to come, so the curves grow across it.
    update({ epochs, series, total }) {
      const names = Object.keys(series).filter(accept).sort();
      const last = Math.max(total || 0, epochs.length ? epochs[epochs.length - 1] : 0);
      const labels = Array.from({ length: last }, (_, i) => i + 1);
      const at = new Map(epochs.map((epoch, i) => [epoch, i]));
      chart.data.labels = labels;
      chart.data.datasets = names.map((name, i) => ({
        label: name,
        data: labels.map((epoch) => (at.has(epoch) ? (series[name][at.get(epoch)] ?? null) : null)),
        borderColor: PALETTE[i % PALETTE.length],
        backgroundColor: PALETTE[i % PALETTE.length],
        borderDash: name.startsWith("val_") ? [6, 3] : [],
        pointRadius: epochs.length > 60 ? 0 : 2,
        spanGaps: true,
      }));
      chart.update("none");
      canvas.dataset.points = String(epochs.length);
      canvas.dataset.series = names.join(",");
    },
  };
}
