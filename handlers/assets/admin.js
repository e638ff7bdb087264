// The admin page's shell: navigation between sections, a small store of
// what the admin API answered, and the start of every section. A section
// is a module (assets/<id>.js) exporting {id, init(ctx), show(ctx)} whose
// markup is the template section-<id>.html; to add one, list it in
// handlers/admin.go and below.

import * as api from "./api.js";
import * as ui from "./ui.js";
import overview from "./overview.js";
import serviceAccount from "./service-account.js";
import customerRecord from "./customer-record.js";
import provisioning from "./provisioning.js";
import sso from "./sso.js";
import audit from "./audit.js";
import privacy from "./privacy.js";

const modules = [overview, serviceAccount, customerRecord, provisioning, sso, audit, privacy];

const appEl = document.getElementById("app");
const bannerEl = document.getElementById("app-banner");

// Store keeps the latest answer (or error) of each admin API resource and
// tells the sections that show it when it changes.
class Store {
  constructor(loaders) {
    this.loaders = loaders;
    this.entries = new Map();
    this.listeners = new Map();
    this.inflight = new Map();
    this.gens = new Map();
  }

  // get returns {value} or {error}, or undefined before the first load.
  get(name) {
    return this.entries.get(name);
  }

  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, []);
    this.listeners.get(name).push(fn);
  }

  emit(name) {
    for (const fn of this.listeners.get(name) || []) {
      try { fn(this.entries.get(name)); } catch (err) { reportError(err); }
    }
  }

  set(name, value) {
    // A load still on its way was sent before this value existed.
    this.gens.set(name, (this.gens.get(name) || 0) + 1);
    this.inflight.delete(name);
    this.entries.set(name, { value });
    this.emit(name);
  }

  // load fetches the resource again; concurrent loads share one request,
  // unless fresh: after a change, a load already on its way may answer
  // what was before it, so a fresh one is sent and the older answer is
  // dropped (only the newest load's answer is kept).
  load(name, fresh = false) {
    if (!fresh && this.inflight.has(name)) return this.inflight.get(name);
    const gen = (this.gens.get(name) || 0) + 1;
    this.gens.set(name, gen);
    const p = this.loaders[name]()
      .then((value) => ({ value }), (error) => ({ error }))
      .then((entry) => {
        if (this.gens.get(name) !== gen) return entry;
        this.inflight.delete(name);
        this.entries.set(name, entry);
        this.emit(name);
        return entry;
      });
    this.inflight.set(name, p);
    return p;
  }
}

const store = new Store({
  site: () => api.get("/site"),
  "service-account": () => api.get("/service-account"),
  profile: () => api.get("/profile"),
  provisioning: () => api.get("/provisioning"),
  sync: () => api.get("/sync"),
});

const ctx = {
  api,
  ui,
  store,
  product: appEl.dataset.product || "Jira",
  cloudID: appEl.dataset.cloudId || "",
  go,
};

function reportError(err) {
  // A bug in this page: say so plainly instead of failing silently.
  ui.fill(bannerEl, ui.banner("error", "Something went wrong on this page.", "Reload the page. If it happens again, contact the app’s support."));
  setTimeout(() => { throw err; });
}

// Navigation: each link's hash names a section; anything else shows the
// overview.
const links = Array.from(document.querySelectorAll(".app-nav-link"));
const byID = new Map(modules.map((m) => [m.id, m]));
const shown = new Set();

function sectionFromHash() {
  const id = decodeURIComponent(location.hash.replace(/^#/, ""));
  return links.some((a) => a.dataset.section === id) ? id : "overview";
}

function show(id, moveFocus) {
  for (const sec of document.querySelectorAll(".app-section")) {
    sec.hidden = sec.dataset.section !== id;
  }
  for (const a of links) {
    if (a.dataset.section === id) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const heading = document.getElementById("heading-" + id);
  document.title = (heading ? heading.textContent + " · " : "") + "idbridge settings";
  const mod = byID.get(id);
  if (mod && mod.show) {
    try { mod.show(ctx, !shown.has(id)); } catch (err) { reportError(err); }
  }
  shown.add(id);
  if (moveFocus && heading) heading.focus({ preventScroll: false });
}

// go shows a section from code (a link in a banner, say).
function go(id) {
  if (sectionFromHash() === id) show(id, true);
  else location.hash = id;
}

window.addEventListener("hashchange", () => show(sectionFromHash(), true));

function start() {
  if (window.AP && window.AP.theming && typeof window.AP.theming.initializeTheming === "function") {
    try { window.AP.theming.initializeTheming(); } catch (err) { /* an older host: light theme */ }
  }
  ui.localizeTimes(document);
  if (!api.hasAP()) {
    ui.fill(bannerEl, ui.banner("error", "idbridge cannot reach your Atlassian site from here.", api.notInAtlassian));
  }
  for (const m of modules) {
    try { m.init(ctx); } catch (err) { reportError(err); }
  }
  store.on("site", (entry) => {
    if (entry.error && entry.error.status === 401) {
      ui.fill(bannerEl, ui.banner("error", "Your session has ended.", entry.error.message));
    }
  });
  show(sectionFromHash(), false);
}

start();
