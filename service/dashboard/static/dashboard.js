// Helpers shared by the dashboard's pages (no build step, no framework).
"use strict";
const PNAS = {
  data(id) { return JSON.parse(document.getElementById(id).textContent); },
  async get(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    return response.json();
  },
  count(v) { return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"); },
  acc(v) { return v === null || v === undefined ? "–" : Number(v).toFixed(4); },
  when(v) { return v ? v.replace("T", " ").replace(/\.\d+/, "").replace(/(Z|\+00:00)$/, " UTC") : "–"; },
  // Escaped for element text and for attribute values in double or single quotes.
  text(v) {
    const d = document.createElement("div");
    d.textContent = v === null || v === undefined ? "" : String(v);
    return d.innerHTML.replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  },
  kinds(spec) {
    if (!spec) return "–";
    const parts = (spec.convs || []).map(c => `conv:${c.kind}×${c.multiplier}`);
    for (const layer of spec.layers || []) parts.push(`${layer.kind}×${layer.multiplier}`);
    parts.push(`classifier:${(spec.classifier || {}).kind}`);
    return parts.join(" ");
  },
  // An axis of whole numbers (trials, epochs) up to n: ticks 1, 2 or 5 x 10^k apart, about eight
  // of them, never between two integers.
  countAxis(title, n) {
    const raw = Math.max(1, Math.ceil(n / 8)), power = 10 ** Math.floor(Math.log10(raw));
    const dtick = [1, 2, 5, 10].map(m => m * power).find(step => step >= raw);
    return { title: { text: title }, tickmode: "linear", tick0: 0, dtick, tickformat: ",d" };
  },
  active(status) { return status === "queued" || status === "running"; },
  progress(job) {
    const t = job.trials;
    return `${t.complete} complete · ${t.running} running · ${t.failed} failed of ${job.n_trials}`;
  },
  statusText(job) {
    return job.status + (job.cancel_requested && job.status === "running" ? " (cancelling)" : "");
  },
  // Poll fn every ms while keepGoing() is true and the page is visible.
  poll(fn, ms, keepGoing) {
    const tick = async () => {
      if (!keepGoing()) return;
      if (!document.hidden) { try { await fn(); } catch (e) { console.warn(e); } }
      if (keepGoing()) setTimeout(tick, ms);
    };
    setTimeout(tick, ms);
  },
};
