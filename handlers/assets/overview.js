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

    // The credentials' problems are banners at the top of the overview:
    // invalid (Atlassian answered 401), expired, or expiring within 14 days.
    function renderAlerts(d) {
      const items = [];
      for (const a of (d && d.alerts) || []) {
        items.push(ui.banner(a.kind, a.title, a.text, link("service-account", "Update the service account")));
      }
      ui.update(alerts, items);
    }
  },

  show(ctx) {
    // The overview always shows the latest state; the loads are cheap.
    ctx.store.load("site");
    ctx.store.load("service-account");
    ctx.store.load("profile");
    ctx.store.load("provisioning");
  },
};
