// Insights ("what is new"): POST /v1/logs/insights with a KQL filter, a window ending now and a
// baseline before it. Patterns that appear only in the window ("new") and those whose hourly rate
// rose most against the baseline ("rising") are listed, errors first as the daemon orders them;
// each shows its template, counts and a real sample, and opens the Search page on that sample.
import { api } from "./api.js";
import { h, clear, announce, formatNumber } from "./dom.js";
import { levelName } from "./levels.js";
import { addClause, safeText } from "./text.js";

const WINDOWS = ["15m", "1h", "6h", "24h"];
const BASELINES = ["1h", "6h", "24h", "7d"];

// A KQL phrase matching the sample's text (quotes and backslashes escaped).
export function phrase(text) {
  return `"${String(text).replace(/[\\"]/g, "\\$&")}"`;
}

export class InsightsPage {
  constructor(main, params) {
    this.main = main;
    this.filter = h("input", { id: "insights-filter", type: "search", spellcheck: "false", placeholder: "KQL, e.g. service:payments (empty: everything)" });
    this.filter.value = params.get("q") || "";
    this.window = h("select", { id: "insights-window" }, ...WINDOWS.map((w) => h("option", { value: w }, `Last ${w}`)));
    this.window.value = WINDOWS.includes(params.get("window")) ? params.get("window") : "1h";
    this.baseline = h("select", { id: "insights-baseline" }, ...BASELINES.map((b) => h("option", { value: b }, `${b} before`)));
    this.baseline.value = BASELINES.includes(params.get("baseline")) ? params.get("baseline") : "24h";
    this.status = h("p", { class: "status", role: "status", "aria-live": "polite" });
    this.newList = h("div", { class: "insights-new" });
    this.risingList = h("div", { class: "insights-rising" });
    const form = h("form", { class: "querybar insights-form", role: "search", on: { submit: (e) => { e.preventDefault(); this.load(); } } },
      h("label", { for: "insights-filter", class: "sr-only" }, "Filter"), this.filter,
      h("label", { for: "insights-window" }, "Window"), this.window,
      h("label", { for: "insights-baseline" }, "Baseline"), this.baseline,
      h("button", { type: "submit", class: "primary" }, "Compare"));
    clear(main).append(h("h1", {}, "Insights: what is new"), form,
      h("p", { class: "help" }, "Message patterns of the window (ending now) against the baseline just before it: new ones never seen in the baseline, and rising ones by events per hour. Errors come first. Click a pattern to search for its sample."),
      this.status, h("h2", {}, "New"), this.newList, h("h2", {}, "Rising"), this.risingList);
    this.load();
  }

  async load() {
    const state = new URLSearchParams({ window: this.window.value, baseline: this.baseline.value });
    if (this.filter.value.trim()) state.set("q", this.filter.value.trim());
    history.replaceState(null, "", `#/insights?${state}`);
    if (this.controller) this.controller.abort();
    const controller = this.controller = new AbortController();
    document.body.dataset.state = "loading";
    announce(this.status, "Comparing…");
    const started = performance.now();
    try {
      const answer = await api.insights({ filter: this.filter.value.trim(), window: this.window.value, baseline: this.baseline.value }, controller.signal);
      this.render(this.newList, answer.new, false);
      this.render(this.risingList, answer.rising, true);
      announce(this.status, `${formatNumber(answer.new.length)} new, ${formatNumber(answer.rising.length)} rising over the last ${this.window.value} against the ${this.baseline.value} before${answer.sampled ? "; rates and baseline counts estimated from a sample" : ""} (${Math.round(performance.now() - started)} ms)`);
      document.body.dataset.state = "ready";
    } catch (error) {
      if (error.name === "AbortError") return;
      document.body.dataset.state = "error";
      announce(this.status, error.message, "error");
    }
  }

  render(container, items, rising) {
    if (!items.length) {
      clear(container).append(h("p", { class: "empty" }, rising ? "Nothing rose against the baseline." : "No pattern is new in this window."));
      return;
    }
    const body = h("tbody");
    for (const item of items) {
      const level = levelName(item.level || "");
      const open = h("button", { type: "button", class: "pattern-link", title: "Search for this sample",
        on: { click: () => this.search(item.sample) } }, safeText(item.pattern));
      body.append(h("tr", { class: `insight row-${level}` },
        h("td", {}, h("span", { class: `level level-${level}` }, safeText(item.level || "—"))),
        h("td", { class: "pattern" }, open, h("div", { class: "sample" }, "e.g. ", safeText(item.sample))),
        h("td", { class: "num", dataset: { col: "count" } }, formatNumber(item.count)),
        rising ? h("td", { class: "num", dataset: { col: "baseline" } }, formatNumber(item.baseline_count)) : null,
        rising ? h("td", { class: "num", dataset: { col: "ratio" } }, `×${item.ratio >= 10 ? Math.round(item.ratio) : item.ratio.toFixed(1)}`) : null));
    }
    const heads = ["Level", "Pattern and a sample", "In window", ...(rising ? ["In baseline", "Rate ratio"] : [])];
    clear(container).append(h("table", { class: "data insights" },
      h("caption", { class: "sr-only" }, rising ? "Rising patterns" : "New patterns"),
      h("thead", {}, h("tr", {}, ...heads.map((x) => h("th", { scope: "col" }, x)))), body));
  }

  search(sample) {
    const q = addClause(this.filter.value, phrase(sample));
    location.hash = `#/search?${new URLSearchParams({ q, range: this.window.value })}`;
  }

  destroy() {
    if (this.controller) this.controller.abort();
  }
}
