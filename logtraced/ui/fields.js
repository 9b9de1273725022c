// The field sidebar: top values of the canonical labels over the whole range (counted by the
// daemon with one aggregate query per label), and of attributes in the loaded events.
import { api } from "./api.js";
import { h, clear, formatNumber } from "./dom.js";
import { flatten } from "./rows.js";
import { safeText } from "./text.js";

const LABELS = ["level", "service", "host"];
const TOP = 8;

export class FieldSidebar {
  constructor(container, { onFilter }) {
    this.container = container;
    this.onFilter = onFilter;
  }

  // filterStages: the query's filter stages; window: {start, end} as ns strings; spanSeconds for the one step.
  async load(org, filterStages, window, spanSeconds, rows, signal) {
    clear(this.container);
    this.container.append(h("h2", {}, "Fields"));
    const step = `${Math.max(1, Math.ceil(spanSeconds))}s`;
    const counted = await Promise.all(LABELS.map(async (label) => {
      const pipeline = [...filterStages, { type: "aggregate", function: "count", by: [label] }];
      const answer = await api.queryRange(org, pipeline, { ...window, step }, signal);
      const totals = new Map();
      for (const series of answer.data.result || []) {
        const value = series.metric[label] ?? "";
        const n = series.values.reduce((sum, [, v]) => sum + Number(v), 0);
        totals.set(value, (totals.get(value) || 0) + n);
      }
      return [label, totals];
    }));
    for (const [label, totals] of counted) this.section(label, totals, "over the whole range");
    const attributes = new Map();
    for (const row of rows) {
      for (const [name, value] of flatten(row.event)) {
        if (LABELS.includes(name) || name === "env" || value === null || typeof value === "object") continue;
        if (!attributes.has(name)) attributes.set(name, new Map());
        const values = attributes.get(name);
        values.set(String(value), (values.get(String(value)) || 0) + 1);
      }
    }
    for (const [name, values] of [...attributes].sort(([a], [b]) => a.localeCompare(b))) {
      this.section(name, values, `in ${formatNumber(rows.length)} loaded events`);
    }
  }

  section(name, totals, scope) {
    const entries = [...totals].filter(([value]) => value !== "").sort((a, b) => b[1] - a[1]).slice(0, TOP);
    if (!entries.length) return;
    const sum = [...totals.values()].reduce((a, b) => a + b, 0);
    const list = h("ul", { class: "top-values" });
    for (const [value, count] of entries) {
      list.append(h("li", {},
        h("button", { type: "button", class: "value include", title: `Add ${name}:${value} to the query`, on: { click: () => this.onFilter(name, value, false) } }, safeText(value)),
        h("span", { class: "count" }, formatNumber(count)),
        h("span", { class: "bar", "aria-hidden": "true" }, h("span", { class: `fill w${Math.round((count / sum) * 10)}` })),
        h("button", { type: "button", class: "exclude", "aria-label": `Filter out ${name} ${value}`, on: { click: () => this.onFilter(name, value, true) } }, "−")));
    }
    this.container.append(h("details", { class: "field", open: name === "level" || name === "service" },
      h("summary", {}, safeText(name), h("span", { class: "scope" }, ` (${scope})`)), list));
  }
}
