// The compare page: each selected job's front (GET /pareto) as its own staircase.
"use strict";
(async () => {
  const jobs = PNAS.data("compare-data");
  const el = document.getElementById("compare-plot");
  if (!jobs.length) { el.textContent = "Pick two or more jobs above."; return; }
  const colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#393b79", "#637939"];
  const fronts = await Promise.all(jobs.map(job =>
    PNAS.get(`/api/v1/jobs/${encodeURIComponent(job.id)}/pareto?history=none`)));
  const traces = fronts.map((pareto, i) => FRONT.frontTrace(pareto.members, "params", {
    name: `${jobs[i].id} (${jobs[i].dataset}) · HV ${PNAS.acc(pareto.hypervolume)}`,
    line: { shape: "hv", width: 2, color: colours[i % colours.length] },
    marker: { size: 8, color: colours[i % colours.length] },
  }));
  Plotly.newPlot(el, traces, FRONT.layout("params", { legend: { orientation: "v", x: 1.02, y: 1 },
    margin: { l: 60, r: 20, t: 10, b: 50 } }), FRONT.config);
  el.on("plotly_click", (event) => {
    const p = event.points && event.points[0];
    if (p) location.href = `/jobs/${encodeURIComponent(jobs[p.curveNumber].id)}/trials/${p.customdata}`;
  });
})();
