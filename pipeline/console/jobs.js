// Following a job (search or backtest): its WebSocket, or polling when the socket fails; cancel.

import { get, del, jobSocket } from "./api.js";

const POLL_MS = 500;
const running = (status) => status.state === "queued" || status.state === "running";

// Follows job `id`: `onStatus(status, feed)` on every progress ("websocket" or "http"),
// `onPreview(columns, rows)` on preview rows (WebSocket only). `done` resolves with the final
// status, or null once `stop()` was called.
export function follow(id, { onStatus = () => {}, onPreview = () => {} } = {}) {
  let stopped = false;
  let polling = false;
  let finish;
  const done = new Promise((resolve) => { finish = resolve; });
  const end = (status) => {
    if (stopped) return;
    stopped = true;
    socket.close();
    finish(status);
  };

  // No WebSocket (a proxy that drops upgrades), or one closed before the end: poll the job.
  async function poll() {
    if (polling || stopped) return;
    polling = true;
    for (;;) {
      const status = await get(`/api/v1/jobs/${encodeURIComponent(id)}`);
      if (stopped) return;
      onStatus(status, "http");
      if (!running(status)) return end(status);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
  const fallBack = () => poll().catch((error) => { if (!stopped) { stopped = true; finish(Promise.reject(error)); } });

  const socket = jobSocket(id);
  socket.addEventListener("message", (message) => {
    if (stopped || polling) return;
    const data = JSON.parse(message.data);
    if (data.type === "progress" || data.type === "end") onStatus(data.job, "websocket");
    if (data.type === "preview") onPreview(data.columns, data.rows);
    if (data.type === "end") end(data.job);
  });
  socket.addEventListener("error", fallBack);
  socket.addEventListener("close", fallBack);

  return {
    done,
    stop() {
      if (stopped) return;
      stopped = true;
      socket.close();
      finish(null);
    },
  };
}

// Cancels job `id`; answers its status (the rows found so far stay readable).
export const cancel = (id) => del(`/api/v1/jobs/${encodeURIComponent(id)}`);

// Every result row of a finished job, page by page, up to `most` rows; `complete` says whether
// that was all of them.
export async function allRows(id, most = 20000) {
  const rows = [];
  let cursor = null;
  for (;;) {
    const params = new URLSearchParams({ limit: String(Math.min(5000, most - rows.length)) });
    if (cursor) params.set("cursor", cursor);
    const page = await get(`/api/v1/jobs/${encodeURIComponent(id)}/results?${params}`);
    rows.push(...page.rows);
    cursor = page.next;
    if (!cursor) return { rows, complete: true };
    if (rows.length >= most) return { rows, complete: false };
  }
}

// A range picker's `{from, to}`: a span before now (`-1h`), or with `custom` the two
// datetime-local inputs (local time; an empty one is an hour ago or now).
export function timeRange(choice, fromInput, toInput) {
  if (choice.value !== "custom") return { from: choice.value, to: "now" };
  const from = fromInput.value ? new Date(fromInput.value).toISOString() : "-1h";
  const to = toInput.value ? new Date(toInput.value).toISOString() : "now";
  return { from, to };
}
