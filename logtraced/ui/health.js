// Health: the /v1/health figures in words (status and its reasons, ingestion, backlog, storage, indexer).
import { api } from "./api.js";
import { h, clear, announce, formatNumber, formatBytes } from "./dom.js";
import { safeText } from "./text.js";

const REFRESH_MS = 5000;

export class HealthPage {
  constructor(main) {
    this.main = main;
    this.status = h("p", { class: "status", role: "status", "aria-live": "polite" });
    this.body = h("div", { class: "health" });
    clear(main).append(h("h1", {}, "Health"), this.status, this.body);
    this.load();
  }

  async load() {
    try {
      const report = await api.health();
      this.render(report);
      announce(this.status, `Updated ${new Date().toISOString().slice(11, 19)} UTC; refreshes every ${REFRESH_MS / 1000} s.`);
      document.body.dataset.state = "ready";
    } catch (error) {
      if (error.body && error.body.status) this.render(error.body);
      else announce(this.status, error.message, "error");
    }
    this.timer = setTimeout(() => this.load(), REFRESH_MS);
  }

  render(r) {
    const ago = (s) => (s === null || s === undefined ? "no commit yet" : `${s.toFixed(1)} s ago`);
    const hours = Math.floor(r.uptime_seconds / 3600);
    const section = (title, pairs) => h("section", { class: "card" }, h("h2", {}, title),
      h("dl", {}, ...pairs.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v)))));
    clear(this.body).append(
      h("p", { class: `health-status ${r.status}` }, h("span", { class: "dot", "aria-hidden": "true" }), r.status),
      ...(r.reasons ? [h("ul", { class: "reasons" }, ...r.reasons.map((reason) => h("li", {}, safeText(reason))))] : []),
      h("div", { class: "cards" },
        section("Ingestion", [["Rate", `${formatNumber(r.ingestion_rps)} events/s (last minute)`], ["Events accepted", formatNumber(r.counters.events_accepted)],
          ["Bytes accepted", formatBytes(r.counters.bytes_accepted)], ["Parse failures", formatNumber(r.counters.parse_failures)],
          ["UDP dropped", formatNumber(r.counters.udp_dropped)], ["TCP connections", `${formatNumber(r.counters.tcp_connections)} open, ${formatNumber(r.counters.tcp_connections_total)} total`]]),
        section("Backlog", [["Waiting to be searchable", `${formatNumber(r.queue_depth)} events`], ["WAL lag", `${formatNumber(r.wal_lag.records)} records, ${formatBytes(r.wal_lag.bytes)}`],
          ["Events indexed", formatNumber(r.counters.events_indexed)], ["Expired on arrival", formatNumber(r.counters.events_expired)]]),
        section("Storage", [["Data directory", safeText(r.storage.data_dir)], ["Writable", r.storage.writable ? "yes" : "no"], ["Free", formatBytes(r.storage.free_bytes)]]),
        section("Indexer", [["Running", r.indexer.alive ? "yes" : "no"], ["Restarts", formatNumber(r.indexer.restarts)],
          ["Last commit", `${r.indexer.last_commit_ms} ms, ${ago(r.indexer.seconds_since_commit)}`], ["Workers", formatNumber(r.workers)],
          ["Uptime", `${hours} h ${Math.floor((r.uptime_seconds % 3600) / 60)} min`]])));
  }

  destroy() {
    clearTimeout(this.timer);
  }
}
