// Privacy (SPEC 8): export a person's or the site's data with progress,
// erase a person (confirmed), restrict processing and lift it, and the
// status of Atlassian's Personal Data Reporting cycle.

import * as ui from "./ui.js";

const accountPattern = /^[A-Za-z0-9:_-]{1,128}$/;
const accountHelp = "An Atlassian account ID is letters, digits, colons, dashes and underscores, such as 557058:f1e2d3c4-….";

const blockedNames = { sync: "provisioning", sign_in: "sign-in", audit_detail: "audit detail", reporting_refresh: "reporting refresh" };

export default {
  id: "privacy",

  init(ctx) {
    const { api } = ctx;
    const $ = (id) => document.getElementById(id);

    // checkAccount shows an error next to input when its value is not an
    // account ID; empty is allowed only when optional.
    function checkAccount(input, optional) {
      ui.clearFieldError(input);
      const v = input.value.trim();
      if (v === "" && optional) return "";
      if (!accountPattern.test(v)) {
        ui.setFieldError(input, v === "" ? "Enter the person’s Atlassian account ID." : accountHelp);
        input.focus();
        return null;
      }
      return v;
    }

    function fail(err, statusEl, prefix, title) {
      const control = err.field ? $(prefix + err.field) : null;
      if (!(control && ui.setFieldError(control, err.message))) ui.fill(statusEl, ui.banner("error", title, err.message));
      else control.focus();
    }

    // Export, with progress: the number of rows first, then the export
    // itself read as it streams (one row per line).
    const exportForm = $("privacy-export-form");
    exportForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const btn = $("privacy-export");
      const status = $("privacy-export-status");
      if (ui.isBusy(btn)) return;
      const accountId = checkAccount($("privacy-export-accountId"), true);
      if (accountId === null) return;
      ui.fill(status);
      const restore = ui.busy(btn, "Exporting…");
      const wrap = $("privacy-export-progress-wrap");
      const bar = $("privacy-export-progress");
      const count = $("privacy-export-count");
      try {
        const q = accountId ? "?accountId=" + encodeURIComponent(accountId) : "";
        const total = (await api.get("/gdpr/export/count" + q)).rows;
        bar.max = Math.max(1, total);
        bar.value = 0;
        wrap.hidden = false;
        count.textContent = "0 of " + total + " rows";
        const blob = await api.download("/gdpr/export" + q, (lines) => {
          const rows = Math.min(total, Math.max(0, lines - 3));
          bar.value = rows;
          count.textContent = rows + " of " + total + " rows";
        });
        bar.value = bar.max;
        count.textContent = total + " of " + total + " rows";
        const name = "idbridge-export-" + (accountId ? "person" : "site") + ".json";
        const a = ui.h("a", { href: URL.createObjectURL(blob), download: name, id: "privacy-export-file" }, "Save " + name + " again");
        ui.fill(status, ui.banner("success", accountId ? (total === 0 ? "idbridge holds nothing about this person." : "The person’s data is exported.") : "The site’s data is exported.",
          "Your browser saves it as " + name + " (" + Math.ceil(blob.size / 1024) + " KB).", a));
        a.click();
      } catch (err) {
        fail(err, status, "privacy-export-", "The export failed.");
      } finally {
        restore();
      }
    });

    // Erase, after a confirmation that names the account.
    const eraseForm = $("privacy-erase-form");
    const confirmBox = $("privacy-erase-confirm");
    let pending = "";
    eraseForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      ui.fill($("privacy-erase-status"));
      const accountId = checkAccount($("privacy-erase-accountId"), false);
      if (accountId === null) return;
      pending = accountId;
      $("privacy-erase-question").textContent = "Erase everything idbridge holds about " + accountId + "?";
      confirmBox.hidden = false;
      $("privacy-erase-yes").focus();
    });
    $("privacy-erase-no").addEventListener("click", () => { confirmBox.hidden = true; pending = ""; $("privacy-erase").focus(); });
    $("privacy-erase-yes").addEventListener("click", async () => {
      const btn = $("privacy-erase-yes");
      const status = $("privacy-erase-status");
      if (ui.isBusy(btn) || !pending) return;
      const restore = ui.busy(btn, "Erasing…");
      try {
        const res = await api.post("/gdpr/erase", { accountId: pending });
        confirmBox.hidden = true;
        if (!res) {
          ui.fill(status, ui.banner("info", "Nothing to erase.", "idbridge held nothing about " + pending + ". The request is recorded in the audit log."));
        } else {
          const rows = Object.values(res.rows).reduce((a, n) => a + n, 0);
          ui.fill(status, ui.banner("success", "Erased.", rows + " rows in " + res.tables.length + " tables. The audit log now names this person " + res.pseudonym + ".",
            res.notice ? ui.h("span", {}, res.notice) : null));
          $("privacy-erase-accountId").value = "";
        }
        pending = "";
        loadRestrictions();
        loadStatus();
      } catch (err) {
        confirmBox.hidden = true;
        fail(err, status, "privacy-erase-", "The erasure failed.");
      } finally {
        restore();
      }
    });

    // Rectification of directory details: only the fields filled in.
    $("privacy-rectify-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const btn = $("privacy-rectify");
      const status = $("privacy-rectify-status");
      if (ui.isBusy(btn)) return;
      ui.fill(status);
      ui.clearErrors($("privacy-rectify-form"));
      const accountId = checkAccount($("privacy-rectify-accountId"), false);
      if (accountId === null) return;
      const body = { accountId };
      for (const f of ["displayName", "givenName", "familyName", "email"]) {
        const v = $("privacy-rectify-" + f).value.trim();
        if (v !== "") body[f] = v;
      }
      if (Object.keys(body).length === 1) {
        ui.setFieldError($("privacy-rectify-displayName"), "Fill in at least one detail to correct.");
        $("privacy-rectify-displayName").focus();
        return;
      }
      const restore = ui.busy(btn, "Correcting…");
      try {
        const res = await api.post("/gdpr/rectify", body);
        ui.fill(status, ui.banner("success", "Corrected.", "Corrected " + res.fields.join(", ") + " of " + accountId + ".", ui.h("span", {}, res.notice)));
        for (const f of ["displayName", "givenName", "familyName", "email"]) $("privacy-rectify-" + f).value = "";
      } catch (err) {
        fail(err, status, "privacy-rectify-", "The correction failed.");
      } finally {
        restore();
      }
    });

    // Restrictions: the list, with what each held back, and Lift.
    const rowsEl = $("privacy-restriction-rows");
    async function loadRestrictions() {
      try {
        const res = await api.get("/gdpr/restrictions?limit=200");
        rowsEl.replaceChildren();
        if (res.restrictions.length === 0) {
          rowsEl.append(ui.h("tr", {}, ui.h("td", { colspan: "5" }, "Nobody’s processing is restricted.")));
        }
        for (const r of res.restrictions) {
          const held = r.blockedCount === 0 ? "nothing yet" : r.blockedCount + " (last: " + (blockedNames[r.lastBlocked] || r.lastBlocked) + ")";
          rowsEl.append(ui.h("tr", { "data-account": r.accountId },
            ui.h("td", {}, ui.lozenge("warning", "Restricted"), " ", ui.h("span", { class: "mono" }, r.accountId)),
            ui.h("td", {}, ui.timeEl(r.restrictedAt)),
            ui.h("td", {}, r.reason || "—"),
            ui.h("td", {}, held),
            ui.h("td", {}, ui.h("button", { class: "button button-subtle", type: "button", "data-lift": r.accountId,
              onclick: (ev) => lift(ev.currentTarget, r.accountId) }, "Lift", ui.h("span", { class: "visually-hidden" }, " the restriction of " + r.accountId)))));
        }
      } catch (err) {
        rowsEl.replaceChildren(ui.h("tr", {}, ui.h("td", { colspan: "5" }, "The restrictions could not be loaded: " + err.message)));
      }
    }

    async function lift(btn, accountId) {
      if (ui.isBusy(btn)) return;
      const restore = ui.busy(btn, "Lifting…");
      try {
        await api.del("/gdpr/restrict/" + encodeURIComponent(accountId));
        ui.fill($("privacy-restrict-status"), ui.banner("success", "Restriction lifted.", "idbridge processes " + accountId + "’s data again."));
      } catch (err) {
        restore();
        ui.fill($("privacy-restrict-status"), ui.banner("error", "The restriction could not be lifted.", err.message));
        return;
      }
      loadRestrictions();
      loadStatus();
    }

    $("privacy-restrict-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const btn = $("privacy-restrict");
      const status = $("privacy-restrict-status");
      if (ui.isBusy(btn)) return;
      ui.fill(status);
      ui.clearFieldError($("privacy-restrict-reason"));
      const accountId = checkAccount($("privacy-restrict-accountId"), false);
      if (accountId === null) return;
      const restore = ui.busy(btn, "Restricting…");
      try {
        await api.post("/gdpr/restrict", { accountId, reason: $("privacy-restrict-reason").value });
        ui.fill(status, ui.banner("success", "Processing is restricted.", "idbridge keeps " + accountId + "’s data but does not process it until you lift the restriction."));
        $("privacy-restrict-accountId").value = "";
        $("privacy-restrict-reason").value = "";
        loadRestrictions();
        loadStatus();
      } catch (err) {
        fail(err, status, "privacy-restrict-", "Processing could not be restricted.");
      } finally {
        restore();
      }
    });

    // The reporting cycle's status.
    const reportingEl = $("privacy-reporting");
    async function loadStatus() {
      try {
        const st = await api.get("/gdpr/status");
        const r = st.reporting;
        const when = (v, none) => (v ? ui.timeEl(v) : none);
        let state = ui.lozenge("success", "Up to date");
        if (!r.enabled) state = ui.lozenge("", "Not configured");
        else if (r.retryAt) state = ui.lozenge("warning", "Waiting for Atlassian");
        else if (r.inProgress) state = ui.lozenge("info", "In progress");
        else if (!r.lastCycleAt) state = ui.lozenge("", "Not run yet");
        ui.fill(reportingEl,
          ui.h("p", { class: "card-title" }, "Reporting cycle ", state),
          ui.h("p", { class: "help" }, "idbridge tells Atlassian which accounts it holds personal data for, at most once per cycle period, and erases the data of accounts Atlassian reports closed."),
          ui.h("dl", { class: "facts", id: "privacy-reporting-facts" },
            ui.h("dt", {}, "Last cycle"), ui.h("dd", {}, when(r.lastCycleAt, "never")),
            ui.h("dt", {}, "Next cycle"), ui.h("dd", {}, when(r.nextCycleAt, "when idbridge next checks (every 10 minutes)")),
            ui.h("dt", {}, "Cycle period"), ui.h("dd", {}, r.cyclePeriodDays + " days"),
            ui.h("dt", {}, "Accounts held"), ui.h("dd", { id: "privacy-accounts-held" }, String(r.accountsHeld)),
            ui.h("dt", {}, "Accounts reported"), ui.h("dd", { id: "privacy-accounts-reported" }, String(r.accountsReported)),
            ui.h("dt", {}, "Closed accounts erased"), ui.h("dd", { id: "privacy-closed-erased" }, r.closedAccountsErased + " of " + r.accountsClosed + " reported closed"),
            ui.h("dt", {}, "Restricted people"), ui.h("dd", { id: "privacy-restricted-count" }, String(st.restrictions))),
          r.lastMessage ? ui.h("p", { class: "help" }, r.lastMessage) : null);
      } catch (err) {
        ui.fill(reportingEl, ui.banner("error", "The privacy status could not be loaded.", err.message));
      }
    }

    this.refresh = () => { loadRestrictions(); loadStatus(); };
  },

  show(ctx, first) {
    if (first && this.refresh) this.refresh();
  },
};
