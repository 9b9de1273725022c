// Analytics > API Consumption: /v1/usage per key and UTC hour (requests, events, bytes,
// rejections, overflow) as charts and a table, next to each key's tier budget. An admin key sees
// every key of its organisation; any other key sees its own rows only.
import uPlot from "./vendor/uPlot-1.6.32.esm.js";
import { api, session } from "./api.js";
import { h, clear, announce, formatNumber, formatBytes } from "./dom.js";
import { safeText } from "./text.js";
import { formatShort } from "./time.js";

const RANGES = { "24h": "-24h", "7d": "-7d", "30d": "-30d" };
const PALETTE = ["#1e88e5", "#d32f2f", "#43a047", "#f29900", "#8e24aa", "#00897b", "#6d4c41", "#3949ab"];
const HOUR = 3600;

export class UsagePage {
  constructor(main, params) {
    this.main = main;
    this.range = RANGES[params.get("range")] ? params.get("range") : "24h";
    this.select = h("select", { id: "usage-range" }, ...Object.keys(RANGES).map((r) => h("option", { value: r }, `Last ${r}`)));
    this.select.value = this.range;
    this.select.addEventListener("change", () => { history.replaceState(null, "", `#/analytics/api-consumption?range=${this.select.value}`); this.range = this.select.value; this.load(); });
    this.status = h("p", { class: "status", role: "status", "aria-live": "polite" });
    this.totals = h("dl", { class: "totals" });
    this.requestsChart = h("div", { class: "chart", role: "img", "aria-label": "Requests per hour per key" });
    this.problemsChart = h("div", { class: "chart", role: "img", "aria-label": "Rejections and overflowed events per hour" });
    this.table = h("div", { class: "usage-box" });
    this.plots = [];
    clear(main).append(h("h1", {}, "Analytics › API Consumption"),
      h("div", { class: "timebar" }, h("label", { for: "usage-range" }, "Range"), this.select),
      h("p", { class: "help" }, "Per key and UTC hour. Requests count every authenticated call of the key (ingest, query and the rest); rejections are answers of 400 and above, 429s included; overflow counts events accepted past a limit. Budgets are the key's tier's hourly ingest and query limits."),
      this.status, this.totals,
      h("h2", {}, "Requests per hour"), this.requestsChart,
      h("h2", {}, "Rejections and overflow per hour"), this.problemsChart,
      h("h2", {}, "Per key and hour"), this.table);
    this.load();
  }

  async load() {
    announce(this.status, "Loading…");
    try {
      const me = session.me;
      const [usage, keys] = await Promise.all([
        api.usage({ from: RANGES[this.range], to: "now" }),
        me.scopes.includes("admin") ? api.keys().then((a) => a.keys) : Promise.resolve([{ id: me.key_id, display_prefix: me.key_prefix, name: "", tier: me.tier }]),
      ]);
      this.keys = new Map(keys.map((k) => [k.id, k]));
      this.render(usage);
      announce(this.status, `${formatNumber(usage.usage.length)} key-hours from ${usage.from} to ${usage.to}`);
      document.body.dataset.state = "ready";
    } catch (error) {
      announce(this.status, error.message, "error");
    }
  }

  label(keyId) {
    const key = this.keys.get(keyId);
    if (!key) return keyId;
    return key.name ? `${key.name} (${key.display_prefix})` : key.display_prefix;
  }

  budget(keyId) {
    const tier = (session.me.tiers || {})[(this.keys.get(keyId) || {}).tier];
    return tier ? `${formatNumber(tier.ingest_per_hour)} ingest / ${formatNumber(tier.query_per_hour)} query${tier.overflow ? ", overflow" : ""}` : "—";
  }

  render(usage) {
    const t = usage.totals;
    clear(this.totals).append(...[["Requests", formatNumber(t.requests)], ["Events", formatNumber(t.events)], ["Bytes", formatBytes(t.bytes)],
      ["Rejections", formatNumber(t.rejections)], ["Overflow events", formatNumber(t.overflow_events)]]
      .map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", { dataset: { total: name.toLowerCase().replace(" ", "-") } }, value))));
    const rows = usage.usage;
    const hours = [...new Set(rows.map((r) => r.hour_epoch))].sort((a, b) => a - b);
    for (const plot of this.plots) plot.destroy();
    this.plots = [];
    const keyIds = [...new Set(rows.map((r) => r.key_id))];
    if (hours.length) {
      const byKey = keyIds.map((id) => hours.map((hour) => rows.find((r) => r.key_id === id && r.hour_epoch === hour)?.requests ?? null));
      this.plots.push(this.chart(this.requestsChart, hours, keyIds.map((id, i) => ({ label: this.label(id), stroke: PALETTE[i % PALETTE.length] })), byKey));
      const sum = (name) => hours.map((hour) => rows.filter((r) => r.hour_epoch === hour).reduce((a, r) => a + r[name], 0));
      this.plots.push(this.chart(this.problemsChart, hours,
        [{ label: "rejections", stroke: "#d32f2f" }, { label: "overflow events", stroke: "#f29900" }], [sum("rejections"), sum("overflow_events")]));
    } else {
      clear(this.requestsChart).append(h("p", { class: "empty" }, "No requests in this range."));
      clear(this.problemsChart);
    }
    const body = h("tbody");
    for (const row of [...rows].sort((a, b) => b.hour_epoch - a.hour_epoch || a.key_id.localeCompare(b.key_id))) {
      body.append(h("tr", { dataset: { key: row.key_id } },
        h("td", {}, row.hour.replace("T", " ").replace(":00:00Z", ":00")), h("td", {}, safeText(this.label(row.key_id))),
        h("td", { class: "num" }, formatNumber(row.requests)), h("td", {}, this.budget(row.key_id)),
        h("td", { class: "num" }, formatNumber(row.events)), h("td", { class: "num" }, formatBytes(row.bytes)),
        h("td", { class: "num" }, formatNumber(row.rejections)), h("td", { class: "num" }, formatNumber(row.overflow_events))));
    }
    clear(this.table).append(h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ...["Hour (UTC)", "Key", "Requests", "Hourly budget", "Events", "Bytes", "Rejections", "Overflow events"].map((x) => h("th", { scope: "col" }, x)))),
      body));
  }

  chart(container, hours, series, data) {
    clear(container);
    const width = Math.max(300, container.clientWidth - 2);
    return new uPlot({
      width, height: 180,
      scales: { x: { time: false, range: () => [hours[0] - HOUR / 2, hours[hours.length - 1] + HOUR / 2] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [{ values: (u, splits) => splits.map((s) => formatShort(s * 1000, "UTC")), space: 90 }, { size: 50 }],
      series: [{ label: "hour", value: (u, v) => (v == null ? "—" : `${formatShort(v * 1000, "UTC")} UTC`) },
        ...series.map((s) => ({ ...s, width: 2, points: { show: true, size: 6 }, spanGaps: false, paths: uPlot.paths.bars({ size: [0.6, 40] }), fill: `${s.stroke}55` }))],
    }, [hours, ...data], container);
  }
}
