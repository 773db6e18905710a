// The jobs page: re-reads GET /api/v1/jobs every 2 s (new jobs appear, states move on); "Older
// jobs" appends the next keyset page.
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
  const more = document.getElementById("more");
  const jobs = async (limit, cursor) => {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    if (status) query.set("status", status);
    return PNAS.get(`/api/v1/jobs?${query}`);
  };
  // One at a time: a refresh and an "Older jobs" click both rewrite the table and the cursor.
  let queue = Promise.resolve();
  const serially = (fn) => { const run = queue.then(fn); queue = run.catch(() => {}); return run; };
  // Read again as many rows as are shown, from the newest, in pages of at most 100 (the API's
  // limit), and move the "Older jobs" cursor to the end of them: a job created meanwhile pushes
  // the last one to the next page instead of out of sight.
  const refresh = async () => {
    const rows = [];
    let cursor = null;
    do {
      const got = await jobs(Math.min(100, Math.max(shown - rows.length, 1)), cursor);
      rows.push(...got.data);
      cursor = got.next_cursor;
    } while (cursor && rows.length < shown);
    page = { data: rows };
    if (rows.length) tbody.innerHTML = rows.map(row).join("");
    if (more) { more.hidden = !cursor; if (cursor) more.dataset.cursor = cursor; }
    live.hidden = !anyActive();
  };
  live.hidden = !anyActive();
  PNAS.poll(() => serially(refresh), 2000, () => true);
  if (more) more.addEventListener("click", () => serially(async () => {
    const older = await jobs(50, more.dataset.cursor);
    tbody.insertAdjacentHTML("beforeend", older.data.map(row).join(""));
    page = { data: [...page.data, ...older.data] };
    shown += older.data.length;
    more.hidden = !older.next_cursor;
    if (older.next_cursor) more.dataset.cursor = older.next_cursor;
  }));
})();
