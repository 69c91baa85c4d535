// Search: the query editor (errors at their position), time range, live progress over the job's WebSocket, a histogram, paged results, cancel and export.

import { get, post, call, query, el, clear, showError, download } from "./api.js";
import { follow, cancel, timeRange } from "./jobs.js";
import { barChart } from "./charts.js";

const $ = (id) => document.getElementById(id);
let job = null;      // the running or last job's status
let following = null; // the job being followed (its WebSocket or polling)
let cursors = [];    // cursor of each page shown so far (the first is null)
let nextCursor = null;

// The job's byte offset as a character index of the query text.
function characterAt(text, byteOffset) {
  const bytes = new TextEncoder().encode(text);
  return new TextDecoder().decode(bytes.slice(0, byteOffset)).length;
}

function showQueryError(failure) {
  const editor = $("query");
  if (!failure) {
    $("query-error").textContent = "";
    editor.removeAttribute("aria-invalid");
    return;
  }
  const place = failure.line ? `line ${failure.line}, column ${failure.column}: ` : "";
  $("query-error").textContent = `${place}${failure.message}${failure.pointer ? `\n${failure.pointer}` : ""}`;
  if (failure.position !== undefined && failure.position !== null) {
    editor.setAttribute("aria-invalid", "true");
    const at = characterAt(editor.value, failure.position);
    editor.focus();
    editor.setSelectionRange(at, Math.min(editor.value.length, at + 1));
  }
}

function setState(status, feed = "http") {
  job = status;
  $("progress").value = status.progress ?? 0;
  const matched = `${status.rows_matched} rows`;
  const scanned = status.rows_scanned === null || status.rows_scanned === undefined ? "" : `, ${status.rows_scanned} scanned`;
  $("job-state").textContent = `${status.state}: ${matched}${scanned}${status.truncated ? " (truncated)" : ""}`;
  $("job-state").dataset.state = status.state;
  $("job-state").dataset.feed = feed;
  const running = status.state === "queued" || status.state === "running";
  $("cancel").disabled = !running;
  $("run").disabled = running;
  $("export-csv").disabled = $("export-ndjson").disabled = status.state !== "done";
}

function renderRows(columns, rows) {
  const table = $("results");
  clear(table.querySelector("thead"), el("tr", {}, columns.map((column) => el("th", { scope: "col" }, column))));
  const cell = (value) => (value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value));
  clear(table.querySelector("tbody"), rows.map((row) => el("tr", {}, columns.map((column) => el("td", {}, cell(Array.isArray(row) ? row[columns.indexOf(column)] : row[column]))))));
}

async function loadPage(cursor) {
  const limit = $("page-size").value;
  const page = await get(`/api/v1/jobs/${encodeURIComponent(job.id)}/results${query({ cursor, limit })}`);
  renderRows(page.columns, page.rows);
  nextCursor = page.next;
  const first = (cursors.length - 1) * Number(limit);
  $("page-info").textContent = page.rows.length ? `rows ${first + 1}–${first + page.rows.length} of ${page.job.rows_matched}` : "no rows";
  $("next-page").disabled = !nextCursor;
  $("prev-page").disabled = cursors.length <= 1;
}

// Results over time: the same query summarised by time buckets (when its rows have a time).
async function histogram(status) {
  const container = $("histogram");
  if (!status.columns.includes("time") || /\|\s*(summarize|count)\b/.test(status.query)) {
    clear(container, el("p", { class: "muted" }, "No histogram: the results have no time column."));
    return;
  }
  const from = Date.parse(status.from);
  const to = Date.parse(status.to);
  const minutes = Math.max(1, Math.ceil((to - from) / 60000 / 60));
  const body = await post("/api/v1/search", {
    query: `${status.query} | summarize n = count() by bucket = bin(time, ${minutes}m)`,
    from: status.from, to: status.to, wait_ms: 10000,
  });
  const rows = body.rows || [];
  const bars = rows.map((row) => ({ time: Date.parse(row.bucket), count: Number(row.n) })).filter((bar) => !Number.isNaN(bar.time));
  barChart(container, "Results over time", bars, from, to, minutes * 60000);
}

function watch(id) {
  following?.stop();
  following = follow(id, {
    onStatus: setState,
    onPreview: (columns, rows) => { if (cursors.length <= 1) renderRows(columns, rows.slice(0, Number($("page-size").value))); },
  });
  following.done.then((status) => status && finished(status)).catch(showError);
}

async function finished(status) {
  if (status.state === "failed") showQueryError(status.error);
  if (status.state !== "done") return;
  cursors = [null];
  await loadPage(null);
  await histogram(status).catch((error) => clear($("histogram"), el("p", { class: "muted" }, `No histogram: ${error.message}`)));
}

async function run(event) {
  event.preventDefault();
  showError(null);
  showQueryError(null);
  clear($("histogram"));
  clear($("results").querySelector("tbody"));
  $("page-info").textContent = "";
  let status;
  try {
    status = await post("/api/v1/jobs", { query: $("query").value, ...timeRange($("range"), $("range-from"), $("range-to")) });
  } catch (error) {
    if (error.body && error.body.error && error.body.id) {
      setState(error.body);
      showQueryError(error.body.error);
    } else {
      showError(error);
    }
    return;
  }
  cursors = [null];
  setState(status);
  watch(status.id);
}

async function exportAll(format) {
  const limit = 10000;
  let cursor = null;
  let text = "";
  for (let page = 0; page < 100; page++) {
    const answer = await call("GET", `/api/v1/jobs/${encodeURIComponent(job.id)}/results${query({ cursor, limit, format })}`, undefined, { raw: true });
    text += answer.text;
    cursor = answer.headers.get("x-securewatch-next");
    if (!cursor) break;
  }
  download(`securewatch-${job.id}.${format === "csv" ? "csv" : "ndjson"}`, format === "csv" ? "text/csv" : "application/x-ndjson", text);
}

let wired = false;
function wire() {
  if (wired) return;
  wired = true;
  $("search-form").addEventListener("submit", run);
  $("query").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("search-form").requestSubmit();
  });
  $("range").addEventListener("change", () => { $("custom-range").hidden = $("range").value !== "custom"; });
  $("cancel").addEventListener("click", async () => {
    if (!job) return;
    try { setState(await cancel(job.id)); } catch (error) { showError(error); }
  });
  $("next-page").addEventListener("click", () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    loadPage(nextCursor).catch(showError);
  });
  $("prev-page").addEventListener("click", () => {
    if (cursors.length <= 1) return;
    cursors.pop();
    loadPage(cursors[cursors.length - 1]).catch(showError);
  });
  $("page-size").addEventListener("change", () => {
    if (job?.state !== "done") return;
    cursors = [null];
    loadPage(null).catch(showError);
  });
  $("export-csv").addEventListener("click", () => exportAll("csv").catch(showError));
  $("export-ndjson").addEventListener("click", () => exportAll("ndjson").catch(showError));
}

export async function show() {
  wire();
  $("query").focus();
}

export function hide() {}

