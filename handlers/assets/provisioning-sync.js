// The sync part of the User provisioning section (SPEC 4 and 6.1): what
// the sync to the site is doing, failed changes with their reasons and a
// Retry button, the paused banner with what to do, the changes the
// accidental-deletion brake holds back with Apply and Discard, and the
// provisioned users and groups with their Atlassian IDs.

import * as ui from "./ui.js";

// How often the status is read again while the section is shown.
const REFRESH_MS = 10000;

const opNames = {
  user_created: "Create user",
  user_updated: "Update user",
  user_deactivated: "Deactivate user",
  user_reactivated: "Reactivate user",
  user_deleted: "Delete user",
  group_created: "Create group",
  group_updated: "Update group",
  group_deleted: "Delete group",
  members_added: "Add members",
  members_removed: "Remove members",
  members_refresh: "Check memberships",
};

const outcomes = {
  applied: ["success", "Applied"],
  failed: ["danger", "Failed"],
  not_applicable: ["", "Not applicable"],
  discarded: ["", "Discarded"],
};

function opName(op) {
  return opNames[op] || op;
}

// age says how long seconds is, roughly, in words.
export function age(seconds) {
  if (seconds < 90) return seconds + (seconds === 1 ? " second" : " seconds");
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return minutes + " minutes";
  const hours = Math.round(minutes / 60);
  if (hours < 36) return hours + " hours";
  return Math.round(hours / 24) + " days";
}

function plural(n, one, many) {
  return n + " " + (n === 1 ? one : many);
}

function mono(text) {
  return ui.h("span", { class: "mono" }, text);
}

export function initSync(ctx) {
  const { api, product } = ctx;
  const $ = (id) => document.getElementById(id);
  const section = $("section-provisioning");
  const alerts = $("pv-sync-alerts");
  const summary = $("pv-sync-summary");
  const statusEl = $("pv-sync-status");
  const failedEl = $("pv-sync-failed");
  const recentEl = $("pv-sync-recent");
  const refreshBtn = $("pv-sync-refresh");
  let timer = null;
  let loading = null;
  let confirmingApply = false;

  function renderAlerts(st) {
    const out = [];
    if (st.paused) {
      const actions = ui.h("span", { class: "form-actions" });
      if (st.resumable) {
        actions.append(ui.h("button", { class: "button button-primary", type: "button", id: "pv-sync-resume" }, "Resume"));
      }
      actions.append(ui.h("button", { class: "button button-link", type: "button", id: "pv-sync-to-account" }, "Go to Service account"));
      out.push(ui.h("div", { id: "pv-sync-paused" }, ui.banner("error", "The sync to " + product + " is paused.",
        (st.pausedReason || "Changes wait.") + " " + plural(st.pending, "change waits", "changes wait") + "; none is lost.", actions)));
    }
    if (st.held) {
      const h = st.held;
      const more = h.count - (h.subjects || []).length;
      const list = ui.h("ul", { class: "held-list" }, (h.subjects || []).map((s) => ui.h("li", {}, s)),
        more > 0 ? ui.h("li", {}, "and " + plural(more, "more change", "more changes")) : null);
      const actions = ui.h("span", { class: "form-actions" },
        ui.h("button", { class: "button button-primary", type: "button", id: "pv-held-apply" }, confirmingApply ? "Apply " + plural(h.count, "change", "changes") + " now" : "Apply them"),
        confirmingApply ? ui.h("button", { class: "button button-subtle", type: "button", id: "pv-held-cancel" }, "Cancel") : null,
        confirmingApply ? null : ui.h("button", { class: "button", type: "button", id: "pv-held-discard" }, "Discard them"));
      out.push(ui.h("div", { id: "pv-sync-held", class: "banner banner-warning" },
        ui.h("div", { class: "banner-body" },
          ui.h("p", { class: "banner-title" }, plural(h.count, "deactivation or deletion is", "deactivations and deletions are") + " held back"),
          ui.h("p", {}, h.reason),
          ui.h("p", {}, "Held since ", ui.timeEl(h.since), ". Applying them changes these accounts in " + product + "; discarding them leaves " + product + " as it is (your identity provider keeps its state either way)."),
          ui.h("details", { id: "pv-held-who", open: Boolean($("pv-held-who") && $("pv-held-who").open) }, ui.h("summary", {}, "Who is affected"), list),
          confirmingApply ? ui.h("p", {}, "Really apply them? " + product + " will lose these users’ access as your deactivation setting says.") : null,
          ui.h("p", {}, actions))));
    }
    ui.update(alerts, out);
  }

  function renderSummary(st) {
    let lozenge;
    if (st.paused) lozenge = ui.lozenge("danger", "Paused");
    else if (st.pending > 0) lozenge = ui.lozenge("info", "Applying");
    else lozenge = ui.lozenge("success", "Up to date");
    const facts = ui.h("dl", { class: "facts" });
    const fact = (term, ...value) => facts.append(ui.h("dt", {}, term), ui.h("dd", { "data-fact": term }, ...value));
    let waiting;
    if (st.pending > 0) waiting = plural(st.pending, "change", "changes") + ", the oldest for " + age(st.oldestPendingAgeSeconds);
    else if (st.held) waiting = "nothing besides the held changes below";
    else waiting = "nothing: every change is applied";
    fact("Waiting", waiting);
    const c = st.counts || {};
    fact("Last 24 hours", plural(c.applied || 0, "applied", "applied") + ", " + (c.failed || 0) + " failed, " + (c.notApplicable || 0) + " not applicable");
    if (st.held) fact("Held back", plural(st.held.count, "change", "changes"));
    ui.update(summary, ui.h("p", { class: "card-title" }, "Sync ", lozenge), facts);
  }

  function renderFailed(st) {
    if (!st.failed || st.failed.length === 0) {
      ui.update(failedEl, ui.h("p", { class: "help", id: "pv-sync-no-failed" }, "No failed changes."));
      return;
    }
    const rows = st.failed.map((it) => ui.h("tr", { "data-item": it.id },
      ui.h("td", {}, ui.timeEl(it.updatedAt)),
      ui.h("th", { scope: "row" }, it.subject, it.atlassianId ? [ui.h("br"), mono(it.atlassianId)] : null),
      ui.h("td", {}, opName(it.op)),
      ui.h("td", { class: "reason" }, it.error || "", " ", ui.h("span", { class: "help" }, "(" + plural(it.attempts || 0, "attempt", "attempts") + ")")),
      ui.h("td", {}, ui.h("button", { class: "button", type: "button", "data-retry": it.id, "aria-label": "Retry: " + opName(it.op) + " " + it.subject }, "Retry"))));
    ui.update(failedEl, ui.h("div", { class: "table-wrap" }, ui.h("table", { class: "table", id: "pv-sync-failed-table" },
      ui.h("caption", { class: "visually-hidden" }, "Failed changes, newest first"),
      ui.h("thead", {}, ui.h("tr", {}, ["When", "Who", "Change", "Why", "Action"].map((t) => ui.h("th", { scope: "col" }, t)))),
      ui.h("tbody", {}, rows))));
  }

  function renderRecent(st) {
    if (!st.recent || st.recent.length === 0) {
      ui.update(recentEl, ui.h("p", { class: "help" }, "Nothing applied yet."));
      return;
    }
    const rows = st.recent.map((it) => {
      const [kind, text] = outcomes[it.outcome] || ["", it.outcome];
      return ui.h("tr", {},
        ui.h("td", {}, ui.timeEl(it.at)),
        ui.h("th", { scope: "row" }, it.subject),
        ui.h("td", {}, opName(it.op)),
        ui.h("td", {}, ui.lozenge(kind, text)),
        ui.h("td", {}, it.atlassianId ? mono(it.atlassianId) : "", it.error ? [it.atlassianId ? ui.h("br") : null, it.error] : null));
    });
    ui.update(recentEl, ui.h("div", { class: "table-wrap" }, ui.h("table", { class: "table", id: "pv-sync-recent-table" },
      ui.h("caption", { class: "visually-hidden" }, "Latest results, newest first"),
      ui.h("thead", {}, ui.h("tr", {}, ["When", "Who", "Change", "Result", "Atlassian ID or reason"].map((t) => ui.h("th", { scope: "col" }, t)))),
      ui.h("tbody", {}, rows))));
  }

  let last = null;
  function render(st) {
    last = st;
    // The overview's alerts follow what this section shows.
    ctx.store.set("sync", st);
    renderAlerts(st);
    renderSummary(st);
    renderFailed(st);
    renderRecent(st);
  }

  async function load() {
    if (loading) return loading;
    loading = (async () => {
      try {
        render(await api.get("/sync"));
      } catch (err) {
        ui.update(summary, ui.banner("error", "The sync status could not be loaded.", err.message));
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  // act runs an action on button and shows the status it answers.
  async function act(button, label, path, done) {
    if (ui.isBusy(button)) return;
    const restore = ui.busy(button, label);
    try {
      const st = await api.post(path, {});
      confirmingApply = false;
      render(st);
      ui.fill(statusEl, ui.banner("success", done, ""));
      // The button went with what it acted on: keep the keyboard nearby.
      if (!document.body.contains(button)) $("pv-sync-heading").focus();
    } catch (err) {
      restore();
      ui.fill(statusEl, ui.banner("error", "That did not work.", err.message));
      return;
    }
  }

  section.addEventListener("click", (ev) => {
    const btn = ev.target.closest("button");
    if (!btn || !section.contains(btn)) return;
    if (btn.dataset.retry) {
      act(btn, "Retrying…", "/sync/items/" + encodeURIComponent(btn.dataset.retry) + "/retry",
        "The change is queued again: idbridge tries it now.");
      return;
    }
    switch (btn.id) {
      case "pv-sync-resume":
        act(btn, "Resuming…", "/sync/resume", "The sync goes on with the waiting changes.");
        break;
      case "pv-sync-to-account":
        ctx.go("service-account");
        break;
      case "pv-held-apply":
        if (!confirmingApply) {
          confirmingApply = true;
          if (last) renderAlerts(last);
          $("pv-held-apply").focus();
          return;
        }
        act(btn, "Applying…", "/sync/held/apply", "The held changes are being applied.");
        break;
      case "pv-held-cancel":
        confirmingApply = false;
        if (last) renderAlerts(last);
        $("pv-held-apply").focus();
        break;
      case "pv-held-discard":
        act(btn, "Discarding…", "/sync/held/discard", "The held changes were discarded: " + product + " keeps these accounts as they are.");
        break;
    }
  });

  refreshBtn.addEventListener("click", async () => {
    if (ui.isBusy(refreshBtn)) return;
    const restore = ui.busy(refreshBtn, "Refreshing…");
    ui.fill(statusEl);
    await load();
    restore();
  });

  return {
    show() {
      load();
      if (timer) return;
      timer = setInterval(() => {
        if (section.hidden) {
          clearInterval(timer);
          timer = null;
          return;
        }
        if (document.visibilityState === "visible") load();
      }, REFRESH_MS);
    },
    load,
  };
}

// userState says where a directory user stands in the site, in words.
function userState(it, product) {
  if (!it.atlassianId) {
    if (it.pending && it.active) return ["info", "Being created"];
    return ["", it.active ? "Not in " + product : "Deactivated, never in " + product];
  }
  switch (it.state) {
    case "removed_groups": return ["warning", "Deactivated: out of the provisioned groups"];
    case "removed": return ["warning", "Deactivated: removed from " + product];
    case "suspended": return ["warning", "Deactivated: suspended"];
  }
  return ["success", it.active ? "Active" : "Active (deactivation not applied)"];
}

export function initDirectory(ctx) {
  const { api, product } = ctx;
  const $ = (id) => document.getElementById(id);
  const form = $("pv-dir-form");
  const q = $("pv-dir-q");
  const rows = $("pv-dir-rows");
  const more = $("pv-dir-more");
  const status = $("pv-dir-status");
  let next = null;
  let shownType = "users";

  const type = () => (form.querySelector("input[name=dir-type]:checked") || {}).value || "users";

  async function load(append) {
    const btn = append ? more : $("pv-dir-show");
    if (ui.isBusy(btn)) return;
    ui.clearErrors(form);
    ui.fill(status);
    const t = append ? shownType : type();
    const params = new URLSearchParams({ type: t });
    if (q.value.trim() !== "") params.set("q", q.value.trim());
    if (append && next) params.set("cursor", next);
    const restore = ui.busy(btn, append ? "Loading…" : "Showing…");
    try {
      const page = await api.get("/sync/directory?" + params.toString());
      shownType = t;
      ui.update($("pv-dir-name-col"), t === "groups" ? "Group name" : "User name");
      ui.update($("pv-dir-caption"), t === "groups" ? "Provisioned groups, by name" : "Provisioned users, by name");
      const trs = page.items.map((it) => {
        const [kind, text] = t === "groups"
          ? (it.atlassianId ? ["success", "In " + product] : it.pending ? ["info", "Being created"] : ["", "Not in " + product])
          : userState(it, product);
        return ui.h("tr", { "data-id": it.id },
          ui.h("th", { scope: "row" }, it.name),
          ui.h("td", {}, ui.lozenge(kind, text), it.pending && it.atlassianId ? [" ", ui.lozenge("info", "changes waiting")] : null),
          ui.h("td", {}, it.atlassianId ? mono(it.atlassianId) : "—"));
      });
      if (append) rows.append(...trs);
      else if (trs.length) ui.fill(rows, trs);
      else ui.fill(rows, ui.h("tr", {}, ui.h("td", { colspan: "3" }, t === "groups" ? "No groups." : "No users.")));
      next = page.next;
      more.hidden = !next;
    } catch (err) {
      const control = err.field === "q" ? q : null;
      if (!(control && ui.setFieldError(control, err.message))) {
        ui.fill(status, ui.banner("error", "The list could not be loaded.", err.message));
      }
    } finally {
      restore();
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load(false);
  });
  for (const r of form.querySelectorAll("input[name=dir-type]")) r.addEventListener("change", () => load(false));
  more.addEventListener("click", () => load(true));
  return { load };
}
