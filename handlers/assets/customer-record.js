// Customer record: the site's contact details (SPEC section 3), each with
// where it came from and when. A correction applies at once and wins over
// later Marketplace syncs until the admin clears it (PUT with null).

import * as ui from "./ui.js";

export const sourceLabels = {
  marketplace: ["info", "Marketplace licence"],
  admin: ["success", "Corrected by an admin"],
  install: ["", "Sent at install"],
};

function fieldsOf(record) {
  return Array.from(document.querySelectorAll("#cr-form .record-row")).map((row) => row.dataset.field);
}

function labelOf(field) {
  const l = document.querySelector("label[for=cr-" + field + "]");
  return l ? l.textContent : field;
}

// fieldTime is when the field's current value was set: per field when the
// server says, else the record's updatedAt.
function fieldTime(record, field) {
  const per = record && record.fieldUpdatedAt;
  return per && per[field] ? per[field] : null;
}

// describeRecord says how complete the record is, for the overview.
export function describeRecord(record) {
  const fields = fieldsOf(record);
  const empty = fields.filter((f) => !record || !record[f]);
  const corrected = fields.filter((f) => record && record.sources && record.sources[f] === "admin");
  if (empty.length === fields.length) {
    return { lozenge: "warning", status: "Empty", detail: "idbridge has no contact details for this site yet. They arrive with your Marketplace licence, or you can enter them." };
  }
  const parts = [];
  if (empty.length) parts.push("Missing: " + empty.map((f) => labelOf(f).toLowerCase()).join(", ") + ".");
  else parts.push("All five contact details are present.");
  if (corrected.length) parts.push(corrected.length === 1 ? "One field is corrected by an admin." : corrected.length + " fields are corrected by an admin.");
  return { lozenge: empty.length ? "warning" : "success", status: empty.length ? "Incomplete" : "Complete", detail: parts.join(" ") };
}

export default {
  id: "customer-record",

  init(ctx) {
    const { api, store } = ctx;
    const form = document.getElementById("cr-form");
    const status = document.getElementById("cr-status");
    const sync = document.getElementById("cr-sync");
    const saveBtn = document.getElementById("cr-save");
    const undoBtn = document.getElementById("cr-undo");
    const refreshBtn = document.getElementById("cr-refresh");
    const refreshStatus = document.getElementById("cr-refresh-status");
    const fields = fieldsOf();
    const input = (f) => document.getElementById("cr-" + f);
    let record = null;
    let shownValues = {}; // what each input showed when last filled

    function renderSource(f) {
      const el = document.getElementById("cr-" + f + "-source");
      const source = record && record.sources ? record.sources[f] : "";
      const time = fieldTime(record, f);
      if (!source && !(record && record[f])) {
        ui.update(el, ui.lozenge("", "No value yet"));
      } else {
        const [kind, text] = sourceLabels[source] || ["", source || "Unknown source"];
        ui.update(el, ui.lozenge(kind, text), time ? [ui.h("br"), source === "admin" ? "on " : "as of ", ui.timeEl(time)] : null);
      }
      const clear = form.querySelector("button[data-clear=" + f + "]");
      clear.hidden = source !== "admin";
    }

    function render(entry) {
      if (entry.error) {
        ui.fill(status, ui.banner("error", "The customer record could not be loaded.", entry.error.message));
        return;
      }
      record = entry.value || {};
      for (const f of fields) {
        const el = input(f);
        const value = record[f] || "";
        // Keep what the admin is typing; refresh the rest.
        if (!(f in shownValues) || el.value === shownValues[f]) {
          el.value = value;
          shownValues[f] = value;
        }
        renderSource(f);
      }
      // Say plainly whether the Marketplace keeps the record current.
      const lines = [];
      if (!record.syncConfigured) {
        lines.push("Updates from the Marketplace are not set up on this idbridge server: the record holds what Atlassian sent at install and your corrections. ");
      } else if (record.lastSyncAt) {
        lines.push(["Last compared with your Marketplace licence ", ui.timeEl(record.lastSyncAt), ". "]);
      } else {
        lines.push("Not compared with your Marketplace licence yet; idbridge does so daily. ");
      }
      if (record.syncStatus) lines.push(record.syncStatus + " ");
      if (record.updatedAt) lines.push(["Record last changed ", ui.timeEl(record.updatedAt), "."]);
      ui.update(sync, lines);
      refreshBtn.hidden = !record.syncConfigured;
    }

    store.on("profile", render);

    for (const f of fields) {
      input(f).addEventListener("input", () => ui.clearFieldError(input(f)));
    }

    function showServerError(err) {
      const control = err.field && fields.includes(err.field) ? input(err.field) : null;
      if (control && ui.setFieldError(control, err.message)) {
        ui.fill(status, ui.banner("error", "Nothing was saved.", "Fix the problem marked above, then save again."));
        control.focus();
        return;
      }
      ui.fill(status, ui.banner("error", "Nothing was saved.", err.message));
    }

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (ui.isBusy(saveBtn)) return;
      ui.clearErrors(form);
      ui.fill(status);
      const changes = {};
      for (const f of fields) {
        const v = input(f).value.trim();
        if (v !== (shownValues[f] || "")) changes[f] = v;
      }
      if (Object.keys(changes).length === 0) {
        ui.fill(status, ui.banner("info", "Nothing to save.", "You have not changed any field. To return a field to the Marketplace value, use Clear correction."));
        return;
      }
      if ("email" in changes && changes.email !== "" && !ui.isEmail(changes.email)) {
        ui.setFieldError(input("email"), "Enter an email address like name@example.com.");
        ui.fill(status, ui.banner("error", "Nothing was saved.", "Fix the problem marked above."));
        input("email").focus();
        return;
      }
      const restore = ui.busy(saveBtn, "Saving…");
      try {
        const answer = await api.put("/profile", changes);
        shownValues = {};
        store.set("profile", answer);
        const n = Object.keys(changes).length;
        ui.fill(status, ui.banner("success", n === 1 ? "Correction saved." : n + " corrections saved.", "They apply now and take precedence over your Marketplace licence until you clear them."));
      } catch (err) {
        showServerError(err);
      } finally {
        restore();
      }
    });

    form.addEventListener("click", async (ev) => {
      const btn = ev.target.closest("button[data-clear]");
      if (!btn || ui.isBusy(btn)) return;
      const f = btn.dataset.clear;
      ui.clearErrors(form);
      ui.fill(status);
      const restore = ui.busy(btn, "Clearing…");
      try {
        const answer = await api.put("/profile", { [f]: null });
        delete shownValues[f];
        restore();
        store.set("profile", answer);
        // The button is gone now: put focus on the field it was about.
        input(f).focus();
        ui.fill(status, ui.banner("success", "Correction of " + labelOf(f).toLowerCase() + " cleared.", answer && answer[f] ? "The value from " + (answer.sources && answer.sources[f] === "install" ? "the install" : "your Marketplace licence") + " applies again." : "There is no Marketplace value for it, so it is empty now."));
      } catch (err) {
        restore();
        ui.fill(status, ui.banner("error", "The correction was not cleared.", err.message));
      }
    });

    refreshBtn.addEventListener("click", async () => {
      if (ui.isBusy(refreshBtn)) return;
      const restore = ui.busy(refreshBtn, "Refreshing…");
      ui.fill(refreshStatus, ui.loading("Looking up your Marketplace licence. This can take up to a minute."));
      try {
        const answer = await api.post("/profile/sync", {}, { timeout: 75000 });
        store.set("profile", answer);
        const kept = answer && answer.sources ? Object.values(answer.sources).filter((src) => src === "admin").length : 0;
        ui.fill(refreshStatus, ui.banner("success", "Refreshed from your Marketplace licence.",
          kept ? (kept === 1 ? "The field you corrected keeps your value." : "The " + kept + " fields you corrected keep your values.") : null));
      } catch (err) {
        ui.fill(refreshStatus, ui.banner("error", "The record could not be refreshed.", err.message));
      } finally {
        restore();
      }
    });

    undoBtn.addEventListener("click", () => {
      ui.clearErrors(form);
      for (const f of fields) input(f).value = shownValues[f] || "";
      ui.fill(status, ui.banner("info", "Your unsaved changes were undone.", null));
    });
  },

  show(ctx, first) {
    if (first && !ctx.store.get("profile")) ctx.store.load("profile");
  },
};
