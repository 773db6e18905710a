// The trial page: its learning curve (training loss and validation accuracy per epoch).
"use strict";
(() => {
  const trial = PNAS.data("trial-data");
  const el = document.getElementById("curve-plot");
  if (!el || !trial.curve.length) return;
  const traces = [];
  for (const phase of ["train", "finetune"]) {
    const epochs = trial.curve.filter(e => e.phase === phase);
    if (!epochs.length) continue;
    const dash = phase === "finetune" ? "dot" : "solid";
    traces.push({ type: "scatter", mode: "lines+markers", name: `training loss (${phase})`,
      x: epochs.map(e => e.epoch), y: epochs.map(e => e.train_loss), line: { dash }, yaxis: "y" });
    traces.push({ type: "scatter", mode: "lines+markers", name: `validation accuracy (${phase})`,
      x: epochs.map(e => e.epoch), y: epochs.map(e => e.val_accuracy), line: { dash }, yaxis: "y2" });
  }
  Plotly.newPlot(el, traces, {
    margin: { l: 60, r: 60, t: 10, b: 50 }, legend: { orientation: "h", y: -0.25 },
    xaxis: PNAS.countAxis("epoch", Math.max(...trial.curve.map(e => e.epoch))),
    yaxis: { title: { text: "training loss" } },
    yaxis2: { title: { text: "validation accuracy" }, overlaying: "y", side: "right", range: [0, 1] },
  }, { responsive: true, displaylogo: false });
})();
