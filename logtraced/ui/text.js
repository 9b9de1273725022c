// Untrusted text made visible as text. Bidirectional overrides and zero-width characters can make
// a log line look like something else, so they are shown as marked code points instead of acting.
import { h } from "./dom.js";

const INVISIBLE = /[\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/g;

export function safeText(value) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  const bdi = document.createElement("bdi");
  let last = 0;
  for (const match of text.matchAll(INVISIBLE)) {
    if (match.index > last) bdi.append(document.createTextNode(text.slice(last, match.index)));
    const code = match[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
    bdi.append(h("span", { class: "cc", title: "invisible or direction-changing character" }, `U+${code}`));
    last = match.index + match[0].length;
  }
  if (last < text.length) bdi.append(document.createTextNode(text.slice(last)));
  return bdi;
}

// A KQL clause matching `value` in `field` exactly (quoted, with \ and " escaped).
export function kqlClause(field, value, exclude) {
  const name = field.replace(/([\\():<>"*\s])/g, "\\$1");
  const quoted = `"${String(value).replace(/[\\"]/g, "\\$&")}"`;
  return `${exclude ? "not " : ""}${name}:${quoted}`;
}

export function addClause(query, clause) {
  const q = query.trim();
  if (!q) return clause;
  return /\bor\b/i.test(q) ? `(${q}) and ${clause}` : `${q} and ${clause}`;
}
