// Alerts: the list with filters (rule, level, time, group) and one alert's detail: its evidence events inside the correlation window.

import { get, query, el, clear, time, showError } from "./api.js";

const $ = (id) => document.getElementById(id);
const SPANS = { "-1h": 3600e3, "-24h": 86400e3, "-7d": 7 * 86400e3 };
const NS = "http://www.w3.org/2000/svg";

export const groupText = (group) => Object.entries(group || {}).map(([name, value]) => `${name}=${value}`).join(", ");

async function list() {
  const span = SPANS[$("alert-range").value];
  const params = {
    limit: 200,
    rule: $("alert-rule").value.trim(),
    level: $("alert-level").value,
    from: span ? new Date(Date.now() - span).toISOString() : "",
  };
  const alerts = await get(`/api/v1/alerts${query(params)}`);
  // The group filter is a text match on the group's `name=value` pairs (the API has none).
  const wanted = $("alert-group").value.trim().toLowerCase();
  const shown = wanted ? alerts.filter((alert) => groupText(alert.group).toLowerCase().includes(wanted)) : alerts;
  const rows = shown.map((alert) => el("tr", { class: "pick", "data-id": alert.id, onclick: () => { location.hash = `alerts/${alert.id}`; } },
    el("td", {}, time(alert.last_seen)),
    el("td", { class: `level-${alert.level}` }, alert.level ?? ""),
    el("td", {}, el("a", { href: `#alerts/${alert.id}` }, alert.title), el("div", { class: "muted" }, alert.rule_id)),
    el("td", {}, groupText(alert.group))));
  clear($("alert-list").querySelector("tbody"), rows.length ? rows : el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No alerts match.")));
}

// The correlation window as a bar, each evidence event a tick at its time.
function windowChart(alert) {
  const start = Date.parse(alert.window_start);
  const end = Math.max(Date.parse(alert.window_end), start + 1);
  const width = 600;
  const root = document.createElementNS(NS, "svg");
  root.setAttribute("viewBox", `0 0 ${width} 40`);
  root.setAttribute("preserveAspectRatio", "none");
  root.setAttribute("role", "img");
  root.setAttribute("aria-label", `Correlation window ${time(alert.window_start)} to ${time(alert.window_end)} with ${alert.events.length} evidence events`);
  const shape = (tag, attributes) => {
    const node = document.createElementNS(NS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    root.append(node);
    return node;
  };
  shape("rect", { class: "c5", x: 0, y: 14, width, height: 12, opacity: 0.3 });
  for (const event of alert.events) {
    const x = ((Date.parse(event.time) - start) / (end - start)) * width;
    shape("rect", { class: "c3", x: Math.min(width - 2, Math.max(0, x - 1)).toFixed(1), y: 8, width: 2, height: 24 });
  }
  return root;
}

// One alert with its evidence: its facts, the correlation window with the evidence events on
// it, and the events' table (`ids.title`, `ids.table`: ids of the heading and the table).
export function alertView(alert, ids = { title: "alert-title", table: "evidence" }) {
  const pair = (name, value) => [el("dt", {}, name), el("dd", {}, value)];
  const events = alert.events || [];
  return [
    el("h2", { id: ids.title, tabindex: "-1" }, alert.title),
    el("dl", { class: "pairs" },
      pair("Level", alert.level ?? "-"), pair("Rule", alert.rule_id), pair("Kind", alert.kind), pair("Tenant", alert.tenant),
      pair("Group", groupText(alert.group) || "-"),
      pair("Window", `${time(alert.window_start)} → ${time(alert.window_end)}`),
      pair("First / last evidence", `${time(alert.first_seen)} / ${time(alert.last_seen)}`),
      pair("Fired", time(alert.fired_at)), pair("Tags", alert.tags.join(", ") || "-")),
    el("h2", {}, `Evidence (${events.length} of ${alert.event_ids.length} events)`),
    el("div", { class: "window" }, windowChart({ ...alert, events })),
    el("div", { class: "scroll" }, el("table", { class: "table", id: ids.table },
      el("caption", { class: "sr" }, "Evidence events"),
      el("thead", {}, el("tr", {}, ["Time", "Host", "Severity", "Source", "Message"].map((name) => el("th", { scope: "col" }, name)))),
      el("tbody", {}, events.map((event) => el("tr", {},
        el("td", {}, time(event.time)), el("td", {}, event.host ?? ""), el("td", {}, event.severity ?? ""),
        el("td", {}, event.source ? `${event.source.kind}/${event.source.name}` : ""), el("td", {}, event.message)))))),
  ];
}

async function detail(id) {
  const panel = $("alert-detail");
  for (const row of document.querySelectorAll("#alert-list tbody tr")) row.setAttribute("aria-selected", String(row.dataset.id === id));
  const alert = await get(`/api/v1/alerts/${encodeURIComponent(id)}`);
  clear(panel, alertView(alert));
  $("alert-title").focus();
}

let wired = false;
export async function show(entering) {
  if (!wired) {
    wired = true;
    $("alerts-form").addEventListener("submit", (event) => { event.preventDefault(); list().catch(showError); });
  }
  if (entering || !$("alert-list").querySelector("tbody tr")) await list();
  const id = location.hash.split("/")[1];
  if (id) await detail(id);
}

export function hide() {}
