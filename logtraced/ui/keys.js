// Settings > API Access: the keys of the signed-in admin key's organisation and environment.
// A new key's secret is shown once, with a copy button; revoking asks for confirmation first.
// "Last used" is the latest hour with requests in /v1/usage (the key list has no such column).
import { api, session } from "./api.js";
import { h, clear, announce } from "./dom.js";
import { safeText } from "./text.js";

const SCOPES = ["read:logs", "write:logs", "admin"];

export class KeysPage {
  constructor(main) {
    this.main = main;
    this.status = h("p", { class: "status", role: "status", "aria-live": "polite" });
    this.table = h("div", { class: "keys-box" });
    this.secretBox = h("div", { class: "secret-box", "aria-live": "polite" });
    const me = session.me;
    clear(main).append(h("h1", {}, "Settings › API Access"),
      h("p", { class: "help" }, `Keys of ${me.org} / ${me.environment}. Managing keys needs the admin scope.`));
    if (!me.scopes.includes("admin")) {
      main.append(h("p", { class: "status error" }, "This key has no admin scope, so it cannot list, create or revoke keys."));
      return;
    }
    main.append(this.form(), this.secretBox, this.status, this.table);
    this.load();
  }

  form() {
    const name = h("input", { id: "key-name", maxlength: 200, autocomplete: "off" });
    const tier = h("select", { id: "key-tier" }, ...Object.keys(session.me.tiers || {}).map((t) => h("option", { value: t }, t)));
    tier.value = session.me.tier;
    const boxes = SCOPES.map((scope) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "scope", value: scope, checked: scope === "write:logs" }), ` ${scope}`));
    const form = h("form", { class: "create-key", "aria-labelledby": "create-title" },
      h("h2", { id: "create-title" }, "Create a key"),
      h("label", { for: "key-name" }, "Name"), name,
      h("fieldset", {}, h("legend", {}, "Scopes"), ...boxes),
      h("label", { for: "key-tier" }, "Tier"), tier,
      h("button", { type: "submit", class: "primary" }, "Create key"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const scopes = [...form.querySelectorAll("input[name=scope]:checked")].map((box) => box.value);
      if (!scopes.length) { announce(this.status, "Choose at least one scope.", "error"); return; }
      try {
        const created = await api.createKey({ name: name.value.trim(), scopes, tier: tier.value });
        name.value = "";
        this.showSecret(created);
        this.load();
      } catch (error) {
        announce(this.status, error.message, "error");
      }
    });
    return form;
  }

  showSecret(created) {
    const secret = h("code", { class: "secret" }, created.secret);
    const copy = h("button", { type: "button", class: "copy" }, "Copy");
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(created.secret);
        copy.textContent = "Copied";
      } catch {
        getSelection().selectAllChildren(secret);
        copy.textContent = "Press Ctrl+C";
      }
    });
    const dismiss = h("button", { type: "button", on: { click: () => clear(this.secretBox) } }, "I have stored it");
    clear(this.secretBox).append(h("div", { class: "callout", role: "alert" },
      h("p", {}, "New key ", safeText(created.name || created.id), ": copy the secret now; it is shown only this once."),
      h("p", {}, secret, " ", copy, " ", dismiss)));
  }

  async load() {
    try {
      const [{ keys }, usage] = await Promise.all([api.keys(), api.usage({ from: "-7d" })]);
      const lastUsed = new Map();
      for (const row of usage.usage) {
        if (row.requests && (lastUsed.get(row.key_id) || "") < row.hour) lastUsed.set(row.key_id, row.hour);
      }
      this.render(keys, lastUsed);
      document.body.dataset.state = "ready";
    } catch (error) {
      announce(this.status, error.message, "error");
    }
  }

  render(keys, lastUsed) {
    const body = h("tbody");
    for (const key of keys) {
      const revoke = key.active && key.id !== session.me.key_id
        ? h("button", { type: "button", class: "danger revoke", "aria-label": `Revoke ${key.name || key.id}`, on: { click: () => this.revoke(key) } }, "Revoke")
        : h("span", { class: "muted" }, key.active ? "this key" : "revoked");
      body.append(h("tr", { class: key.active ? "" : "revoked", dataset: { id: key.id } },
        h("td", {}, h("code", {}, key.display_prefix)), h("td", {}, safeText(key.name)), h("td", {}, key.environment),
        h("td", {}, key.scopes.join(", ")), h("td", {}, key.tier), h("td", {}, key.created_at.replace("T", " ").replace("Z", " UTC")),
        h("td", {}, lastUsed.has(key.id) ? `hour of ${lastUsed.get(key.id).replace("T", " ").replace(":00:00Z", ":00 UTC")}` : "—"),
        h("td", {}, revoke)));
    }
    clear(this.table).append(h("table", { class: "data" },
      h("caption", {}, `${keys.length} key${keys.length === 1 ? "" : "s"} (revoked ones included)`),
      h("thead", {}, h("tr", {}, ...["Prefix", "Name", "Environment", "Scopes", "Tier", "Created", "Last used", ""].map((t) => h("th", { scope: "col" }, t)))),
      body));
  }

  async revoke(key) {
    const label = key.name ? `${key.name} (${key.display_prefix})` : key.display_prefix;
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, "Revoke this key?"),
      h("p", {}, safeText(label), ": every request with it will get 401 at once, and its access tokens stop working. This cannot be undone."),
      h("form", { method: "dialog" },
        h("button", { value: "cancel", class: "cancel" }, "Cancel"), " ",
        h("button", { value: "revoke", class: "danger confirm-revoke" }, "Revoke")));
    document.body.append(dialog);
    dialog.addEventListener("close", async () => {
      dialog.remove();
      if (dialog.returnValue !== "revoke") return;
      try {
        await api.revokeKey(key.id);
        announce(this.status, `Revoked ${label}.`);
        this.load();
      } catch (error) {
        announce(this.status, error.message, "error");
      }
    });
    dialog.showModal();
    dialog.querySelector(".cancel").focus();
  }
}
