// Overview: what works on this site and what needs the admin's attention.

import { describeAccount } from "./service-account.js";
import { describeRecord } from "./customer-record.js";
import { describeProvisioning } from "./provisioning.js";

export default {
  id: "overview",

  init(ctx) {
    const { ui, store } = ctx;
    const alerts = document.getElementById("overview-alerts");

    function row(id, kind, status, detail) {
      const tr = document.getElementById(id);
      ui.update(tr.querySelector("[data-cell=status]"), ui.lozenge(kind, status));
      ui.update(tr.querySelector("[data-cell=detail]"), detail);
    }

    function link(section, text) {
      return ui.h("a", { href: "#" + section }, text);
    }

    store.on("site", (entry) => {
      if (entry.error) {
        row("overview-connection", "danger", "Not connected", entry.error.message);
      } else {
        const state = entry.value && entry.value.state === "disabled" ? "The app is disabled on this site: idbridge does no work for it until you enable it again." : "This page reaches idbridge, and your site confirmed that you are an administrator.";
        row("overview-connection", entry.value && entry.value.state === "disabled" ? "warning" : "success", entry.value && entry.value.state === "disabled" ? "Disabled" : "Connected", state);
      }
    });

    store.on("service-account", (entry) => {
      if (entry.error) {
        row("overview-service-account", "danger", "Unknown", entry.error.message);
        renderAlerts(null);
        return;
      }
      const d = describeAccount(ctx, entry.value);
      row("overview-service-account", d.lozenge, d.status, [d.detail, " ", link("service-account", d.none ? "Set it up" : "Open the service account")]);
      renderAlerts(d);
    });

    store.on("profile", (entry) => {
      if (entry.error) {
        row("overview-customer-record", "danger", "Unknown", entry.error.message);
        return;
      }
      const d = describeRecord(entry.value);
      row("overview-customer-record", d.lozenge, d.status, [d.detail, " ", link("customer-record", "Open the customer record")]);
    });

    store.on("provisioning", (entry) => {
      if (entry.error) {
        row("overview-provisioning", "danger", "Unknown", entry.error.message);
        return;
      }
      const d = describeProvisioning(entry.value);
      row("overview-provisioning", d.lozenge, d.status, [d.detail, " ", link("provisioning", entry.value && entry.value.enabled ? "Open user provisioning" : "Set it up")]);
    });

    // The sync's problems that need the admin: a pause only they can lift
    // (Atlassian refused the credentials), changes the accidental-deletion
    // brake holds, changes that failed.
    store.on("sync", (entry) => {
      syncAlerts = [];
      const st = entry.value;
      if (!entry.error && st) {
        const open = link("provisioning", "Open user provisioning");
        if (st.paused && st.resumable) {
          syncAlerts.push(ui.banner("error", "User provisioning is paused.", st.pausedReason, open));
        }
        if (st.held) {
          syncAlerts.push(ui.banner("warning", st.held.count + (st.held.count === 1 ? " deactivation waits" : " deactivations and deletions wait") + " for you.",
            "The accidental-deletion brake held them back: apply them or discard them.", open));
        }
        const failed = (st.failed || []).length;
        if (failed > 0) {
          syncAlerts.push(ui.banner("warning", failed + (failed === 1 ? " change" : " changes") + " could not be applied to your site.",
            "Each one says why. Fix the cause, then retry it.", open));
        }
      }
      renderAlerts();
    });

    // The credentials' problems are banners at the top of the overview:
    // invalid (Atlassian answered 401), expired, or expiring within 14 days;
    // the sync's follow.
    let accountAlerts = [];
    let syncAlerts = [];
    function renderAlerts(d) {
      if (d !== undefined) {
        accountAlerts = [];
        for (const a of (d && d.alerts) || []) {
          accountAlerts.push(ui.banner(a.kind, a.title, a.text, link("service-account", "Update the service account")));
        }
      }
      ui.update(alerts, accountAlerts, syncAlerts);
    }
  },

  show(ctx) {
    // The overview always shows the latest state; the loads are cheap.
    ctx.store.load("site");
    ctx.store.load("service-account");
    ctx.store.load("profile");
    ctx.store.load("provisioning");
    ctx.store.load("sync");
  },
};
