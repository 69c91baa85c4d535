// Backtests on the Rules page: submit rules over a range, live progress, cancel, and the results: per rule, compared with live, alerts with their evidence.

import { session, post, el, clear, time, showError } from "./api.js";
import { follow, cancel, allRows, timeRange } from "./jobs.js";
import { alertView, groupText } from "./alerts.js";

const $ = (id) => document.getElementById(id);
const SHOWN_ALERTS = 500;
let job = null;        // the running or last backtest's status
let following = null;
let alerts = [];       // the last results' backtest alerts (`alert` rows' details)

// A backtest needs `backtests:run`, and `jobs:run` to follow and read its job.
export const allowed = () => session.can("backtests:run") && session.can("jobs:run");

const count = (value) => (value === null || value === undefined ? "-" : Number(value).toLocaleString("en"));
// Alerts per day to one decimal, without a trailing ".0" (40/day over a day is "40").
const perDay = (value) => Number(Number(value).toFixed(1)).toLocaleString("en");

function setState(status, feed = "http") {
  job = status;
  const progress = status.backtest;
  const read = progress
    ? ` · cursor ${time(progress.cursor)} · ${count(progress.events_read)} events read · ${count(progress.matches)} matches · ${count(progress.alerts)} alerts`
    : "";
  const state = $("backtest-state");
  state.textContent = `${status.state}${read}`;
  state.dataset.state = status.state;
  state.dataset.job = status.id;
  state.dataset.feed = feed;
  $("backtest-progress").value = status.progress ?? 0;
  const running = status.state === "queued" || status.state === "running";
  $("backtest-cancel").disabled = !running;
  $("backtest-run").disabled = running;
}

function ruleRows(rules) {
  return rules.map(({ detail: rule }) => {
    const days = Object.entries(rule.alerts_per_day || {}).map(([day, alerts]) => `${day}: ${alerts}`).join(", ");
    const groups = (rule.top_groups || []).map((top) => `${groupText(top.group) || "-"} (${top.alerts})`).join("; ");
    return el("tr", { "data-rule-id": rule.rule_id },
      el("td", {}, rule.title, el("div", { class: "muted" }, rule.rule_id)),
      el("td", {}, rule.emits ? rule.kind : `${rule.kind} (feeds correlations)`),
      el("td", { class: "number" }, count(rule.matches)),
      el("td", { class: "number" }, count(rule.alerts)),
      el("td", { class: "number" }, perDay(rule.alerts_per_day_average)),
      el("td", {}, days || "-"),
      el("td", {}, groups || "-"));
  });
}

function showAlert(alert) {
  for (const row of document.querySelectorAll("#backtest-alerts tbody tr")) row.setAttribute("aria-selected", String(row.dataset.id === alert.id));
  clear($("backtest-alert"), alertView(alert, { title: "backtest-alert-title", table: "backtest-evidence" }));
  $("backtest-alert-title").focus();
}

// A correlation's group; a single-event alert's host (as the per-rule top groups count them).
const groupOrHost = (alert) => groupText(alert.group) || (alert.events?.[0]?.host ? `host=${alert.events[0].host}` : "-");

const COMPARED = { same: "same", evidence_differs: "evidence differs", only_backtest: "only in backtest" };

function listAlerts() {
  const wanted = $("backtest-filter").value;
  const shown = wanted ? alerts.filter((alert) => alert.comparison === wanted) : alerts;
  // The row opens the alert on a click; its button does by keyboard.
  const rows = shown.slice(0, SHOWN_ALERTS).map((alert) => el("tr", { class: "pick", "data-id": alert.id, "data-comparison": alert.comparison, onclick: () => showAlert(alert) },
    el("td", {}, el("button", { type: "button", class: "link" }, time(alert.last_seen))),
    el("td", { title: alert.rule_id }, alert.title),
    el("td", {}, groupOrHost(alert)),
    el("td", { class: `compared-${alert.comparison}` }, COMPARED[alert.comparison] ?? alert.comparison)));
  clear($("backtest-alerts").querySelector("tbody"), rows.length ? rows : el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No alerts.")));
  $("backtest-alerts-info").textContent = shown.length > SHOWN_ALERTS ? `first ${SHOWN_ALERTS} of ${shown.length}` : `${shown.length}`;
}

async function results(status) {
  const { rows, complete } = await allRows(status.id);
  const of = (record) => rows.filter((row) => row.record === record);
  const summary = of("summary")[0]?.detail;
  if (!summary) throw new Error("the backtest left no summary");
  alerts = of("alert").map((row) => row.detail);
  const onlyLive = of("only_live").map((row) => row.detail);
  const pair = (name, value) => [el("dt", {}, name), el("dd", {}, value)];
  clear($("backtest-summary"),
    pair("Range", `${time(summary.from)} → ${time(summary.to)}`),
    pair("Read up to", time(summary.cursor)),
    pair("Store", summary.store),
    pair("Events read", count(summary.events_read)),
    pair("Matches", count(summary.matches)),
    pair("Alerts", count(summary.alerts)),
    summary.cancelled ? pair("Cancelled", "yes: these results cover what was read before the cancel") : null,
    summary.not_compared ? pair("Not compared", `${count(summary.not_compared)} alerts past the kept ones`) : null,
    summary.evidence_capped ? pair("Evidence", "capped: later alerts list their event ids only") : null,
    complete ? null : pair("Shown", `the first ${count(rows.length)} result rows`));
  clear($("backtest-rule-table").querySelector("tbody"), ruleRows(of("rule")));
  $("backtest-same").textContent = count(summary.same);
  $("backtest-differs").textContent = count(summary.evidence_differs);
  $("backtest-only-backtest").textContent = count(summary.only_backtest);
  $("backtest-only-live").textContent = count(summary.only_live);
  listAlerts();
  // A live alert's evidence is on the Alerts page.
  const live = onlyLive.slice(0, SHOWN_ALERTS).map((alert) => el("tr", { "data-id": alert.id },
    el("td", {}, el("a", { href: `#alerts/${encodeURIComponent(alert.id)}` }, time(alert.last_seen))),
    el("td", { title: alert.rule_id }, alert.title),
    el("td", {}, groupText(alert.group) || "-")));
  clear($("backtest-only-live-list").querySelector("tbody"), live.length ? live : el("tr", {}, el("td", { colspan: 3, class: "muted" }, "None: live raised no alert the backtest did not.")));
  clear($("backtest-alert"), el("p", { class: "muted" }, "Choose a backtest alert to see its evidence."));
  $("backtest-results").hidden = false;
  $("backtest-results-title").focus();
}

async function finished(status) {
  if (status.state === "failed") {
    $("backtest-error").textContent = status.error?.message ?? "The backtest failed.";
    return;
  }
  // A cancelled backtest still writes what it found.
  if ((status.state === "done" || status.state === "cancelled") && allowed()) await results(status);
}

async function run(event) {
  event.preventDefault();
  showError(null);
  $("backtest-error").textContent = "";
  $("backtest-rules").removeAttribute("aria-invalid");
  $("backtest-results").hidden = true;
  let status;
  try {
    status = await post("/api/v1/jobs", { kind: "backtest", rules: $("backtest-rules").value, ...timeRange($("backtest-range"), $("backtest-from"), $("backtest-to")) });
  } catch (error) {
    // A refused submission (rules rejected, a path outside the rules directory) says why.
    if (error.status === 400) {
      $("backtest-error").textContent = error.body?.error ?? error.message;
      $("backtest-rules").setAttribute("aria-invalid", "true");
      $("backtest-rules").focus();
    } else {
      showError(error);
    }
    return;
  }
  setState(status);
  following?.stop();
  following = follow(status.id, { onStatus: setState });
  following.done.then((end) => end && finished(end)).catch(showError);
}

// Fills the form with a loaded rule's file and moves there.
export function prefill(file) {
  $("backtest-rules").value = file;
  $("backtest-rules").removeAttribute("aria-invalid");
  $("backtest-error").textContent = "";
  $("backtest-range").focus();
}

// Signing out stops following and forgets the results: the next identity starts blank.
function forget() {
  following?.stop();
  following = null;
  job = null;
  alerts = [];
  $("backtest-results").hidden = true;
  for (const id of ["backtest-summary", "backtest-alert"]) clear($(id));
  for (const id of ["backtest-rule-table", "backtest-alerts", "backtest-only-live-list"]) clear($(id).querySelector("tbody"));
  $("backtest-rules").value = "";
  $("backtest-error").textContent = "";
  $("backtest-state").textContent = "idle";
  delete $("backtest-state").dataset.state;
  delete $("backtest-state").dataset.job;
  $("backtest-progress").value = 0;
  $("backtest-run").disabled = false;
  $("backtest-cancel").disabled = true;
}

window.addEventListener("securewatch:signed-out", forget);

let wired = false;
export function wire() {
  if (wired) return;
  wired = true;
  $("backtest-form").addEventListener("submit", (event) => run(event).catch(showError));
  $("backtest-rules").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("backtest-form").requestSubmit();
  });
  $("backtest-range").addEventListener("change", () => { $("backtest-custom").hidden = $("backtest-range").value !== "custom"; });
  $("backtest-cancel").addEventListener("click", async () => {
    if (!job) return;
    try { setState(await cancel(job.id)); } catch (error) { showError(error); }
  });
  $("backtest-filter").addEventListener("change", listAlerts);
}

// Hidden for an identity that may not run backtests (the results of an earlier one too).
export function show() {
  wire();
  const may = allowed();
  $("backtest").hidden = !may;
  if (!may) $("backtest-results").hidden = true;
}

// Leaving the page keeps following: coming back shows where the backtest stands.
export function hide() {}
