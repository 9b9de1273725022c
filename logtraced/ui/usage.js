// Analytics > API Consumption: /v1/usage per key and UTC hour. Ingestion and query requests are
// charted apart, each against its tier's hourly budget (a dashed line), next to the 429s and the
// events accepted past the budget (overflow); the table has every counter. An admin key sees
// every key of its organisation; any other key sees its own rows only.
import uPlot from "./vendor/uPlot-1.6.32.esm.js";
import { api, session } from "./api.js";
import { h, clear, announce, formatNumber, formatBytes } from "./dom.js";
import { safeText } from "./text.js";
import { formatShort } from "./time.js";

const RANGES = { "24h": "-24h", "7d": "-7d", "30d": "-30d" };
const PALETTE = ["#1e88e5", "#43a047", "#8e24aa", "#00897b", "#6d4c41", "#3949ab", "#c0ca33", "#5e35b1"];
const HOUR = 3600;
const HOUR_STEPS = [1, 2, 3, 6, 12, 24, 48, 168].map((n) => n * HOUR);
const KINDS = [["ingest", "ingest_requests", "ingest_per_hour", "Ingestion"], ["query", "query_requests", "query_per_hour", "Query"]];

export class UsagePage {
  constructor(main, params) {
    this.main = main;
    this.range = RANGES[params.get("range")] ? params.get("range") : "24h";
    this.keyId = params.get("key") || "";
    this.select = h("select", { id: "usage-range" }, ...Object.keys(RANGES).map((r) => h("option", { value: r }, `Last ${r}`)),
      h("option", { value: "custom" }, "From … to (UTC)"));
    // A chosen range: whole UTC hours typed as "2026-12-01T06:00", kept in the URL like the relative ones.
    this.fromInput = h("input", { type: "datetime-local", id: "usage-from", step: 3600, "aria-label": "From (UTC)" });
    this.toInput = h("input", { type: "datetime-local", id: "usage-to", step: 3600, "aria-label": "To (UTC)" });
    this.custom = h("span", { class: "absolute" }, this.fromInput, "–", this.toInput);
    if (params.get("from") && params.get("to")) {
      this.range = "custom";
      this.fromInput.value = params.get("from");
      this.toInput.value = params.get("to");
    }
    this.select.value = this.range;
    this.custom.hidden = this.range !== "custom";
    this.fromInput.addEventListener("change", () => this.choose());
    this.toInput.addEventListener("change", () => this.choose());
    this.keySelect = h("select", { id: "usage-key" }, h("option", { value: "" }, "All keys"));
    this.select.addEventListener("change", () => this.choose());
    this.keySelect.addEventListener("change", () => this.choose());
    this.status = h("p", { class: "status", role: "status", "aria-live": "polite" });
    this.totals = h("dl", { class: "totals" });
    this.charts = Object.fromEntries(KINDS.map(([kind, , , title]) =>
      [kind, h("div", { class: "chart", dataset: { chart: kind }, role: "img", "aria-label": `${title} requests per hour per key, with the hourly budget` })]));
    this.problemsChart = h("div", { class: "chart", dataset: { chart: "problems" }, role: "img", "aria-label": "429 rejections and overflowed events per hour" });
    this.table = h("div", { class: "usage-box" });
    this.plots = [];
    clear(main).append(h("h1", {}, "Analytics › API Consumption"),
      h("div", { class: "timebar" }, h("label", { for: "usage-range" }, "Range"), this.select, this.custom,
        h("label", { for: "usage-key" }, "Key"), this.keySelect),
      h("p", { class: "help" }, "Per key and UTC hour. Ingestion and query requests are counted against the key's tier's hourly budgets (dashed lines), refused ones included; 429s are the requests refused with 429 (a spent budget, or the daemon shedding load); overflow counts events accepted past the budget of a tier that allows it. Other requests (keys, usage, health, whoami) have no budget."),
      this.status, this.totals,
      h("h2", {}, "Ingestion requests per hour"), this.charts.ingest,
      h("h2", {}, "Query requests per hour"), this.charts.query,
      h("h2", {}, "429s and overflow per hour"), this.problemsChart,
      h("h2", {}, "Per key and hour"), this.table);
    this.load();
  }

  choose() {
    this.range = this.select.value;
    this.keyId = this.keySelect.value;
    this.custom.hidden = this.range !== "custom";
    const state = new URLSearchParams();
    if (this.range !== "custom") state.set("range", this.range);
    else {
      if (!this.fromInput.value || !this.toInput.value) {
        const now = Date.now();
        this.toInput.value = new Date(now).toISOString().slice(0, 14) + "00";
        this.fromInput.value = new Date(now - 24 * HOUR * 1000).toISOString().slice(0, 14) + "00";
      }
      if (this.fromInput.value >= this.toInput.value) { announce(this.status, "The range needs a start before its end.", "error"); return; }
      state.set("from", this.fromInput.value);
      state.set("to", this.toInput.value);
    }
    if (this.keyId) state.set("key", this.keyId);
    history.replaceState(null, "", `#/analytics/api-consumption?${state}`);
    this.load();
  }

  // The /v1/usage window: relative to now, or the chosen UTC moments (ISO-8601 without an offset is UTC).
  window() {
    if (this.range !== "custom") return { from: RANGES[this.range], to: "now" };
    return { from: this.fromInput.value, to: this.toInput.value };
  }

  async load() {
    document.body.dataset.state = "loading";
    announce(this.status, "Loading…");
    try {
      const me = session.me;
      const [usage, keys] = await Promise.all([
        api.usage({ ...this.window(), key_id: this.keyId || undefined }),
        me.scopes.includes("admin") ? api.keys().then((a) => a.keys) : Promise.resolve([{ id: me.key_id, display_prefix: me.key_prefix, name: "", tier: me.tier }]),
      ]);
      this.keys = new Map(keys.map((k) => [k.id, k]));
      this.fillKeys(keys);
      this.render(usage);
      announce(this.status, `${formatNumber(usage.usage.length)} key-hours from ${usage.from} to ${usage.to}`);
      document.body.dataset.state = "ready";
    } catch (error) {
      document.body.dataset.state = "error";
      announce(this.status, error.message, "error");
    }
  }

  fillKeys(keys) {
    clear(this.keySelect).append(h("option", { value: "" }, "All keys"),
      ...keys.map((k) => h("option", { value: k.id }, this.label(k.id))));
    this.keySelect.value = this.keyId;
    this.keySelect.disabled = keys.length < 2;
  }

  label(keyId) {
    const key = this.keys.get(keyId);
    if (!key) return keyId;
    return key.name ? `${key.name} (${key.display_prefix})` : key.display_prefix;
  }

  tier(keyId) {
    return (session.me.tiers || {})[(this.keys.get(keyId) || {}).tier] || null;
  }

  render(usage) {
    const t = usage.totals;
    clear(this.totals).append(...[["Ingestion requests", formatNumber(t.ingest_requests)], ["Query requests", formatNumber(t.query_requests)],
      ["Other requests", formatNumber(t.requests - t.ingest_requests - t.query_requests)], ["429s", formatNumber(t.throttled)],
      ["Overflow events", formatNumber(t.overflow_events)], ["Events", formatNumber(t.events)], ["Bytes", formatBytes(t.bytes)]]
      .map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", { dataset: { total: name.toLowerCase().replace(/ /g, "-") } }, value))));
    const rows = usage.usage;
    const hours = [...new Set(rows.map((r) => r.hour_epoch))].sort((a, b) => a - b);
    for (const plot of this.plots) plot.destroy();
    this.plots = [];
    const keyIds = [...new Set(rows.map((r) => r.key_id))];
    if (hours.length) {
      const cell = (id, hour, name) => rows.find((r) => r.key_id === id && r.hour_epoch === hour)?.[name] ?? null;
      for (const [kind, column, budgetName] of KINDS) {
        const series = keyIds.map((id, i) => ({ label: this.label(id), stroke: PALETTE[i % PALETTE.length], bars: true }));
        const data = keyIds.map((id) => hours.map((hour) => cell(id, hour, column)));
        // One dashed line per distinct budget among the keys shown (usually one tier).
        const budgets = [...new Set(keyIds.map((id) => this.tier(id)?.[budgetName]).filter((b) => b !== undefined))].sort((a, b) => a - b);
        for (const budget of budgets) {
          series.push({ label: `budget ${formatNumber(budget)}/h`, stroke: "#d32f2f", dash: [6, 4] });
          data.push(hours.map(() => budget));
        }
        this.plots.push(this.chart(this.charts[kind], hours, series, data));
      }
      const sum = (name) => hours.map((hour) => rows.filter((r) => r.hour_epoch === hour).reduce((a, r) => a + r[name], 0));
      this.plots.push(this.chart(this.problemsChart, hours,
        [{ label: "429s", stroke: "#d32f2f", bars: true }, { label: "overflow events", stroke: "#f29900", bars: true }], [sum("throttled"), sum("overflow_events")]));
    } else {
      for (const container of [...Object.values(this.charts), this.problemsChart]) clear(container);
      this.charts.ingest.append(h("p", { class: "empty" }, "No requests in this range."));
    }
    const body = h("tbody");
    for (const row of [...rows].sort((a, b) => b.hour_epoch - a.hour_epoch || a.key_id.localeCompare(b.key_id))) {
      const tier = this.tier(row.key_id);
      const against = (n, budget) => (tier ? `${formatNumber(n)} / ${formatNumber(budget)}` : formatNumber(n));
      body.append(h("tr", { dataset: { key: row.key_id } },
        h("td", {}, row.hour.replace("T", " ").replace(":00:00Z", ":00")), h("td", {}, safeText(this.label(row.key_id))),
        h("td", { class: "num", dataset: { col: "ingest" } }, against(row.ingest_requests, tier?.ingest_per_hour)),
        h("td", { class: "num", dataset: { col: "query" } }, against(row.query_requests, tier?.query_per_hour)),
        h("td", { class: "num", dataset: { col: "other" } }, formatNumber(row.requests - row.ingest_requests - row.query_requests)),
        h("td", { class: "num", dataset: { col: "throttled" } }, formatNumber(row.throttled)),
        h("td", { class: "num", dataset: { col: "overflow" } }, formatNumber(row.overflow_events)),
        h("td", { class: "num", dataset: { col: "rejections" } }, formatNumber(row.rejections)),
        h("td", { class: "num" }, formatNumber(row.events)), h("td", { class: "num" }, formatBytes(row.bytes))));
    }
    clear(this.table).append(h("table", { class: "data" },
      h("caption", { class: "sr-only" }, "Requests per key and hour against the hourly budgets"),
      h("thead", {}, h("tr", {}, ...["Hour (UTC)", "Key", "Ingestion / budget", "Query / budget", "Other", "429s", "Overflow events", "All rejections", "Events", "Bytes"]
        .map((x) => h("th", { scope: "col" }, x)))),
      body));
  }

  chart(container, hours, series, data) {
    clear(container);
    const width = Math.max(280, container.clientWidth - 2);
    const bars = uPlot.paths.bars({ size: [0.6, 40] });
    // Half an hour of margin each side, where bars are empty and budget lines still run.
    const xs = [hours[0] - HOUR / 2, ...hours, hours[hours.length - 1] + HOUR / 2];
    const padded = data.map((values, i) => (series[i].bars ? [null, ...values, null] : [values[0], ...values, values[0]]));
    return new uPlot({
      width, height: 180,
      scales: { x: { time: false, range: () => [xs[0], xs[xs.length - 1]] }, y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] } },
      axes: [{ values: (u, splits) => splits.map((s) => formatShort(s * 1000, "UTC")), space: 90, incrs: HOUR_STEPS }, { size: 60 }],
      series: [{ label: "hour", value: (u, v) => (v == null ? "—" : `${formatShort(v * 1000, "UTC")} UTC`) },
        ...series.map(({ bars: isBar, ...s }) => (isBar
          ? { ...s, width: 2, points: { show: true, size: 6 }, spanGaps: false, paths: bars, fill: `${s.stroke}55` }
          : { ...s, width: 1.5, points: { show: false } }))],
    }, [xs, ...padded], container);
  }
}
