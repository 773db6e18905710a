// The jobs page: re-reads GET /api/v1/jobs every 2 s while any listed job is queued or running.
"use strict";
(() => {
  let page = PNAS.data("jobs-data");
  const status = new URLSearchParams(location.search).get("status") || "";
  const tbody = document.querySelector("#jobs tbody");
  const row = (job) => `<tr data-job="${PNAS.text(job.id)}">
    <td><a href="/jobs/${encodeURIComponent(job.id)}">${PNAS.text(job.id)}</a></td>
    <td><span class="status s-${PNAS.text(job.status)}">${PNAS.text(PNAS.statusText(job))}</span></td>
    <td class="num">${PNAS.text(PNAS.progress(job))}</td><td class="num">${job.front_size}</td>
    <td class="num">${PNAS.acc(job.hypervolume)}</td><td>${PNAS.text(job.dataset)}</td>
    <td>${PNAS.when(job.created_at)}</td><td>${PNAS.when(job.started_at)}</td><td>${PNAS.when(job.finished_at)}</td></tr>`;
  let shown = page.data.length;
  const anyActive = () => page.data.some(job => PNAS.active(job.status));
  const live = document.getElementById("live");
  const refresh = async () => {
    const query = new URLSearchParams({ limit: String(Math.min(100, Math.max(shown, 1))) });
    if (status) query.set("status", status);
    page = await PNAS.get(`/api/v1/jobs?${query}`);
    if (page.data.length) tbody.innerHTML = page.data.map(row).join("");
    live.hidden = !anyActive();
  };
  live.hidden = !anyActive();
  PNAS.poll(refresh, 2000, () => true);
  const more = document.getElementById("more");
  if (more) more.addEventListener("click", async () => {
    const query = new URLSearchParams({ limit: "50", cursor: more.dataset.cursor });
    if (status) query.set("status", status);
    const older = await PNAS.get(`/api/v1/jobs?${query}`);
    tbody.insertAdjacentHTML("beforeend", older.data.map(row).join(""));
    shown += older.data.length;
    if (older.next_cursor) more.dataset.cursor = older.next_cursor; else more.remove();
  });
})();
