// Rules: what is loaded, what was rejected and why, reload (rules:write), and backtests (backtests:run, in backtest.js).

import { session, get, post, el, clear, showError } from "./api.js";
import * as backtest from "./backtest.js";

const $ = (id) => document.getElementById(id);

async function list() {
  let listing;
  try {
    listing = await get("/api/v1/rules");
  } catch (error) {
    if (error.status !== 409) throw error;
    listing = { rules: [], rejected: [], warnings: [] };
    $("reload-result").textContent = "Detection is not configured ([detection] rules_dir).";
  }
  const backtests = backtest.allowed();
  $("rule-backtest-column").hidden = !backtests;
  // With backtests:run, each rule offers its file to the backtest form.
  const offer = (rule) => backtests
    ? el("td", {}, el("button", { type: "button", class: "small", "aria-label": `Backtest ${rule.file} (${rule.title})`, onclick: () => backtest.prefill(rule.file) }, "Backtest"))
    : null;
  clear($("rule-list").querySelector("tbody"), listing.rules.length ? listing.rules.map((rule) => el("tr", { "data-rule-id": rule.id ?? "" },
    el("td", {}, rule.id ?? "-"), el("td", {}, rule.title), el("td", {}, rule.kind), el("td", { class: `level-${rule.level}` }, rule.level ?? "-"), el("td", {}, rule.file), offer(rule)))
    : el("tr", {}, el("td", { colspan: backtests ? 6 : 5, class: "muted" }, "No rules loaded.")));
  clear($("rejections").querySelector("tbody"), listing.rejected.length ? listing.rejected.map((rejection) => el("tr", {},
    el("td", {}, rejection.file), el("td", {}, rejection.rule_id ?? rejection.title ?? "-"), el("td", {}, rejection.reason)))
    : el("tr", {}, el("td", { colspan: 3, class: "muted" }, "No rejections.")));
}

async function reload() {
  const result = $("reload-result");
  result.textContent = "reloading…";
  try {
    const report = await post("/api/v1/rules/reload");
    result.textContent = `Applied: ${report.rules} rules, ${report.correlations} correlations, ${report.rejected.length} rejected.`;
  } catch (error) {
    const report = error.body;
    result.textContent = report && report.new_errors
      ? `Refused; the previous rules stay in force: ${report.new_errors.map((rejection) => `${rejection.file}: ${rejection.reason}`).join("; ")}`
      : error.message;
  }
  await list();
}

let wired = false;
export async function show() {
  if (!wired) {
    wired = true;
    $("reload").addEventListener("click", () => reload().catch(showError));
  }
  $("reload").hidden = !session.can("rules:write");
  backtest.show();
  await list();
}

export function hide() {
  backtest.hide();
}
