// Live tail over Server-Sent Events: GET /v1/logs/tail?filter=<KQL>&from=<ns>, read through
// fetch() with a streamed body, because EventSource cannot send the Authorization header and the
// key must never be put in a URL. After a drop (network, daemon restart) it reconnects with
// `from` set to the newest event it has, so the daemon replays what was missed; rows it already
// has (same nanosecond, service, host and message) are skipped at that seam. Rows reach the page
// in batches at most every BATCH_MS, so a busy stream cannot re-render the table per event.
import { tailStream } from "./api.js";
import { fromEvent } from "./rows.js";

export const TRANSPORT = "sse";
const BATCH_MS = 250;
const RETRY_MS = [1000, 2000, 5000, 10000, 30000];
const SEEN_MAX = 5000;

const keyOf = (row) => `${row.ns}\u0000${row.event.service}\u0000${row.event.host}\u0000${row.event.message}`;

// Splits an SSE byte stream (already decoded to text) into {event, data} messages.
export function sseMessages(buffer) {
  const messages = [];
  let cut;
  while ((cut = buffer.text.indexOf("\n\n")) >= 0) {
    const block = buffer.text.slice(0, cut);
    buffer.text = buffer.text.slice(cut + 2);
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) messages.push({ event, data: data.join("\n") });
  }
  return messages;
}

export class Tail {
  constructor({ onRows, onDropped, onState }) {
    this.onRows = onRows;
    this.onDropped = onDropped;
    this.onState = onState;
    this.controller = null;
    this.pending = [];
    this.timer = null;
  }

  get running() {
    return this.controller !== null;
  }

  // known: rows already shown (newest first), so the replay from `fromNs` does not repeat them.
  start(filter, fromNs, known = []) {
    this.stop();
    this.filter = filter;
    this.fromNs = fromNs;
    this.seen = new Set(known.map(keyOf));
    this.controller = new AbortController();
    this.failures = 0;
    this.connect(this.controller);
  }

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
    clearTimeout(this.timer);
    clearTimeout(this.retry);
    this.flush();
  }

  async connect(controller) {
    if (controller.signal.aborted) return;
    this.onState("connecting");
    try {
      const response = await tailStream({ filter: this.filter, from: this.fromNs }, controller.signal);
      this.failures = 0;
      this.onState("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const buffer = { text: "" };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer.text += value;
        for (const message of sseMessages(buffer)) this.receive(message);
      }
      if (controller.signal.aborted) return;
      this.onState("dropped", "the stream ended");
    } catch (error) {
      if (controller.signal.aborted || error.name === "AbortError") return;
      if (error.status === 401 || error.status === 403) { this.controller = null; this.onState("stopped", error.message); return; }
      this.onState("dropped", error.message);
    }
    const wait = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
    this.failures += 1;
    this.retry = setTimeout(() => this.connect(controller), wait);
  }

  receive({ event, data }) {
    if (event === "dropped") { this.onDropped(JSON.parse(data).dropped); return; }
    if (event !== "message") return;
    const row = fromEvent(JSON.parse(data));
    const key = keyOf(row);
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.seen.size > SEEN_MAX) this.seen = new Set([...this.seen].slice(-SEEN_MAX / 2));
    if (BigInt(row.ns) > BigInt(this.fromNs)) this.fromNs = row.ns;
    this.pending.push(row);
    if (!this.timer) this.timer = setTimeout(() => this.flush(), BATCH_MS);
  }

  // Events arrive oldest first; the page shows newest first.
  flush() {
    this.timer = null;
    if (!this.pending.length) return;
    const rows = this.pending.reverse();
    this.pending = [];
    this.onRows(rows);
  }
}
