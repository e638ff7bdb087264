// Audit log: sign-ins per day over the last 30 days (an SVG drawn here,
// in the theme's colours), the events with filters and paging, and a CSV
// export of the same filter (SPEC sections 4 and 7).

import * as ui from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const eventNames = {
  login_success: "Sign-in", login_failure: "Failed sign-in", logout: "Sign-out", customer_created: "Customer created",
  added_to_service_desk: "Added to a service desk", added_to_organization: "Added to an organization",
  request_created: "Request raised", access_denied: "Access denied", config_changed: "Settings changed",
  token_rotated: "Token made", record_corrected: "Customer record corrected", data_exported: "Data exported",
  data_erased: "Data erased", processing_restricted: "Processing restricted", processing_unrestricted: "Processing no longer restricted",
};

// chart draws successes and failures per day as stacked bars.
export function chart(days) {
  const W = 720, H = 220, left = 40, bottom = 28, top = 12;
  const max = Math.max(1, ...days.map((d) => d.successes + d.failures));
  const step = (W - left - 8) / days.length;
  const bw = Math.max(2, step * 0.7);
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  const total = days.reduce((a, d) => ({ s: a.s + d.successes, f: a.f + d.failures }), { s: 0, f: 0 });
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "audit-chart-title audit-chart-desc", class: "chart-svg" },
    s("title", { id: "audit-chart-title" }, "Sign-ins per day, last " + days.length + " days"),
    s("desc", { id: "audit-chart-desc" }, `${total.s} successful and ${total.f} failed sign-ins from ${days[0].date} to ${days[days.length - 1].date}; at most ${max} on one day.`));
  for (const v of [0, Math.round(max / 2), max]) {
    svg.append(s("line", { x1: left, x2: W - 4, y1: y(v), y2: y(v), class: "chart-grid" }));
    svg.append(s("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "chart-label" }, v));
  }
  days.forEach((d, i) => {
    const x = left + i * step + (step - bw) / 2;
    const ok = s("rect", { x, y: y(d.successes), width: bw, height: y(0) - y(d.successes), class: "chart-success" },
      s("title", {}, `${d.date}: ${d.successes} successful, ${d.failures} failed`));
    const failed = s("rect", { x, y: y(d.successes + d.failures), width: bw, height: y(0) - y(d.failures), class: "chart-failure" },
      s("title", {}, `${d.date}: ${d.failures} failed`));
    svg.append(ok, failed);
    if (i === 0 || i === days.length - 1 || i === Math.floor(days.length / 2)) {
      svg.append(s("text", { x: x + bw / 2, y: H - 8, "text-anchor": "middle", class: "chart-label" }, d.date.slice(5)));
    }
  });
  return { svg, total };
}

export default {
  id: "audit",

  init(ctx) {
    const { api } = ctx;
    const $ = (id) => document.getElementById(id);
    const chartEl = $("audit-chart");
    const rows = $("audit-rows");
    const more = $("audit-more");
    const status = $("audit-status");
    const filters = $("audit-filters");
    let next = null;

    function query() {
      const q = new URLSearchParams();
      for (const k of ["from", "to", "accountId", "event"]) {
        const v = $("audit-" + k).value.trim();
        if (v) q.set(k, v);
      }
      return q;
    }

    function row(e) {
      const detail = [];
      if (e.reason) detail.push("reason: " + e.reason);
      if (e.section) detail.push(e.section + (e.fields && e.fields.length ? ": " + e.fields.join(", ") : ""));
      else if (e.fields && e.fields.length) detail.push(e.fields.join(", "));
      if (e.protocol) detail.push(e.protocol.toUpperCase() + (e.idp ? " " + e.idp : ""));
      if (e.ip) detail.push("from " + e.ip);
      return ui.h("tr", {},
        ui.h("td", {}, ui.timeEl(e.at)),
        ui.h("td", {}, eventNames[e.event] || e.event),
        ui.h("td", {}, ui.h("span", { class: "account-name", "data-account": e.accountId || "" }), ui.h("span", { class: "mono" }, e.accountId || "—"),
          e.restricted ? [" ", ui.lozenge("warning", "Restricted")] : null),
        ui.h("td", {}, detail.join(" · ")));
    }

    // names shows display names beside account IDs, looked up live (the
    // log keeps IDs only); without an answer the IDs stand alone.
    async function names(ids) {
      const unique = Array.from(new Set(ids)).slice(0, 50);
      if (unique.length === 0) return;
      try {
        const q = new URLSearchParams();
        for (const id of unique) q.append("accountId", id);
        const res = await api.get("/accounts?" + q.toString());
        for (const el of rows.querySelectorAll(".account-name")) {
          const name = res.names && res.names[el.dataset.account];
          if (name && el.textContent === "") { el.textContent = name; el.after(document.createElement("br")); }
        }
      } catch (err) { /* the IDs are enough */ }
    }

    async function load(append) {
      const btn = append ? more : $("audit-apply");
      if (ui.isBusy(btn)) return;
      const restore = ui.busy(btn, "Loading…");
      ui.clearErrors(filters);
      ui.fill(status);
      try {
        const q = query();
        q.set("limit", "50");
        if (append && next) q.set("cursor", next);
        const page = await api.get("/audit?" + q.toString());
        if (!append) rows.replaceChildren();
        for (const e of page.events) rows.append(row(e));
        if (!append && page.events.length === 0) {
          rows.append(ui.h("tr", {}, ui.h("td", { colspan: "4" }, "No events match.")));
        }
        next = page.next;
        more.hidden = !next;
        names(page.events.map((e) => e.accountId).filter(Boolean));
      } catch (err) {
        const control = $("audit-" + err.field);
        if (!(control && ui.setFieldError(control, err.message))) ui.fill(status, ui.banner("error", "The events could not be loaded.", err.message));
      } finally {
        restore();
      }
    }

    async function loadChart() {
      try {
        const stats = await api.get("/audit/stats?days=30");
        const { svg, total } = chart(stats.days);
        const table = ui.h("table", { class: "table" },
          ui.h("thead", {}, ui.h("tr", {}, ui.h("th", { scope: "col" }, "Day"), ui.h("th", { scope: "col" }, "Successful"), ui.h("th", { scope: "col" }, "Failed"))),
          ui.h("tbody", {}, stats.days.map((d) => ui.h("tr", {}, ui.h("td", {}, d.date), ui.h("td", {}, d.successes), ui.h("td", {}, d.failures)))));
        ui.fill(chartEl,
          ui.h("figcaption", { class: "card-title" }, "Sign-ins per day, last 30 days"),
          ui.h("p", { class: "chart-legend" },
            ui.h("span", { class: "legend legend-success" }, total.s + " successful"), " ",
            ui.h("span", { class: "legend legend-failure" }, total.f + " failed")),
          svg,
          ui.h("details", {}, ui.h("summary", {}, "The numbers per day"), table));
      } catch (err) {
        ui.fill(chartEl, ui.banner("error", "The chart could not be loaded.", err.message));
      }
    }

    filters.addEventListener("submit", (ev) => { ev.preventDefault(); load(false); });
    more.addEventListener("click", () => load(true));
    $("audit-csv").addEventListener("click", async () => {
      const btn = $("audit-csv");
      if (ui.isBusy(btn)) return;
      const restore = ui.busy(btn, "Exporting…");
      try {
        const text = await api.request("GET", "/audit.csv?" + query().toString(), undefined, { raw: true, timeout: 120000 });
        const a = ui.h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: "idbridge-audit.csv" });
        document.body.append(a);
        a.click();
        a.remove();
        ui.fill(status, ui.banner("success", "The CSV file was made.", "Your browser saves it as idbridge-audit.csv."));
      } catch (err) {
        ui.fill(status, ui.banner("error", "The export failed.", err.message));
      } finally {
        restore();
      }
    });
    this.refresh = () => { loadChart(); load(false); };
  },

  show(ctx, first) {
    if (first && this.refresh) this.refresh();
  },
};
