// The console's shell: sign-in, the header (who the key is, sign out), and the router over the
// URL fragment (#/search, #/insights, #/settings/api-access, #/analytics/api-consumption, #/health).
import { api, session } from "./api.js";
import { h, clear, announce } from "./dom.js";
import { SearchPage } from "./search.js";
import { KeysPage } from "./keys.js";
import { UsagePage } from "./usage.js";
import { HealthPage } from "./health.js";
import { InsightsPage } from "./insights.js";

const main = document.getElementById("main");
const header = document.querySelector("header.top");
const whoami = header.querySelector(".whoami");
const PAGES = {
  "/search": ["search", SearchPage, "Search"],
  "/insights": ["insights", InsightsPage, "Insights"],
  "/settings/api-access": ["keys", KeysPage, "API Access"],
  "/analytics/api-consumption": ["usage", UsagePage, "API Consumption"],
  "/health": ["health", HealthPage, "Health"],
};
let current = null;

function signInForm(message) {
  header.hidden = true;
  const input = h("input", { type: "password", id: "key", autocomplete: "off", required: true, spellcheck: "false",
    placeholder: "lt_live_…", "aria-describedby": "key-help" });
  const status = h("p", { class: "status", role: "alert" });
  if (message) announce(status, message, "error");
  const form = h("form", { class: "signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to logtraced"),
    h("label", { for: "key" }, "API key"), input,
    h("p", { id: "key-help", class: "help" }, "The key stays in this tab's session storage and is sent only as an Authorization header. Reading logs needs read:logs; managing keys needs admin."),
    h("button", { type: "submit", class: "primary" }, "Sign in"), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      session.me = await api.whoami(input.value.trim());
      session.key = input.value.trim();
      input.value = "";
      route();
    } catch (error) {
      announce(status, error.status === 401 ? "That key is not valid or was revoked." : error.message, "error");
    }
  });
  clear(main).append(form);
  input.focus();
}

function signOut(message) {
  if (current && current.destroy) current.destroy();
  current = null;
  session.key = null;
  session.me = null;
  signInForm(message);
}

async function route() {
  if (!session.key) { signInForm(); return; }
  if (!session.me) {
    try { session.me = await api.whoami(); } catch (error) { signOut(error.message); return; }
  }
  const [path, query] = (location.hash.slice(1) || "/search").split("?");
  const entry = PAGES[path] || PAGES["/search"];
  const [name, Page, title] = entry;
  header.hidden = false;
  const me = session.me;
  whoami.textContent = `${me.org} / ${me.environment} · ${me.key_prefix} (${me.scopes.join(", ")})`;
  for (const link of header.querySelectorAll("nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${title} · logtraced`;
  if (current && current.destroy) current.destroy();
  current = new Page(main, new URLSearchParams(query || ""));
}

header.querySelector(".signout").addEventListener("click", () => signOut());
window.addEventListener("signed-out", (event) => signOut(`Signed out: ${event.detail}`));
window.addEventListener("hashchange", () => route());
route();
