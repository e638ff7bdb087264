// User provisioning: the SCIM base URL and token for the site's identity
// provider, and what idbridge does in the site with what it sends (SPEC
// sections 4 and 6). The token is shown once, right after it is made;
// the API never returns it again.

import * as ui from "./ui.js";
import { initSync, initDirectory } from "./provisioning-sync.js";

const productNames = {
  "jira-software": "Jira Software",
  "jira-servicedesk": "Jira Service Management",
  "jira-core": "Jira Work Management",
  "jira-product-discovery": "Jira Product Discovery",
  "confluence": "Confluence",
};

// describeProvisioning says where provisioning stands, for the overview.
export function describeProvisioning(p) {
  if (!p || !p.enabled) {
    return { lozenge: "", status: "Off", detail: "Generate a token to let your identity provider provision users and groups." };
  }
  const d = p.directory || { users: 0, groups: 0 };
  return {
    lozenge: "success", status: "On",
    detail: d.users + (d.users === 1 ? " user" : " users") + " and " + d.groups + (d.groups === 1 ? " group" : " groups") + " provisioned so far.",
  };
}

function choice(name, value, label, description, checked, type = "radio") {
  const id = "pv-" + name + "-" + value;
  return ui.h("div", { class: "choice" },
    ui.h("input", { type, name, id, value, checked, "aria-describedby": description ? id + "-help" : null }),
    ui.h("label", { for: id }, label),
    description ? ui.h("p", { class: "help", id: id + "-help" }, description) : null);
}

export default {
  id: "provisioning",

  init(ctx) {
    const { api, store } = ctx;
    const current = document.getElementById("pv-current");
    const baseURL = document.getElementById("pv-base-url");
    const generate = document.getElementById("pv-generate");
    const generateHelp = document.getElementById("pv-generate-help");
    const tokenStatus = document.getElementById("pv-token-status");
    const tokenCard = document.getElementById("pv-token");
    const tokenValue = document.getElementById("pv-token-value");
    const form = document.getElementById("pv-form");
    const status = document.getElementById("pv-status");
    const disable = document.getElementById("pv-disable");
    const disableCancel = document.getElementById("pv-disable-cancel");
    const disableStatus = document.getElementById("pv-disable-status");
    let settings = null;
    let confirming = false;

    function renderChoices(p) {
      ui.fill(document.getElementById("pv-deactivation-choices"),
        (p.deactivationOptions || []).map((o) => choice("deactivation", o.value, o.label, o.description, o.value === p.deactivation)));
      ui.fill(document.getElementById("pv-provisionAs-choices"),
        (p.provisionAsOptions || []).map((o) => choice("provisionAs", o.value, o.label, o.description, o.value === p.provisionAs)));
      ui.fill(document.getElementById("pv-products-choices"),
        (p.availableProducts || []).map((key) => choice("products", key, productNames[key] || key, "", (p.products || []).includes(key), "checkbox")));
    }

    function render(entry) {
      if (entry.error) {
        ui.fill(current, ui.banner("error", "The provisioning settings could not be loaded.", entry.error.message));
        return;
      }
      const first = settings === null;
      settings = entry.value;
      const d = describeProvisioning(settings);
      const facts = [ui.h("p", { class: "card-title" }, "Provisioning ", ui.lozenge(d.lozenge, d.status))];
      facts.push(ui.h("p", {}, d.detail));
      if (settings.enabled && settings.tokenCreatedAt) {
        facts.push(ui.h("p", { class: "help" }, "Current token made ", ui.timeEl(settings.tokenCreatedAt), "."));
      }
      ui.update(current, facts);
      baseURL.value = settings.baseUrl || "";
      ui.update(generate, settings.enabled ? "Generate a new token" : "Generate token");
      ui.update(generateHelp, settings.enabled
        ? "The current token stops working at once: update your identity provider with the new one."
        : "Turns provisioning on.");
      disable.hidden = !settings.enabled;
      if (first) {
        renderChoices(settings);
        document.getElementById("pv-deletionThreshold").value = String(settings.deletionThreshold ?? 10);
      }
    }

    store.on("provisioning", render);
    this.sync = initSync(ctx);
    this.directory = initDirectory(ctx);

    baseURL.addEventListener("focus", () => baseURL.select());
    tokenValue.addEventListener("focus", () => tokenValue.select());

    generate.addEventListener("click", async () => {
      if (ui.isBusy(generate)) return;
      const restore = ui.busy(generate, "Generating…");
      ui.fill(tokenStatus);
      try {
        const res = await api.post("/provisioning/token", {});
        tokenValue.value = res.token;
        baseURL.value = res.baseUrl;
        tokenCard.hidden = false;
        ui.fill(tokenStatus, ui.banner("success", "A new token is ready.", "Copy it below; it is shown only this once."));
        tokenValue.focus();
        store.load("provisioning", true);
      } catch (err) {
        ui.fill(tokenStatus, ui.banner("error", "No token was made.", err.message));
      } finally {
        restore();
      }
    });

    document.getElementById("pv-copy").addEventListener("click", async () => {
      tokenValue.focus();
      tokenValue.select();
      try {
        await navigator.clipboard.writeText(tokenValue.value);
        ui.fill(tokenStatus, ui.banner("success", "Copied.", "Paste the token into your identity provider."));
      } catch (err) {
        ui.fill(tokenStatus, ui.banner("info", "The token is selected.", "Press Ctrl+C (⌘C on a Mac) to copy it."));
      }
    });

    document.getElementById("pv-token-done").addEventListener("click", () => {
      tokenValue.value = "";
      tokenCard.hidden = true;
      ui.fill(tokenStatus);
      generate.focus();
    });

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const saveBtn = document.getElementById("pv-save");
      if (ui.isBusy(saveBtn)) return;
      ui.clearErrors(form);
      const picked = (name) => Array.from(form.querySelectorAll("input[name=" + name + "]:checked")).map((i) => i.value);
      const body = { products: picked("products") };
      const [deactivation] = picked("deactivation");
      const [provisionAs] = picked("provisionAs");
      if (deactivation) body.deactivation = deactivation;
      if (provisionAs) body.provisionAs = provisionAs;
      const threshold = document.getElementById("pv-deletionThreshold");
      if (threshold.value.trim() !== "") {
        const n = Number(threshold.value);
        if (!Number.isInteger(n) || n < 0 || n > 100) {
          ui.setFieldError(threshold, "Enter a whole percentage from 0 (no brake) to 100.");
          ui.fill(status, ui.banner("error", "Nothing was saved.", "Fix the problem marked above, then save again."));
          ui.focusFirstError(form);
          return;
        }
        body.deletionThreshold = n;
      }
      const restore = ui.busy(saveBtn, "Saving…");
      try {
        store.set("provisioning", await api.put("/provisioning", body));
        ui.fill(status, ui.banner("success", "Saved.", "idbridge applies these settings to the next changes your identity provider sends."));
      } catch (err) {
        const control = err.field ? document.getElementById("pv-" + err.field) : null;
        if (control && ui.setFieldError(control, err.message)) {
          ui.fill(status, ui.banner("error", "Nothing was saved.", "Fix the problem marked above, then save again."));
          ui.focusFirstError(form);
        } else {
          ui.fill(status, ui.banner("error", "Nothing was saved.", err.message));
        }
      } finally {
        restore();
      }
    });

    function endConfirm() {
      confirming = false;
      disableCancel.hidden = true;
      ui.update(disable, "Turn provisioning off");
    }

    disableCancel.addEventListener("click", () => {
      endConfirm();
      disable.focus();
    });

    disable.addEventListener("click", async () => {
      if (ui.isBusy(disable)) return;
      if (!confirming) {
        confirming = true;
        disableCancel.hidden = false;
        ui.update(disable, "Turn off and revoke the token");
        ui.fill(disableStatus, ui.banner("warning", "Turn provisioning off?", "Your identity provider’s requests will be refused until you generate a new token."));
        return;
      }
      const restore = ui.busy(disable, "Turning off…");
      try {
        store.set("provisioning", await api.put("/provisioning", { enabled: false }));
        tokenValue.value = "";
        tokenCard.hidden = true;
        ui.fill(tokenStatus);
        ui.fill(disableStatus, ui.banner("success", "Provisioning is off.", "The token no longer works. The directory is kept."));
      } catch (err) {
        ui.fill(disableStatus, ui.banner("error", "Provisioning is still on.", err.message));
      } finally {
        restore();
        endConfirm();
      }
    });
  },

  show(ctx, first) {
    if (first) ctx.store.load("provisioning");
    if (this.sync) this.sync.show();
    if (first && this.directory) this.directory.load(false);
  },
};
