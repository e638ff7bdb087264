// Service account: the credentials idbridge uses to act on the site.
// Secrets are write-only: the form never holds a saved secret, only its
// hint (••••1a2b); a secret left empty keeps the stored one.

import * as ui from "./ui.js";

export const kindTitles = {
  oauth_client: "Service account (OAuth 2.0 client credentials)",
  api_token: "API token of a user account",
  scoped_token: "Scoped API token",
};

const usesToken = (kind) => kind === "api_token" || kind === "scoped_token";
const usesCloudID = (kind) => kind === "scoped_token" || kind === "oauth_client";

// allPassed is the status message of a test whose every check passed
// (app/account).
const allPassed = "All checks passed.";

// WARN_DAYS is how long before an expiry the page warns (SPEC section 5).
const WARN_DAYS = 14;

// A hint is what the API shows of a stored secret: "••••" and its last
// four characters ("••••" alone for a secret too short to give any away).
// hintEl shows it, and reads it out in words to a screen reader.
function hintEl(hint) {
  const tail = hint.replace(/^•+/, "");
  return ui.h("span", { class: "mono" },
    ui.h("span", { "aria-hidden": "true" }, hint),
    ui.h("span", { class: "visually-hidden" }, tail ? "stored, ending in " + tail.split("").join(" ") : "stored"));
}

function expiryPhrase(days) {
  if (days === 0) return "today";
  if (days === 1) return "tomorrow";
  return "in " + days + " days";
}

// describeAccount says in words where the saved service account stands,
// for the overview and this section: a lozenge, a status, a sentence, and
// the alerts worth a banner.
export function describeAccount(ctx, sa) {
  if (!sa || !sa.configured || !sa.kind) {
    return {
      none: true, lozenge: "", status: "Not set up",
      detail: "User provisioning and customer sign-in need a service account to act on your site.",
      alerts: [],
    };
  }
  const alerts = [];
  const secret = sa.kind === "oauth_client" ? "client secret" : "API token";
  const days = ui.daysUntil(sa.expiresAt);
  let d;
  if (sa.status === "invalid") {
    d = {
      lozenge: "danger", status: "Invalid",
      detail: "Atlassian refused these credentials" + (sa.checkedAt ? " on " + ui.formatDateTime(sa.checkedAt) : "") + ". Work that needs them is paused, not lost, until you save working ones.",
    };
    alerts.push({ kind: "error", title: "The service account’s credentials no longer work.", text: (sa.statusMessage ? sa.statusMessage + " " : "") + "Provisioning and customer sign-in wait until you save working credentials; nothing is lost." });
  } else if (days !== null && days < 0) {
    d = { lozenge: "danger", status: "Expired", detail: "The " + secret + " expired on " + ui.formatDate(sa.expiresAt, true) + ". Create a new one and save it here." };
    alerts.push({ kind: "error", title: "The service account’s " + secret + " has expired.", text: "It expired on " + ui.formatDate(sa.expiresAt, true) + ". Create a new one and save it to resume provisioning and customer sign-in." });
  } else if (sa.status === "ok" && sa.statusMessage && sa.statusMessage !== allPassed) {
    // Atlassian accepted the credentials, but a check failed (the account
    // is not an administrator, say): it works, within limits.
    d = { lozenge: "warning", status: "Limited", detail: sa.statusMessage };
  } else if (sa.status === "ok") {
    d = { lozenge: "success", status: "Working", detail: "The last check" + (sa.checkedAt ? " (" + ui.formatDateTime(sa.checkedAt) + ")" : "") + " worked." };
  } else {
    d = { lozenge: "", status: "Not tested", detail: "Saved, but not tested yet. Run Test connection to check it." };
  }
  if (days !== null && days >= 0 && days <= WARN_DAYS) {
    d.lozenge = d.lozenge === "danger" ? "danger" : "warning";
    if (d.status === "Working" || d.status === "Not tested") d.status = "Expires soon";
    d.detail = "The " + secret + " expires " + expiryPhrase(days) + " (" + ui.formatDate(sa.expiresAt, true) + "). " + d.detail;
    alerts.push({ kind: "warning", title: "The service account’s " + secret + " expires " + expiryPhrase(days) + ".", text: "Create a new one before " + ui.formatDate(sa.expiresAt, true) + " and save it here, so provisioning and customer sign-in keep working." });
  }
  const keyDays = ui.daysUntil(sa.orgAdminKeyExpiresAt);
  if (sa.orgAdminKeyHint && keyDays !== null && keyDays <= WARN_DAYS) {
    alerts.push(keyDays < 0
      ? { kind: "error", title: "The organization admin API key has expired.", text: "idbridge cannot suspend or restore managed accounts until you save a new key." }
      : { kind: "warning", title: "The organization admin API key expires " + expiryPhrase(keyDays) + ".", text: "Create a new key before " + ui.formatDate(sa.orgAdminKeyExpiresAt, true) + " and save it here." });
  }
  d.alerts = alerts;
  return d;
}

// Expiry dates are whole days: the API takes YYYY-MM-DD (the end of that
// day in UTC) and answers the time, whose UTC day is the date to show.
function toDateInput(value) {
  const d = ui.parseDate(value);
  return d ? d.toISOString().slice(0, 10) : "";
}

function fromDateInput(value) {
  if (!value) return null;
  return /^\d{4}-\d{2}-\d{2}$/.test(value) ? value : undefined;
}

export default {
  id: "service-account",

  init(ctx) {
    const { api, store, product } = ctx;
    const form = document.getElementById("sa-form");
    const current = document.getElementById("sa-current");
    const status = document.getElementById("sa-status");
    const result = document.getElementById("sa-test-result");
    const saveBtn = document.getElementById("sa-save");
    const testBtn = document.getElementById("sa-test");
    const kindSet = document.getElementById("sa-kind");
    const input = (name) => document.getElementById("sa-" + name);
    const textNames = ["email", "cloudId", "clientId", "orgId"];
    const secretNames = ["token", "clientSecret", "orgAdminKey"];
    const dateNames = ["expiresAt", "orgAdminKeyExpiresAt"];
    let saved = null; // the last answer of GET/PUT, null when none
    let loaded = false;
    let baseline = ""; // the form as last filled from saved

    const selectedKind = () => {
      const r = form.querySelector("input[name=kind]:checked");
      return r ? r.value : "";
    };

    function snapshot() {
      const parts = [selectedKind()];
      for (const n of textNames.concat(dateNames)) parts.push(input(n).value.trim());
      for (const n of secretNames) parts.push(input(n).value);
      parts.push(String(input("clearOrgAdminKey").checked));
      return JSON.stringify(parts);
    }
    const dirty = () => loaded && snapshot() !== baseline;

    function showKindFields() {
      const kind = selectedKind();
      for (const f of form.querySelectorAll(".field[data-kinds]")) {
        f.hidden = !kind || !f.dataset.kinds.split(" ").includes(kind);
      }
      // Which hint fits the token field depends on the kind chosen.
      updateHints();
    }

    function updateHints() {
      const kind = selectedKind();
      const hint = saved && saved.kind === kind ? saved.tokenHint : "";
      ui.update(document.getElementById("sa-token-help"),
        hint && usesToken(kind) ? "A token is stored (" + hint + "). Leave this empty to keep it, or paste a new one." : "Paste the token here. It is never shown again.");
      ui.update(document.getElementById("sa-clientSecret-help"),
        hint && kind === "oauth_client" ? "A secret is stored (" + hint + "). Leave this empty to keep it, or paste a new one." : "Paste the secret here. It is never shown again.");
      const keyHint = saved && saved.orgAdminKeyHint;
      ui.update(document.getElementById("sa-orgAdminKey-help"),
        keyHint ? "A key is stored (" + keyHint + "). Leave this empty to keep it." : "Not set. Paste a key to let idbridge suspend and restore managed accounts.");
      document.getElementById("sa-clearOrgAdminKey-field").hidden = !keyHint;
    }

    // fillForm sets the form from the saved account (secrets stay empty).
    function fillForm() {
      const kind = saved && saved.kind ? saved.kind : "oauth_client";
      const radio = document.getElementById("sa-kind-" + kind);
      if (radio) radio.checked = true;
      input("email").value = (saved && saved.email) || "";
      input("cloudId").value = (saved && saved.cloudId) || ctx.cloudID;
      input("clientId").value = (saved && saved.clientId) || "";
      input("orgId").value = (saved && saved.orgId) || "";
      input("expiresAt").value = toDateInput(saved && saved.expiresAt);
      input("orgAdminKeyExpiresAt").value = toDateInput(saved && saved.orgAdminKeyExpiresAt);
      for (const n of secretNames) input(n).value = "";
      input("clearOrgAdminKey").checked = false;
      ui.clearErrors(form);
      showKindFields();
      baseline = snapshot();
    }

    function renderCurrent(entry) {
      if (entry.error) {
        ui.update(current, ui.banner("error", "The saved credentials could not be loaded.", entry.error.message));
        return;
      }
      const sa = entry.value;
      const d = describeAccount(ctx, sa);
      if (d.none) {
        ui.update(current, ui.h("div", { class: "empty-state" },
          ui.h("p", { class: "empty-state-title" }, "No service account yet"),
          ui.h("p", {}, "Choose a type of credentials below, fill it in and save. " + d.detail)));
        return;
      }
      const facts = ui.h("dl", { class: "facts" });
      const fact = (term, ...value) => facts.append(ui.h("dt", {}, term), ui.h("dd", {}, ...value));
      if (usesToken(sa.kind)) fact("Account", sa.email || "");
      if (sa.kind === "oauth_client") fact("Client ID", ui.h("span", { class: "mono" }, sa.clientId || ""));
      fact(sa.kind === "oauth_client" ? "Client secret" : "API token", sa.tokenHint ? hintEl(sa.tokenHint) : "not stored: enter it again");
      if (sa.expiresAt) {
        const days = ui.daysUntil(sa.expiresAt);
        fact("Expires", ui.timeEl(sa.expiresAt, "utc-date"), days !== null && days >= 0 && days <= WARN_DAYS ? [" ", ui.lozenge("warning", expiryPhrase(days))] : null, days !== null && days < 0 ? [" ", ui.lozenge("danger", "expired")] : null);
      } else {
        fact("Expires", "not recorded");
      }
      if (usesCloudID(sa.kind) && sa.cloudId) fact("Cloud ID", ui.h("span", { class: "mono" }, sa.cloudId));
      fact("Organization admin API key", sa.orgAdminKeyHint ? hintEl(sa.orgAdminKeyHint) : "not set");
      fact("Organization ID", sa.orgId ? ui.h("span", { class: "mono" }, sa.orgId) : "not set");
      // The banner above already says why invalid credentials fail.
      const outcome = sa.status === "invalid" ? "Atlassian refused the credentials." : sa.statusMessage;
      if (sa.checkedAt || outcome) fact("Last check", sa.checkedAt ? ui.timeEl(sa.checkedAt) : null, outcome ? [sa.checkedAt ? ": " : "", outcome] : null);
      if (sa.updatedAt) fact("Saved", ui.timeEl(sa.updatedAt));
      ui.update(current,
        ui.h("p", { class: "card-title" }, kindTitles[sa.kind] || sa.kind, ui.lozenge(d.lozenge, d.status)),
        d.alerts.length ? ui.h("div", { class: "stack" }, d.alerts.map((a) => ui.banner(a.kind, a.title, a.text))) : null,
        facts);
    }

    store.on("service-account", (entry) => {
      renderCurrent(entry);
      if (entry.error) return;
      const wasDirty = dirty();
      saved = entry.value && entry.value.configured && entry.value.kind ? entry.value : null;
      // Keep what the admin is typing; refresh everything else.
      if (!wasDirty) fillForm();
      else updateHints();
      loaded = true;
    });

    for (const r of form.querySelectorAll("input[name=kind]")) {
      r.addEventListener("change", () => {
        ui.clearFieldError(kindSet);
        showKindFields();
      });
    }
    for (const el of form.querySelectorAll(".input")) {
      el.addEventListener("input", () => ui.clearFieldError(el));
    }

    // validate checks what the browser can check; the server checks again
    // and has the final word.
    function validate(kind) {
      const problems = [];
      const need = (name, message) => {
        if (input(name).value.trim() === "") problems.push([input(name), message]);
      };
      if (!kind) {
        problems.push([kindSet, "Choose the type of credentials."]);
        return problems;
      }
      const sameKind = saved && saved.kind === kind && saved.tokenHint;
      if (usesToken(kind)) {
        const email = input("email").value.trim();
        if (email === "") problems.push([input("email"), "Enter the email address of the account the token belongs to."]);
        else if (!ui.isEmail(email)) problems.push([input("email"), "Enter an email address like name@example.com."]);
        if (!sameKind && input("token").value.trim() === "") problems.push([input("token"), "Paste the API token. None is stored for this type yet."]);
      }
      if (usesCloudID(kind)) need("cloudId", "Enter your site’s cloud ID.");
      if (kind === "oauth_client") {
        need("clientId", "Enter the client ID of the service account.");
        if (!sameKind && input("clientSecret").value.trim() === "") problems.push([input("clientSecret"), "Paste the client secret. None is stored for this type yet."]);
      }
      for (const n of dateNames) {
        if (input(n).value && fromDateInput(input(n).value) === undefined) problems.push([input(n), "Enter a valid date."]);
      }
      return problems;
    }

    function body(kind) {
      const b = { kind };
      if (usesToken(kind)) {
        b.email = input("email").value.trim();
        if (input("token").value.trim() !== "") b.token = input("token").value.trim();
      }
      if (usesCloudID(kind)) b.cloudId = input("cloudId").value.trim();
      if (kind === "oauth_client") {
        b.clientId = input("clientId").value.trim();
        if (input("clientSecret").value.trim() !== "") b.clientSecret = input("clientSecret").value.trim();
      }
      b.expiresAt = fromDateInput(input("expiresAt").value);
      b.orgId = input("orgId").value.trim();
      if (input("orgAdminKey").value.trim() !== "") {
        b.orgAdminKey = input("orgAdminKey").value.trim();
        b.orgAdminKeyExpiresAt = fromDateInput(input("orgAdminKeyExpiresAt").value);
      } else if (input("clearOrgAdminKey").checked) {
        b.clearOrgAdminKey = true;
      } else if (saved && saved.orgAdminKeyHint) {
        b.orgAdminKeyExpiresAt = fromDateInput(input("orgAdminKeyExpiresAt").value);
      }
      return b;
    }

    // showServerError puts the server's sentence next to the field it
    // names, or next to the button when it names none.
    function showServerError(err, where) {
      const control = err.field === "kind" ? kindSet : err.field ? input(err.field) : null;
      if (control && !control.closest("[hidden]") && ui.setFieldError(control, err.message)) {
        if (control.closest("details")) control.closest("details").open = true;
        ui.fill(where, ui.banner("error", "Nothing was saved.", "Fix the problem marked above, then save again."));
        ui.focusFirstError(form);
        return;
      }
      ui.fill(where, ui.banner("error", "Nothing was saved.", err.message));
    }

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (ui.isBusy(saveBtn)) return;
      ui.clearErrors(form);
      ui.fill(status);
      const kind = selectedKind();
      const problems = validate(kind);
      if (problems.length) {
        for (const [control, message] of problems) ui.setFieldError(control, message);
        ui.fill(status, ui.banner("error", "Nothing was saved.", problems.length === 1 ? "Fix the problem marked above." : "Fix the " + problems.length + " problems marked above."));
        ui.focusFirstError(form);
        return;
      }
      const restore = ui.busy(saveBtn, "Saving…");
      try {
        const answer = await api.put("/service-account", body(kind));
        loaded = false; // the answer replaces the form, typed secrets included
        store.set("service-account", answer);
        ui.fill(result);
        ui.fill(status, ui.banner("success", "Saved.", "Run Test connection to check that " + product + " accepts these credentials."));
      } catch (err) {
        showServerError(err, status);
      } finally {
        restore();
      }
    });

    function renderTest(answer) {
      const checks = Array.isArray(answer && answer.checks) ? answer.checks : [];
      const failed = checks.filter((c) => !c.ok);
      const summary = answer && answer.ok
        ? ui.banner("success", "The connection works.", "Everything idbridge needs is in place.")
        : ui.banner("error", "The connection does not fully work.", failed.length
          ? (failed.length === 1 ? "One check failed" : failed.length + " checks failed") + ". Fix what is marked below, save, and test again."
          : "idbridge could not confirm that the credentials work.");
      const list = ui.h("ul", { class: "checklist", "aria-label": "Checks" },
        checks.map((c) => ui.h("li", { class: c.ok ? "ok" : "fail" },
          ui.h("span", { class: "mark", "aria-hidden": "true" }, c.ok ? "✓" : "✕"),
          ui.h("span", {},
            ui.h("span", { class: "visually-hidden" }, c.ok ? "Works: " : "Problem: "),
            c.name ? ui.h("span", { class: "checklist-name" }, c.name + ": ") : null,
            c.message || ""))));
      ui.fill(result, summary, checks.length ? list : null);
    }

    testBtn.addEventListener("click", async () => {
      if (ui.isBusy(testBtn)) return;
      ui.fill(status);
      if (dirty()) {
        ui.fill(result, ui.banner("warning", "You have unsaved changes.", "Save them first: Test connection checks the saved credentials."));
        return;
      }
      if (!saved) {
        ui.fill(result, ui.banner("warning", "There is nothing to test yet.", "Fill in the credentials and save them first."));
        return;
      }
      const restore = ui.busy(testBtn, "Testing…");
      ui.fill(result, ui.loading("Testing the connection to " + product + ". This can take up to a minute."));
      try {
        const answer = await api.post("/service-account/test", {}, { timeout: 75000 });
        renderTest(answer);
        if (answer && answer.serviceAccount) store.set("service-account", answer.serviceAccount);
        else store.load("service-account", true);
      } catch (err) {
        ui.fill(result, ui.banner("error", "The connection could not be tested.", err.message));
      } finally {
        restore();
      }
    });
  },

  show(ctx, first) {
    if (first && !ctx.store.get("service-account")) ctx.store.load("service-account");
  },
};
