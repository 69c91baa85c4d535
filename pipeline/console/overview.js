// Overview: events per minute by source and by severity, top hosts, latest alerts, sinks, ingest rates and epoch lag; refreshed every 10 s.

import { session, get, call, query, el, clear, time, parseMetrics } from "./api.js";
import { lineChart } from "./charts.js";

const REFRESH_MS = 10000;
let timer = null;
let previous = null; // the last metrics sample: {at, accepted: {source: count}}

// The series' name is its key's value (`{"source_kind": "hec"}`; null: events without one).
function seriesOf(body) {
  return body.series.map((series) => ({
    name: Object.values(series.key)[0] ?? "(none)",
    points: series.points.map((point) => ({ time: Date.parse(point.time), count: point.count })),
  })).sort((a, b) => b.points.reduce((s, p) => s + p.count, 0) - a.points.reduce((s, p) => s + p.count, 0));
}

async function charts() {
  for (const [by, id, label] of [["source", "chart-source", "Events per minute by source"], ["severity", "chart-severity", "Events per minute by severity"]]) {
    // The last hour (the API's default range).
    const body = await get(`/api/v1/dashboards/timeseries${query({ by, bucket: "1m" })}`);
    lineChart(document.getElementById(id), label, seriesOf(body), Date.parse(body.from), Date.parse(body.to));
  }
}

async function topHosts() {
  const body = await get(`/api/v1/dashboards/top${query({ field: "host", n: 10 })}`);
  const rows = body.entries.map((entry) => el("tr", {}, el("td", {}, entry.value), el("td", {}, entry.count)));
  clear(document.querySelector("#top-hosts tbody"), rows.length ? rows : el("tr", {}, el("td", { colspan: 2, class: "muted" }, "No events in the last hour.")));
}

async function latestAlerts() {
  const list = document.getElementById("latest-alerts");
  const alerts = await get(`/api/v1/alerts${query({ limit: 8 })}`);
  clear(list, alerts.length ? alerts.map((alert) => el("li", {},
    el("a", { href: `#alerts/${alert.id}` }, alert.title), " ",
    el("span", { class: `level-${alert.level}` }, alert.level ?? ""), " ",
    el("span", { class: "muted" }, time(alert.last_seen)))) : el("li", { class: "muted" }, "No alerts."));
}

async function sinks() {
  const list = document.getElementById("sinks");
  if (!session.can("health:read")) {
    clear(list, el("dt", {}, "health"), el("dd", { class: "muted" }, "needs health:read"));
    return;
  }
  // 503 still carries the details (a degraded sink).
  const body = await call("GET", "/api/v1/health").catch((error) => error.body);
  if (!body) return;
  const rows = Object.entries(body.sinks || {}).flatMap(([name, state]) => [el("dt", {}, name), el("dd", { class: state === "ok" ? "ok" : "error" }, state)]);
  rows.push(el("dt", {}, "queue"), el("dd", {}, `${body.queue.depth} / ${body.queue.capacity}`), el("dt", {}, "status"), el("dd", {}, `${body.status} (${body.phase})`));
  clear(list, rows);
}

async function ingest() {
  const list = document.getElementById("ingest");
  if (!session.can("metrics:read")) {
    clear(list, el("dt", {}, "metrics"), el("dd", { class: "muted" }, "needs metrics:read"));
    return;
  }
  const { text } = await call("GET", "/metrics", undefined, { raw: true });
  const samples = parseMetrics(text);
  const accepted = {};
  for (const sample of samples.filter((sample) => sample.name === "securewatch_source_accepted_total")) {
    const source = sample.labels.source || sample.labels.kind || "all";
    accepted[source] = (accepted[source] || 0) + sample.value;
  }
  const now = performance.now();
  const rows = [];
  for (const [source, count] of Object.entries(accepted).sort()) {
    const before = previous?.accepted[source];
    const rate = before === undefined ? "…" : `${((count - before) / ((now - previous.at) / 1000)).toFixed(1)}/s`;
    rows.push(el("dt", {}, source), el("dd", {}, `${rate} (${count} accepted)`));
  }
  previous = { at: now, accepted };
  const lag = samples.find((sample) => sample.name === "securewatch_dataflow_epoch_lag_seconds");
  rows.push(el("dt", {}, "epoch lag"), el("dd", { id: "epoch-lag" }, lag ? `${lag.value.toFixed(2)} s` : "n/a"));
  clear(list, rows);
}

async function refresh() {
  const parts = [charts(), topHosts(), latestAlerts(), sinks(), ingest()];
  const results = await Promise.allSettled(parts);
  const failed = results.find((result) => result.status === "rejected");
  const stamp = document.getElementById("overview-updated");
  stamp.textContent = failed ? `update failed: ${failed.reason.message}` : `updated ${new Date().toLocaleTimeString()}`;
}

export async function show() {
  hide();
  timer = setInterval(() => refresh(), REFRESH_MS);
  await refresh();
}

export function hide() {
  if (timer) clearInterval(timer);
  timer = null;
}
