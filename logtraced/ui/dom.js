// Element building that can only ever produce text: log content is untrusted, so nothing here
// parses HTML. Children are nodes or strings (strings become text nodes); attributes are set one
// by one and `on*` attributes are refused, so no handler can come from data.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = String(value);
    else if (name === "on") for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on")) throw new Error(`refusing inline handler ${name}`);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// A short-lived status line for screen readers and eyes alike.
export function announce(region, message, kind = "info") {
  region.className = `status ${kind}`;
  region.textContent = message;
}

export function formatNumber(n) {
  return new Intl.NumberFormat("en-US").format(n);
}

export function formatBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
