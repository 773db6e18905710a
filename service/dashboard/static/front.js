// Plotly traces of Pareto fronts: a staircase of the front members and the cloud of the others.
"use strict";
const FRONT = {
  hover(m) {
    return `trial ${m.trial_number}<br>layers: ${PNAS.kinds(m.spec)}<br>` +
      `val acc ${PNAS.acc(m.val_accuracy)} · test acc ${PNAS.acc(m.test_accuracy)}<br>` +
      `params ${PNAS.count(m.params)} · MACs ${PNAS.count(m.macs)}`;
  },
  // The front as a staircase (members sorted by the x objective, stepped "hv").
  frontTrace(members, xkey, options = {}) {
    const sorted = members.filter(m => m[xkey] !== null).slice()
      .sort((a, b) => a[xkey] - b[xkey] || a.trial_number - b.trial_number);
    return Object.assign({
      type: "scatter", mode: "lines+markers", name: "Pareto front",
      x: sorted.map(m => m[xkey]), y: sorted.map(m => m.val_accuracy),
      customdata: sorted.map(m => m.trial_number),
      text: sorted.map(m => FRONT.hover(m)), hoverinfo: "text",
      line: { shape: "hv", width: 2 }, marker: { size: 9 },
    }, options);
  },
  // The other trials of /points: dominated (faded), infeasible and stopped marked apart.
  cloudTraces(points, frontNumbers, xkey) {
    const groups = new Map();
    const label = (i) => {
      const state = points.state[i];
      if (state === "complete") return points.feasible[i] === false ? "infeasible (over max_params)" : "dominated";
      return state.replaceAll("_", " ");  // stopped, stopped early, duplicate, ...
    };
    for (let i = 0; i < points.number.length; i++) {
      if (frontNumbers.has(points.number[i]) || points[xkey][i] === null) continue;
      const name = label(i);
      if (!groups.has(name)) groups.set(name, { x: [], y: [], n: [], text: [] });
      const g = groups.get(name);
      g.x.push(points[xkey][i]); g.y.push(points.val_accuracy[i]); g.n.push(points.number[i]);
      g.text.push(`trial ${points.number[i]} (${name})<br>val acc ${PNAS.acc(points.val_accuracy[i])} · ` +
        `test acc ${PNAS.acc(points.test_accuracy[i])}<br>params ${PNAS.count(points.params[i])} · MACs ${PNAS.count(points.macs[i])}`);
    }
    const style = {
      "dominated": { color: "rgba(90,110,140,0.25)", symbol: "circle", size: 6 },
      "infeasible (over max_params)": { color: "rgba(200,60,60,0.6)", symbol: "x", size: 7 },
      "stopped": { color: "rgba(230,140,20,0.8)", symbol: "circle-open", size: 8 },
      "stopped early": { color: "rgba(150,90,20,0.7)", symbol: "triangle-down-open", size: 8 },
      "duplicate": { color: "rgba(90,110,140,0.5)", symbol: "square-open", size: 6 },
    };
    return [...groups.entries()].map(([name, g]) => ({
      type: "scattergl", mode: "markers", name, x: g.x, y: g.y, customdata: g.n, text: g.text,
      hoverinfo: "text", marker: style[name] || { color: "rgba(120,80,160,0.7)", symbol: "diamond-open", size: 8 },
    }));
  },
  layout(xkey, extra = {}) {
    return Object.assign({
      margin: { l: 60, r: 20, t: 10, b: 50 }, hovermode: "closest", showlegend: true,
      legend: { orientation: "h", y: -0.2 },
      xaxis: { type: "log", title: { text: xkey === "macs" ? "MACs per sample (log)" : "parameters (log)" } },
      yaxis: { title: { text: "validation accuracy" } },
    }, extra);
  },
  config: { responsive: true, displaylogo: false },
};
