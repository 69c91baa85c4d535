// Charts drawn as SVG by hand: lines over time (one per series) and bars (a histogram).

import { el, clear } from "./api.js";

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 180;
const PAD = { left: 40, right: 8, top: 8, bottom: 20 };

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function frame(label, maximum, from, to) {
  const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": label });
  const bottom = HEIGHT - PAD.bottom;
  root.append(svg("line", { class: "axis", x1: PAD.left, y1: bottom, x2: WIDTH - PAD.right, y2: bottom }));
  root.append(svg("line", { class: "axis", x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: bottom }));
  root.append(svg("text", { x: PAD.left - 4, y: PAD.top + 8, "text-anchor": "end" }, String(maximum)));
  root.append(svg("text", { x: PAD.left - 4, y: bottom, "text-anchor": "end" }, "0"));
  const clock = (ms) => new Date(ms).toISOString().slice(11, 16);
  root.append(svg("text", { x: PAD.left, y: HEIGHT - 4 }, clock(from)));
  root.append(svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 4, "text-anchor": "end" }, clock(to)));
  return root;
}

function scale(from, to, maximum) {
  const span = Math.max(1, to - from);
  const x = (ms) => PAD.left + ((ms - from) / span) * (WIDTH - PAD.left - PAD.right);
  const y = (count) => HEIGHT - PAD.bottom - (count / Math.max(1, maximum)) * (HEIGHT - PAD.top - PAD.bottom);
  return { x, y };
}

// series: [{name, points: [{time (ms), count}]}]; one coloured line each, with a legend.
export function lineChart(container, label, series, from, to) {
  const maximum = Math.max(1, ...series.flatMap((line) => line.points.map((point) => point.count)));
  const root = frame(label, maximum, from, to);
  const { x, y } = scale(from, to, maximum);
  series.slice(0, 6).forEach((line, index) => {
    const points = line.points.map((point) => `${x(point.time).toFixed(1)},${y(point.count).toFixed(1)}`).join(" ");
    if (line.points.length === 1) {
      const [point] = line.points;
      root.append(svg("circle", { class: `c${index}`, cx: x(point.time), cy: y(point.count), r: 3 }));
    } else {
      root.append(svg("polyline", { class: `line c${index}`, points }, svg("title", {}, line.name)));
    }
  });
  const legend = el("div", { class: "legend" }, series.slice(0, 6).map((line, index) =>
    el("span", {}, el("span", { class: `swatch c${index}`, "aria-hidden": "true" }), `${line.name} (${line.points.reduce((sum, point) => sum + point.count, 0)})`)));
  const empty = series.length === 0 ? el("p", { class: "muted" }, "No events in this range.") : null;
  clear(container, root, legend, empty);
}

// bars: [{time (ms), count}] over equal buckets of `bucketMs`.
export function barChart(container, label, bars, from, to, bucketMs) {
  const maximum = Math.max(1, ...bars.map((bar) => bar.count));
  const root = frame(label, maximum, from, to);
  const { x, y } = scale(from, to, maximum);
  for (const bar of bars) {
    const left = x(bar.time);
    const width = Math.max(1, x(bar.time + bucketMs) - left - 1);
    const top = y(bar.count);
    root.append(svg("rect", { class: "c0", x: left.toFixed(1), y: top.toFixed(1), width: width.toFixed(1), height: (HEIGHT - PAD.bottom - top).toFixed(1) },
      svg("title", {}, `${new Date(bar.time).toISOString()}: ${bar.count}`)));
  }
  clear(container, root);
}
