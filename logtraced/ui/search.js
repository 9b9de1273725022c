// The Search page: query bar (KQL or JSON pipeline) with history, time picker and zone, hits
// histogram, result list with paging, field sidebar, context and live tail. Its state lives in the
// URL's fragment, so a link reproduces the view (never the key: that is only in session storage).
import { api, session } from "./api.js";
import { h, clear, announce, formatNumber } from "./dom.js";
import { Histogram, bucketise } from "./histogram.js";
import { FieldSidebar } from "./fields.js";
import { Results, fromEvent } from "./rows.js";
import { Tail } from "./tail.js";
import { levelName } from "./levels.js";
import { kqlClause, addClause, safeText } from "./text.js";
import { RELATIVE, ZONES, resolve, msToNs, nsMinusOne, pickStep, parseLocal, toLocalInput, formatTime } from "./time.js";

const PAGE = 100;
const CAP = 1000;
const HISTORY_KEY = "logtraced.history";
const HISTORY_MAX = 50;
const CONTEXT_ROWS = 10;
const CONTEXT_SPAN_MS = 3600e3;

export function readState(params) {
  const state = {
    q: params.get("q") || "",
    mode: params.get("mode") === "pipeline" ? "pipeline" : "kql",
    tz: ZONES.includes(params.get("tz")) ? params.get("tz") : "UTC",
    view: ["table", "json", "raw"].includes(params.get("view")) ? params.get("view") : "table",
    range: { rel: "1h" },
  };
  if (params.get("from") && params.get("to")) state.range = { from: Number(params.get("from")), to: Number(params.get("to")) };
  else if (RELATIVE[params.get("range")]) state.range = { rel: params.get("range") };
  return state;
}

function writeState(state) {
  const params = new URLSearchParams();
  if (state.q) params.set("q", state.q);
  if (state.mode !== "kql") params.set("mode", state.mode);
  if (state.range.rel) params.set("range", state.range.rel);
  else { params.set("from", String(state.range.from)); params.set("to", String(state.range.to)); }
  if (state.tz !== "UTC") params.set("tz", state.tz);
  if (state.view !== "table") params.set("view", state.view);
  return `#/search?${params}`;
}

// The user's pipeline text: a JSON list of stages, or {"pipeline": [...]}.
function pipelineStages(text) {
  if (!text.trim()) return [];
  const value = JSON.parse(text);
  const stages = Array.isArray(value) ? value : value.pipeline;
  if (!Array.isArray(stages)) throw new Error('a pipeline is a JSON list of stages, or {"pipeline": [...]}');
  return stages;
}

export class SearchPage {
  constructor(main, params) {
    this.main = main;
    this.state = readState(params);
    this.history = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
    this.historyAt = -1;
    this.controller = null;
    this.build();
    this.run({ push: false });
  }

  build() {
    const s = this.state;
    this.input = h("textarea", { id: "query", class: "query", rows: 1, spellcheck: "false", "aria-describedby": "query-help",
      placeholder: "KQL, e.g. service:payment-gateway and level:error" });
    this.input.value = s.q;
    this.mode = h("select", { id: "mode", "aria-label": "Query language" },
      h("option", { value: "kql" }, "KQL"), h("option", { value: "pipeline" }, "JSON pipeline"));
    this.mode.value = s.mode;
    this.rangeSelect = h("select", { id: "range", "aria-label": "Time range" },
      ...Object.keys(RELATIVE).map((rel) => h("option", { value: rel }, `Last ${rel}`)), h("option", { value: "abs" }, "Absolute…"));
    this.fromInput = h("input", { type: "datetime-local", id: "from", "aria-label": "From" });
    this.toInput = h("input", { type: "datetime-local", id: "to", "aria-label": "To" });
    this.absolute = h("span", { class: "absolute" }, this.fromInput, "–", this.toInput);
    this.zone = h("select", { id: "zone", "aria-label": "Time zone" }, ...ZONES.map((zone) => h("option", { value: zone }, zone)));
    this.zone.value = s.tz;
    this.live = h("button", { type: "button", id: "live", class: "live-toggle", "aria-pressed": "false" }, "Live tail");
    this.tailState = h("span", { class: "tail-state", role: "status", "aria-live": "polite" });
    this.viewSelect = h("div", { class: "views", role: "group", "aria-label": "View" },
      ...["table", "json", "raw"].map((view) => h("button", { type: "button", dataset: { view }, "aria-pressed": String(view === s.view),
        on: { click: () => this.setView(view) } }, view.toUpperCase())));
    this.status = h("p", { class: "status", role: "status", "aria-live": "polite" });
    this.hits = h("p", { class: "hits", "aria-live": "polite" });
    this.chart = h("div", { class: "histogram", role: "img", "aria-label": "Histogram" });
    this.list = h("div", { class: "results-box" });
    this.more = h("button", { type: "button", class: "more", hidden: true, on: { click: () => this.loadMore() } }, "Load more");
    this.sidebar = h("aside", { class: "sidebar", "aria-label": "Fields" });
    const form = h("form", { class: "querybar", role: "search", on: { submit: (e) => { e.preventDefault(); this.submit(); } } },
      h("label", { for: "query", class: "sr-only" }, "Query"), this.input, this.mode,
      h("button", { type: "submit", class: "primary" }, "Search"));
    const timebar = h("div", { class: "timebar" },
      h("label", { for: "range" }, "Range"), this.rangeSelect, this.absolute,
      h("label", { for: "zone" }, "Zone"), this.zone,
      this.live, this.tailState,
      this.viewSelect);
    clear(this.main).append(
      h("h1", { class: "sr-only" }, "Search"), form,
      h("p", { id: "query-help", class: "help" }, "Enter searches; Ctrl+↑/↓ walks the query history. Click + or − next to a value to include or exclude it."),
      timebar, this.status,
      h("div", { class: "search-body" }, this.sidebar, h("section", { class: "hits-panel", "aria-label": "Results" }, this.hits, this.chart, this.list, this.more)));
    this.histogram = new Histogram(this.chart, { onZoom: (from, to) => this.zoom(from, to) });
    this.results = new Results(this.list, { onFilter: (f, v, x) => this.filter(f, v, x), onContext: (row, box) => this.context(row, box) });
    this.fields = new FieldSidebar(this.sidebar, { onFilter: (f, v, x) => this.filter(f, v, x) });
    this.tail = new Tail({ onRows: (rows) => this.tailRows(rows), onState: (state, why) => this.tailShown(state, why),
      onDropped: (n) => announce(this.status, `The daemon dropped ${formatNumber(n)} events this tab was too slow to take.`, "error") });
    this.showRange();
    this.input.addEventListener("keydown", (e) => this.keys(e));
    this.rangeSelect.addEventListener("change", () => this.rangeChanged());
    this.fromInput.addEventListener("change", () => this.absoluteChanged());
    this.toInput.addEventListener("change", () => this.absoluteChanged());
    this.zone.addEventListener("change", () => { this.state.tz = this.zone.value; this.showRange(); this.submit(); });
    this.mode.addEventListener("change", () => { this.state.mode = this.mode.value; this.input.rows = this.mode.value === "pipeline" ? 4 : 1; });
    this.live.addEventListener("click", () => this.toggleLive());
    this.input.rows = s.mode === "pipeline" ? 4 : 1;
  }

  showRange() {
    const s = this.state;
    this.rangeSelect.value = s.range.rel || "abs";
    this.absolute.hidden = !!s.range.rel;
    const { startMs, endMs } = resolve(s.range);
    this.fromInput.value = toLocalInput(startMs, s.tz);
    this.toInput.value = toLocalInput(endMs, s.tz);
  }

  rangeChanged() {
    if (this.rangeSelect.value === "abs") {
      const { startMs, endMs } = resolve(this.state.range);
      this.state.range = { from: startMs, to: endMs };
    } else this.state.range = { rel: this.rangeSelect.value };
    this.showRange();
    this.submit();
  }

  absoluteChanged() {
    const from = parseLocal(this.fromInput.value, this.state.tz);
    const to = parseLocal(this.toInput.value, this.state.tz);
    if (from === null || to === null || from >= to) { announce(this.status, "The range needs a start before its end.", "error"); return; }
    this.state.range = { from, to };
    this.submit();
  }

  zoom(from, to) {
    this.state.range = { from, to: Math.max(to, from + 1000) };
    this.showRange();
    this.submit();
  }

  setView(view) {
    this.state.view = view;
    for (const button of this.viewSelect.children) button.setAttribute("aria-pressed", String(button.dataset.view === view));
    this.results.view = view;
    this.results.render();
    history.replaceState(null, "", writeState(this.state));
  }

  keys(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey) { event.preventDefault(); this.submit(); return; }
    if (!event.ctrlKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
    event.preventDefault();
    if (!this.history.length) return;
    const step = event.key === "ArrowUp" ? 1 : -1;
    this.historyAt = Math.max(-1, Math.min(this.history.length - 1, this.historyAt + step));
    this.input.value = this.historyAt < 0 ? "" : this.history[this.historyAt];
  }

  filter(field, value, exclude) {
    if (this.state.mode !== "kql") { announce(this.status, "Include and exclude add KQL; switch the language to KQL.", "error"); return; }
    this.input.value = addClause(this.input.value, kqlClause(field, value, exclude));
    this.submit();
  }

  submit() {
    this.state.q = this.input.value.trim();
    this.state.mode = this.mode.value;
    this.state.tz = this.zone.value;
    if (this.state.q && this.history[0] !== this.state.q) {
      this.history = [this.state.q, ...this.history.filter((q) => q !== this.state.q)].slice(0, HISTORY_MAX);
      localStorage.setItem(HISTORY_KEY, JSON.stringify(this.history));
    }
    this.historyAt = -1;
    this.run({ push: true });
  }

  filterStages() {
    if (this.state.mode === "pipeline") return pipelineStages(this.state.q);
    return this.state.q ? [{ type: "filter", query: { $kql: this.state.q } }] : [];
  }

  async run({ push }) {
    const url = writeState(this.state);
    if (push && location.hash !== url) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
    if (this.controller) this.controller.abort();
    const controller = this.controller = new AbortController();
    const started = performance.now();
    document.body.dataset.state = "loading";
    announce(this.status, "Searching…");
    const { startMs, endMs } = resolve(this.state.range);
    this.window = { startMs, endMs };
    const nsWindow = { start: msToNs(startMs), end: msToNs(endMs) };
    const step = pickStep(endMs - startMs);
    this.results.zone = this.state.tz;
    this.results.view = this.state.view;
    this.showRange();
    try {
      const stages = this.filterStages();
      const org = session.me.org;
      const list = this.fetchPage(stages, null, controller.signal);
      const counts = api.queryRange(org, [...stages, { type: "aggregate", function: "count", by: ["level"] }],
        { ...nsWindow, step: `${step}s` }, controller.signal);
      const [page, matrix] = await Promise.all([list, counts]);
      const buckets = bucketise(matrix.data.result, startMs, endMs, step);
      this.histogram.draw(buckets, this.state.tz, step);
      this.page = page;
      const total = page.total ?? buckets.total;
      const bound = page.exact === false ? "at least " : "";
      this.hits.textContent = `${bound}${formatNumber(total)} hit${total === 1 ? "" : "s"}`;
      this.hits.dataset.total = String(total);
      this.results.reset(page.rows);
      this.more.hidden = !page.more || page.rows.length >= CAP;
      const took = Math.round(performance.now() - started);
      announce(this.status, `${formatNumber(page.rows.length)} shown, ${formatTime(startMs, this.state.tz)} – ${formatTime(endMs, this.state.tz)} ${this.state.tz} (${took} ms)`);
      document.body.dataset.state = "ready";
      performance.mark("search-rendered");
      if (this.tail.running) this.startTail(msToNs(endMs));
      await this.fields.load(org, stages, nsWindow, (endMs - startMs) / 1000, page.rows, controller.signal);
    } catch (error) {
      if (error.name === "AbortError") return;
      document.body.dataset.state = "error";
      announce(this.status, error.message, "error");
    }
  }

  // One page of rows: KQL by cursor, a pipeline by offset (both under the same fixed window).
  async fetchPage(stages, after, signal) {
    const { startMs, endMs } = this.window;
    if (this.state.mode === "kql") {
      const body = after ? { filter: this.state.q, cursor: after, limit: PAGE } : { filter: this.state.q, from: msToNs(startMs), to: nsMinusOne(endMs), limit: PAGE };
      const answer = await api.query(body, signal);
      return { rows: answer.logs.map(fromEvent), total: answer.total, exact: answer.total_relation === "eq", more: !!answer.next_cursor, next: answer.next_cursor };
    }
    const offset = after || 0;
    const answer = await api.queryRange(session.me.org, stages, { start: msToNs(startMs), end: msToNs(endMs), limit: PAGE, offset }, signal);
    const rows = streamsToRows(answer.data.result);
    return { rows, total: null, more: rows.length === PAGE, next: offset + rows.length };
  }

  async loadMore() {
    this.more.disabled = true;
    try {
      const page = await this.fetchPage(this.filterStages(), this.page.next, this.controller.signal);
      const room = CAP - this.results.rows.length;
      this.results.add(page.rows.slice(0, room));
      this.page = { ...this.page, more: page.more, next: page.next };
      this.more.hidden = !page.more || this.results.rows.length >= CAP;
      announce(this.status, `${formatNumber(this.results.rows.length)} shown${this.results.rows.length >= CAP ? ` (the console stops at ${CAP}; narrow the query or range)` : ""}`);
    } catch (error) {
      announce(this.status, error.message, "error");
    } finally {
      this.more.disabled = false;
    }
  }

  toggleLive() {
    if (this.tail.running) { this.tail.stop(); this.tailShown("stopped"); announce(this.status, "Live tail stopped."); return; }
    if (this.state.mode !== "kql") { announce(this.status, "Live tail follows KQL queries.", "error"); return; }
    if (!this.state.range.rel) { this.state.range = { rel: "15m" }; this.showRange(); }
    this.startTail(msToNs(Date.now()));
    announce(this.status, `Live tail: new events appear at the top; the page keeps the newest ${formatNumber(CAP)}.`);
  }

  // From the newest row shown (the daemon replays anything newer), else from `fallbackNs`.
  startTail(fallbackNs) {
    this.tail.start(this.state.q, this.results.rows[0]?.ns ?? fallbackNs, this.results.rows.slice(0, 100));
  }

  tailShown(state, why) {
    const on = state !== "stopped";
    this.live.setAttribute("aria-pressed", String(on));
    this.live.textContent = on ? "Stop tail" : "Live tail";
    this.tailState.dataset.state = state;
    this.tailState.textContent = { connecting: "connecting…", live: "● live", dropped: `reconnecting (${why})`, stopped: why ? `stopped: ${why}` : "" }[state];
  }

  tailRows(rows) {
    this.results.add(rows, { atTop: true });
    if (this.results.rows.length > CAP) this.results.reset(this.results.rows.slice(0, CAP));
    const total = Number(this.hits.dataset.total || 0) + rows.length;
    this.hits.dataset.total = String(total);
    this.hits.textContent = `${formatNumber(total)} hit${total === 1 ? "" : "s"}`;
  }

  // Events around one: the nearest before (newest first from it) and after (oldest first), no filter.
  async context(row, box) {
    clear(box).append(h("p", {}, "Loading context…"));
    const ms = row.ms;
    try {
      const [before, after] = await Promise.all([
        api.query({ filter: "", from: msToNs(ms - CONTEXT_SPAN_MS), to: row.ns, limit: CONTEXT_ROWS + 1 }),
        api.queryRange(session.me.org, [], { start: (BigInt(row.ns) + 1n).toString(), end: msToNs(ms + CONTEXT_SPAN_MS), limit: CONTEXT_ROWS, direction: "forward" }),
      ]);
      const rows = [...streamsToRows(after.data.result), ...before.logs.map(fromEvent)];
      const list = h("ol", { class: "context-list", "aria-label": "Events around this one, newest first" });
      for (const item of rows) {
        const same = item.ns === row.ns && item.event.message === row.event.message;
        list.append(h("li", { class: same ? "current" : "" },
          h("span", { class: "time" }, formatTime(item.ms, this.state.tz, item.ns)), " ",
          h("span", { class: `level level-${levelName(item.event.level || "")}` }, safeText(item.event.level || "—")), " ",
          h("span", { class: "service" }, safeText(item.event.service || "")), " ", safeText(item.event.message)));
      }
      clear(box).append(list);
    } catch (error) {
      clear(box).append(h("p", { class: "status error" }, error.message));
    }
  }

  destroy() {
    if (this.controller) this.controller.abort();
    this.tail.stop();
  }
}

// query_range streams -> rows (labels become fields; the line is the message), newest first.
function streamsToRows(result) {
  const rows = [];
  for (const stream of result || []) {
    const { level = "", service = "", host = "", env = "", ...labels } = stream.stream;
    for (const [ns, line] of stream.values) {
      const ms = Number(BigInt(ns) / 1000000n);
      const iso = new Date(ms).toISOString().slice(0, 23) + ns.slice(-6) + "Z";
      rows.push({ ns, ms, event: { timestamp: iso, message: line, level, service, host, env, attributes: labels } });
    }
  }
  return rows.sort((a, b) => (BigInt(b.ns) > BigInt(a.ns) ? 1 : BigInt(b.ns) < BigInt(a.ns) ? -1 : 0));
}
