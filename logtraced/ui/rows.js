// The result list: newest first, in table, JSON or raw view; a table row expands to the whole
// event (its fields with include/exclude buttons, and formatted JSON) and can show its context.
import { h, clear } from "./dom.js";
import { levelName } from "./levels.js";
import { safeText } from "./text.js";
import { formatTime } from "./time.js";

// "2026-11-22T05:46:55.210613029Z" -> nanoseconds as a decimal string (JSON numbers lose them).
export function isoToNs(iso) {
  const ms = Date.parse(`${iso.slice(0, 23)}Z`);
  const sub = (iso.slice(23, 29).replace(/\D/g, "") + "000000").slice(0, 6);
  return (BigInt(ms) * 1000000n + BigInt(sub)).toString();
}

export function fromEvent(event) {
  const ns = isoToNs(event.timestamp);
  return { ns, ms: Number(BigInt(ns) / 1000000n), event };
}

// The fields a person filters by: canonical ones, tags, and attributes by dotted path.
export function flatten(event) {
  const out = [];
  for (const name of ["level", "service", "host", "env", "index"]) {
    if (event[name]) out.push([name, event[name]]);
  }
  for (const tag of event.tags || []) out.push(["tags", tag]);
  const walk = (prefix, value) => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, child] of Object.entries(value)) walk(prefix ? `${prefix}.${key}` : key, child);
    } else out.push([prefix, value]);
  };
  walk("", event.attributes || {});
  return out;
}

export class Results {
  constructor(container, { onFilter, onContext }) {
    this.container = container;
    this.onFilter = onFilter;
    this.onContext = onContext;
    this.rows = [];
    this.view = "table";
    this.zone = "UTC";
  }

  reset(rows = []) {
    this.rows = rows;
    this.render();
  }

  add(rows, { atTop = false } = {}) {
    this.rows = atTop ? [...rows, ...this.rows] : [...this.rows, ...rows];
    this.render();
  }

  render() {
    clear(this.container);
    if (!this.rows.length) {
      this.container.append(h("p", { class: "empty" }, "No events in this range match the query."));
      return;
    }
    if (this.view === "json") {
      this.container.append(...this.rows.map((row) => h("pre", { class: "json-event" }, safeText(JSON.stringify(row.event, null, 2)))));
    } else if (this.view === "raw") {
      this.container.append(h("pre", { class: "raw" }, ...this.rows.map((row) => [safeText(row.event.message), "\n"])));
    } else {
      this.container.append(this.table());
    }
  }

  table() {
    const body = h("tbody");
    for (const row of this.rows) body.append(...this.tableRow(row));
    return h("table", { class: "results" },
      h("caption", { class: "sr-only" }, "Matching events, newest first"),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col", class: "expand-col" }, h("span", { class: "sr-only" }, "Details")),
        h("th", { scope: "col", class: "time-col" }, `Time (${this.zone})`),
        h("th", { scope: "col" }, "Level"), h("th", { scope: "col" }, "Service"), h("th", { scope: "col" }, "Message"))),
      body);
  }

  tableRow(row) {
    const event = row.event;
    const level = levelName(event.level || "");
    const toggle = h("button", { type: "button", class: "expand", "aria-expanded": "false", "aria-label": "Show the whole event" }, "▸");
    const tr = h("tr", { class: `row row-${level}` },
      h("td", {}, toggle),
      h("td", { class: "time" }, formatTime(row.ms, this.zone, row.ns)),
      h("td", {}, h("span", { class: `level level-${level}` }, safeText(event.level || "—"))),
      h("td", { class: "service" }, safeText(event.service || "")),
      h("td", { class: "message" }, safeText(event.message)));
    const detail = h("tr", { class: "detail", hidden: true }, h("td", { colspan: 5 }));
    const open = () => {
      const opening = detail.hidden;
      detail.hidden = !opening;
      toggle.setAttribute("aria-expanded", String(opening));
      toggle.textContent = opening ? "▾" : "▸";
      if (opening && !detail.firstChild.firstChild) detail.firstChild.append(this.details(row));
    };
    toggle.addEventListener("click", open);
    tr.querySelector(".message").addEventListener("click", open);
    return [tr, detail];
  }

  details(row) {
    const fields = h("table", { class: "fields" }, h("caption", { class: "sr-only" }, "Fields of this event"));
    for (const [name, value] of flatten(row.event)) {
      const scalar = value === null || typeof value !== "object";
      fields.append(h("tr", {},
        h("th", { scope: "row" }, safeText(name)),
        h("td", {}, safeText(value === null ? "null" : typeof value === "string" ? value : JSON.stringify(value))),
        h("td", { class: "actions" }, scalar ? [
          h("button", { type: "button", class: "include", "aria-label": `Filter for ${name}`, on: { click: () => this.onFilter(name, value, false) } }, "+"),
          h("button", { type: "button", class: "exclude", "aria-label": `Filter out ${name}`, on: { click: () => this.onFilter(name, value, true) } }, "−"),
        ] : null)));
    }
    const context = h("div", { class: "context" });
    return h("div", { class: "event-detail" },
      h("div", { class: "detail-bar" },
        h("button", { type: "button", class: "show-context", on: { click: () => this.onContext(row, context) } }, "Show context (events around this one)")),
      context, fields,
      h("pre", { class: "json" }, safeText(JSON.stringify(row.event, null, 2))));
  }
}
