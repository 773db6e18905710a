// The job page: front + cloud (GET /pareto, /points), hypervolume history, paged trial table
// (GET /trials), live while the job runs (GET /jobs/{id}).
"use strict";
(() => {
  let job = PNAS.data("job-data");
  let pareto = PNAS.data("pareto-data");
  let points = null;
  let xkey = "params";
  const api = `/api/v1/jobs/${encodeURIComponent(job.id)}`;
  const frontPlot = document.getElementById("front-plot");
  const hvPlot = document.getElementById("hv-plot");
  const note = document.getElementById("cloud-note");
  const macsRadio = document.getElementById("x-macs");

  const drawFront = () => {
    const numbers = new Set(pareto.members.map(m => m.trial_number));
    const traces = points ? FRONT.cloudTraces(points, numbers, xkey) : [];
    traces.push(FRONT.frontTrace(pareto.members, xkey));
    Plotly.react(frontPlot, traces, FRONT.layout(xkey), FRONT.config);
  };
  const drawHistory = () => {
    const h = pareto.history.filter(p => p.hypervolume !== null);
    const x = h.map(p => p.n_complete), y = h.map(p => p.hypervolume);
    if (h.length && x[x.length - 1] < job.trials.complete) { x.push(job.trials.complete); y.push(y[y.length - 1]); }
    Plotly.react(hvPlot, [{ type: "scatter", mode: "lines", x, y, line: { shape: "hv" }, name: "hypervolume",
      hovertemplate: "after %{x} trials: %{y:.4f}<extra></extra>" }],
      { margin: { l: 60, r: 10, t: 10, b: 45 }, xaxis: PNAS.countAxis("complete trials", x.length ? x[x.length - 1] : 1),
        yaxis: { title: { text: "hypervolume" } }, showlegend: false }, FRONT.config);
  };
  const loadPoints = async () => {
    points = await PNAS.get(`${api}/points`);
    const withMacs = points.macs.some(v => v !== null) || pareto.members.some(m => m.macs !== null);
    macsRadio.disabled = !withMacs;
    note.textContent = points.stride > 1
      ? `${PNAS.count(points.number.length)} of ${PNAS.count(points.total)} trials shown (every ${points.stride}th)`
      : `${PNAS.count(points.total)} trials`;
    drawFront();
  };
  drawFront();
  drawHistory();
  frontPlot.on("plotly_click", (event) => {
    const n = event.points && event.points[0] && event.points[0].customdata;
    if (n !== undefined && n !== null) location.href = `/jobs/${encodeURIComponent(job.id)}/trials/${n}`;
  });
  document.querySelectorAll("input[name=xaxis]").forEach(radio => radio.addEventListener("change", () => {
    xkey = radio.value; drawFront();
  }));
  loadPoints().catch(e => { note.textContent = `could not load the other trials: ${e.message}`; });

  // The trial table: pages of GET /trials (its cursors), sortable by the headers.
  const tbody = document.querySelector("#trials tbody");
  const prev = document.getElementById("prev"), next = document.getElementById("next");
  let sort = "number", cursors = [null], pageIndex = 0, nextCursor = null;
  let loads = 0;  // the newest load owns the table: an older answer arriving late is dropped
  const loadTrials = async () => {
    const mine = ++loads;
    prev.disabled = next.disabled = true;  // no second click on a page still loading
    const query = new URLSearchParams({ sort, limit: "25" });
    if (cursors[pageIndex]) query.set("cursor", cursors[pageIndex]);
    const pageData = await PNAS.get(`${api}/trials?${query}`);
    if (mine !== loads) return;
    const front = new Set(pareto.members.map(m => m.trial_number));
    tbody.innerHTML = pageData.data.map(t => `<tr>
      <td><a href="/jobs/${encodeURIComponent(job.id)}/trials/${t.number}">${t.number}</a></td>
      <td><span class="status s-${PNAS.text(t.state)}">${PNAS.text(t.state)}${t.feasible === false ? " · infeasible" : ""}</span></td>
      <td class="kinds">${PNAS.text(PNAS.kinds(t.spec))}</td>
      <td class="num">${PNAS.acc(t.val_accuracy)}</td><td class="num">${PNAS.acc(t.test_accuracy)}</td>
      <td class="num">${PNAS.count(t.params)}</td><td class="num">${PNAS.count(t.macs)}</td>
      <td class="num">${t.train_seconds === null ? "–" : t.train_seconds.toFixed(1)}</td>
      <td>${front.has(t.number) ? "★" : ""}</td></tr>`).join("") ||
      `<tr class="empty"><td colspan="9">No trials yet.</td></tr>`;
    nextCursor = pageData.next_cursor;
    prev.disabled = pageIndex === 0; next.disabled = !nextCursor;
    document.getElementById("trials-note").textContent = `page ${pageIndex + 1}, sorted by ${sort}`;
  };
  next.addEventListener("click", () => {
    if (!nextCursor) return;
    cursors[pageIndex + 1] = nextCursor; nextCursor = null; pageIndex += 1; loadTrials();
  });
  prev.addEventListener("click", () => { pageIndex = Math.max(0, pageIndex - 1); loadTrials(); });
  document.querySelectorAll("#trials th[data-sort]").forEach(th => th.addEventListener("click", () => {
    const key = th.dataset.sort;
    sort = sort === key ? `-${key}` : (sort === `-${key}` ? key : (key === "number" ? key : `-${key}`));
    document.querySelectorAll("#trials th").forEach(h => h.classList.remove("sorted"));
    th.classList.add("sorted");
    cursors = [null]; pageIndex = 0; loadTrials();
  }));
  loadTrials();

  // Live: while the job is queued or running, follow its counters; new trials refetch the rest.
  const summary = document.getElementById("job-summary");
  PNAS.poll(async () => {
    const fresh = await PNAS.get(api);
    const changed = fresh.trials.complete !== job.trials.complete || fresh.status !== job.status;
    job = fresh;
    document.getElementById("job-status").textContent = PNAS.statusText(job);
    document.getElementById("job-status").className = `status s-${job.status}`;
    summary.querySelector("[data-field=progress]").textContent = PNAS.progress(job);
    summary.querySelector("[data-field=front]").textContent = job.front_size;
    summary.querySelector("[data-field=hv]").textContent = PNAS.acc(job.hypervolume);
    if (!PNAS.active(job.status)) { const form = document.getElementById("cancel-form"); if (form) form.remove(); }
    if (changed) {
      pareto = await PNAS.get(`${api}/pareto?history=changes`);
      drawHistory();
      await loadPoints();
      if (pageIndex === 0) await loadTrials();
    }
  }, 2000, () => PNAS.active(job.status));
})();
