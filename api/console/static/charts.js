// Small SVG charts drawn by the console itself (no library): a line over time and bars. Each is
// an image with a text alternative that states the numbers, so the chart is never the only way
// to read them.

import { h, svg } from "./dom.js";

// Charts are drawn in a box about as wide as they are shown, so their text stays readable:
// `width` is in the same units as CSS pixels at 100% zoom.
let W = 360;
const H = 200;
const PAD = { left: 48, right: 12, top: 12, bottom: 34 };

function frame(title, summary, width) {
  W = width;
  const id = `chart-${Math.random().toString(36).slice(2, 9)}`;
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "aria-labelledby": `${id}-t ${id}-d`,
    preserveAspectRatio: "xMidYMid meet",
  });
  root.append(svg("title", { id: `${id}-t` }, title), svg("desc", { id: `${id}-d` }, summary));
  return root;
}

function axis(root, yMin, yMax, format) {
  const y = (v) => PAD.top + (H - PAD.top - PAD.bottom) * (1 - (v - yMin) / (yMax - yMin || 1));
  for (const v of [yMin, (yMin + yMax) / 2, yMax]) {
    root.append(
      svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }),
      svg("text", { x: PAD.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, format(v)),
    );
  }
  return y;
}

// points: [{x: number, y: number, label: string}], drawn in order.
export function lineChart({ title, points, yMin, yMax, format = (v) => String(v), width = 640, empty = "No data." }) {
  if (!points.length) return figure(title, h("p", { class: "empty" }, empty));
  const summary = points.map((p) => `${p.label}: ${format(p.y)}`).join("; ");
  const root = frame(title, summary, width);
  const lo = yMin ?? Math.min(...points.map((p) => p.y));
  const hi = yMax ?? Math.max(...points.map((p) => p.y));
  const y = axis(root, lo, hi, format);
  const xs = points.map((p) => p.x);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const x = (v) => PAD.left + (W - PAD.left - PAD.right) * (x1 === x0 ? 0.5 : (v - x0) / (x1 - x0));
  root.append(svg("polyline", { points: points.map((p) => `${x(p.x)},${y(p.y)}`).join(" "), class: "line" }));
  for (const p of points) {
    root.append(svg("circle", { cx: x(p.x), cy: y(p.y), r: 4, class: "dot" }, svg("title", {}, `${p.label}: ${format(p.y)}`)));
  }
  root.append(svg("text", { x: PAD.left, y: H - 10, class: "tick" }, points[0].label));
  if (points.length > 1) {
    root.append(svg("text", { x: W - PAD.right, y: H - 10, class: "tick", "text-anchor": "end" }, points[points.length - 1].label));
  }
  return figure(title, root);
}

// bars: [{label, value}]
export function barChart({ title, bars, format = (v) => String(v), width = 360, empty = "No data." }) {
  if (!bars.length) return figure(title, h("p", { class: "empty" }, empty));
  const summary = bars.map((b) => `${b.label}: ${format(b.value)}`).join("; ");
  const root = frame(title, summary, width);
  const hi = Math.max(...bars.map((b) => b.value), 1);
  const y = axis(root, 0, hi, format);
  const slot = (W - PAD.left - PAD.right) / bars.length;
  bars.forEach((b, i) => {
    const x = PAD.left + i * slot + slot * 0.15;
    root.append(
      svg(
        "rect",
        { x, y: y(b.value), width: slot * 0.7, height: Math.max(0, y(0) - y(b.value)), class: "bar" },
        svg("title", {}, `${b.label}: ${format(b.value)}`),
      ),
    );
  });
  const step = Math.max(1, Math.ceil(bars.length / 8));
  bars.forEach((b, i) => {
    if (i % step) return;
    root.append(svg("text", { x: PAD.left + i * slot + slot / 2, y: H - 10, class: "tick", "text-anchor": "middle" }, b.label));
  });
  return figure(title, root);
}

function figure(title, chart) {
  return h("figure", { class: "figure" }, h("figcaption", {}, title), chart);
}
