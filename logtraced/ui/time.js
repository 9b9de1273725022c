// Time ranges and their display. The daemon speaks nanoseconds; the console keeps milliseconds
// (exact in a JS number) and writes nanosecond strings when a route wants them.

export const RELATIVE = { "5m": 300e3, "15m": 900e3, "1h": 3600e3, "6h": 21600e3, "24h": 86400e3, "7d": 604800e3 };
export const ZONES = ["UTC", "Europe/Moscow", "Europe/London", "America/New_York", "Asia/Tokyo"];
const localZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
if (localZone && !ZONES.includes(localZone)) ZONES.push(localZone);

// A range as kept in the URL: relative ("1h") or absolute (from/to in epoch ms).
export function resolve(range, now = Date.now()) {
  if (range.rel) return { startMs: now - RELATIVE[range.rel], endMs: now };
  return { startMs: Number(range.from), endMs: Number(range.to) };
}

export const msToNs = (ms) => `${Math.round(ms)}000000`;
export const nsToMs = (ns) => Number(BigInt(ns) / 1000000n);
export const nsMinusOne = (ms) => (BigInt(Math.round(ms)) * 1000000n - 1n).toString();

const formatters = new Map();
function formatter(zone, withDate) {
  const id = `${zone}|${withDate}`;
  if (!formatters.has(id)) {
    formatters.set(id, new Intl.DateTimeFormat("en-GB", {
      timeZone: zone, hourCycle: "h23",
      year: withDate ? "numeric" : undefined, month: withDate ? "2-digit" : undefined, day: withDate ? "2-digit" : undefined,
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    }));
  }
  return formatters.get(id);
}

function parts(ms, zone) {
  const out = {};
  for (const part of formatter(zone, true).formatToParts(new Date(ms))) out[part.type] = part.value;
  return out;
}

// "2026-11-22 05:46:55.210" in the zone; sub-millisecond digits come from the ns string when given.
export function formatTime(ms, zone, ns) {
  const p = parts(ms, zone);
  const frac = ns ? String(ns).slice(-9, -6) : String(ms % 1000).padStart(3, "0");
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}.${frac}`;
}

export function formatShort(ms, zone) {
  const p = parts(ms, zone);
  return `${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

// The offset of `zone` at `ms`, in ms (Moscow: +3 h).
export function zoneOffset(ms, zone) {
  const p = parts(ms, zone);
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

// "2026-11-22T05:46" typed in `zone` -> epoch ms (two passes settle a DST edge).
export function parseLocal(text, zone) {
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/.exec(text.trim());
  if (!m) return null;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  let ms = wall - zoneOffset(wall, zone);
  ms = wall - zoneOffset(ms, zone);
  return ms;
}

// epoch ms -> "2026-11-22T05:46" as `zone` shows it (the value of a datetime-local input).
export function toLocalInput(ms, zone) {
  const p = parts(ms, zone);
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

// A step giving at most ~`buckets` bars over the range, from the steps people read easily.
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
export function pickStep(spanMs, buckets = 90) {
  const seconds = spanMs / 1000;
  return STEPS.find((s) => seconds / s <= buckets) ?? Math.ceil(seconds / buckets / 86400) * 86400;
}
