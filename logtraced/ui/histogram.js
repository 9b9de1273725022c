// The hits histogram: counts per step stacked by level (uPlot bars), drag across it to zoom.
// Counts come from the query_range `aggregate` stage, so they cover the whole range, not one page.
import uPlot from "./vendor/uPlot-1.6.32.esm.js";
import { h, clear, formatNumber } from "./dom.js";
import { LEVELS, COLOURS, levelName } from "./levels.js";
import { formatShort, formatTime } from "./time.js";

// matrix: the `result` of an aggregate answer ([{metric: {level}, values: [[seconds, "n"], ...]}] or null).
export function bucketise(matrix, startMs, endMs, stepSeconds) {
  const start = startMs / 1000;
  const n = Math.max(1, Math.ceil((endMs - startMs) / 1000 / stepSeconds));
  const xs = Array.from({ length: n }, (_, i) => start + i * stepSeconds);
  const counts = Object.fromEntries(LEVELS.map((level) => [level, new Array(n).fill(0)]));
  let total = 0;
  for (const series of matrix || []) {
    const level = levelName(series.metric.level || "");
    for (const [seconds, value] of series.values) {
      const i = Math.min(n - 1, Math.max(0, Math.round((seconds - start) / stepSeconds)));
      counts[level][i] += Number(value);
      total += Number(value);
    }
  }
  return { xs, counts, total };
}

export class Histogram {
  constructor(container, { onZoom }) {
    this.container = container;
    this.onZoom = onZoom;
    this.plot = null;
    this.resize = new ResizeObserver(() => this.plot && this.plot.setSize(this.size()));
    this.resize.observe(container);
  }

  size() {
    return { width: Math.max(200, this.container.clientWidth - 2), height: 150 };
  }

  draw({ xs, counts, total }, zone, stepSeconds) {
    if (this.plot) this.plot.destroy();
    clear(this.container);
    const present = LEVELS.filter((level) => counts[level].some((c) => c > 0));
    const stack = present.length ? present : ["other"];
    // Cumulative sums, drawn top of the stack first so each lower level paints over the one above.
    const cumulative = [];
    let running = new Array(xs.length).fill(0);
    for (const level of stack) {
      running = running.map((sum, i) => sum + counts[level][i]);
      cumulative.push(running);
    }
    const order = stack.map((_, i) => stack.length - 1 - i);
    const bars = uPlot.paths.bars({ size: [0.92, Infinity], align: 1 });
    const opts = {
      ...this.size(),
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false }, points: { show: false } },
      select: { show: true },
      scales: { x: { time: false, range: () => [xs[0], xs[xs.length - 1] + stepSeconds] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [
        { values: (u, splits) => splits.map((s) => formatShort(s * 1000, zone)), space: 90, stroke: "#5f6b76" },
        { values: (u, splits) => splits.map((s) => (Number.isInteger(s) ? formatNumber(s) : "")), size: 50, stroke: "#5f6b76" },
      ],
      series: [{}, ...order.map((i) => ({
        label: stack[i], fill: COLOURS[stack[i]], stroke: COLOURS[stack[i]], width: 0, paths: bars, points: { show: false },
      }))],
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 3) return;
          const from = u.posToVal(u.select.left, "x");
          const to = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
          this.onZoom(Math.round(from * 1000), Math.round(to * 1000));
        }],
        setCursor: [(u) => this.hover(u, xs, counts, stack, zone, stepSeconds)],
      },
    };
    const data = [xs, ...order.map((i) => cumulative[i])];
    this.plot = new uPlot(opts, data, this.container);
    this.tip = h("div", { class: "chart-tip", role: "status" });
    this.container.append(this.tip);
    const summary = h("p", { class: "level-summary", "data-total": total },
      ...stack.filter((level) => counts[level].some((c) => c > 0)).map((level) =>
        h("span", { class: `chip level-${level}`, dataset: { level } }, `${level} ${formatNumber(counts[level].reduce((a, b) => a + b, 0))}`)),
      h("span", { class: "hint" }, "Drag across the chart to zoom in."));
    this.container.append(summary);
    this.container.setAttribute("aria-label",
      `Histogram of ${formatNumber(total)} hits, ${xs.length} steps of ${stepSeconds} s, stacked by level`);
  }

  hover(u, xs, counts, stack, zone, stepSeconds) {
    const i = u.cursor.idx;
    if (i === null || i === undefined) { this.tip.textContent = ""; return; }
    const parts = stack.filter((level) => counts[level][i]).map((level) => `${level} ${counts[level][i]}`);
    this.tip.textContent = `${formatTime(xs[i] * 1000, zone)} +${stepSeconds}s: ${parts.join(", ") || "no hits"}`;
  }
}
