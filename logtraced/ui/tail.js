// Live tail. The transport is polling: every 2 s, POST /v1/logs/query from the newest event seen
// (inclusive, so events sharing its nanosecond are not lost; seen ones are skipped). The daemon's
// Server-Sent Events route (GET /v1/logs/tail) is not on this branch; when it lands, a transport
// with the same start/stop contract replaces `poll` here and nothing else changes.
export const TRANSPORT = "poll";
const INTERVAL_MS = 2000;
const SEEN_MAX = 5000;

const keyOf = (row) => `${row.ns}\u0000${row.event.service}\u0000${row.event.host}\u0000${row.event.message}`;

export class Tail {
  constructor({ fetchPage, onRows, onError }) {
    this.fetchPage = fetchPage;
    this.onRows = onRows;
    this.onError = onError;
    this.timer = null;
    this.seen = new Set();
  }

  // known: rows already shown, so the first poll (inclusive of fromNs) does not repeat them.
  start(fromNs, known = []) {
    this.stop();
    this.fromNs = fromNs;
    this.seen = new Set(known.map(keyOf));
    this.timer = setTimeout(() => this.tick(), INTERVAL_MS);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  async tick() {
    try {
      const rows = (await this.fetchPage(this.fromNs)).filter((row) => !this.seen.has(keyOf(row)));
      if (this.timer === null) return;
      for (const row of rows) this.seen.add(keyOf(row));
      if (this.seen.size > SEEN_MAX) this.seen = new Set([...this.seen].slice(-SEEN_MAX / 2));
      if (rows.length) {
        this.fromNs = rows[0].ns;
        this.onRows(rows);
      }
    } catch (error) {
      this.onError(error);
    }
    if (this.timer !== null) this.timer = setTimeout(() => this.tick(), INTERVAL_MS);
  }
}
