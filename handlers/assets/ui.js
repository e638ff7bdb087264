// The admin page's design system in code: building elements safely,
// banners, lozenges, field errors, busy buttons, and dates in the admin's
// own time zone and language. Text always goes in as text, never as HTML.

// h builds an element: h("p", {class: "help"}, "text", child, …).
// Attributes whose value is null, undefined or false are left out.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// fill replaces the children of el.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// update is fill for content that is rendered again and again (a status
// refreshed in the background): it leaves el alone when nothing changed,
// so the element that has focus, or is being read, stays where it is.
export function update(el, ...children) {
  const next = document.createElement(el.tagName);
  append(next, children);
  if (next.innerHTML !== el.innerHTML) el.replaceChildren(...next.childNodes);
  return el;
}

// banner is a section message: kind is "info", "success", "warning" or
// "error"; body is text or nodes; action an optional node (a link).
export function banner(kind, title, body, action) {
  return h("div", { class: "banner banner-" + kind },
    h("div", { class: "banner-body" },
      title ? h("p", { class: "banner-title" }, title) : null,
      body ? h("p", {}, body) : null,
      action ? h("p", {}, action) : null));
}

// lozenge is a short status label: kind "success", "warning", "danger",
// "info" or "" (neutral).
export function lozenge(kind, text) {
  return h("span", { class: "lozenge" + (kind ? " lozenge-" + kind : "") }, text);
}

export function spinner() {
  return h("span", { class: "spinner", "aria-hidden": "true" });
}

export function loading(text) {
  return h("p", { class: "loading" }, spinner(), text);
}

// errorElement finds the error text of a control: the element "<id>-error".
function errorElement(control) {
  return control && control.id ? document.getElementById(control.id + "-error") : null;
}

// setFieldError shows message next to control (an input or fieldset), marks
// it invalid and ties the message to it with aria-describedby.
export function setFieldError(control, message) {
  const err = errorElement(control);
  if (!err) return false;
  err.textContent = message;
  control.setAttribute("aria-invalid", "true");
  const ids = (control.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
  if (!ids.includes(err.id)) control.setAttribute("aria-describedby", ids.concat(err.id).join(" "));
  return true;
}

export function clearFieldError(control) {
  const err = errorElement(control);
  if (err) err.textContent = "";
  control.removeAttribute("aria-invalid");
}

// clearErrors clears every field error inside root.
export function clearErrors(root) {
  for (const el of root.querySelectorAll("[aria-invalid]")) clearFieldError(el);
  for (const el of root.querySelectorAll(".field-error")) el.textContent = "";
}

// focusFirstError moves focus to the first invalid control in root, so a
// keyboard or screen reader user lands on what needs fixing.
export function focusFirstError(root) {
  const el = root.querySelector("[aria-invalid=true]");
  if (!el) return;
  const target = el.tagName === "FIELDSET" ? (el.querySelector("input:checked") || el.querySelector("input")) : el;
  if (target) target.focus();
}

// busy marks a button as working: it keeps focus (a disabled button would
// drop it), ignores further presses, and shows a spinner and label. It
// returns the function that restores the button.
export function busy(button, label) {
  const before = Array.from(button.childNodes);
  button.setAttribute("aria-busy", "true");
  button.setAttribute("aria-disabled", "true");
  button.dataset.busy = "1";
  fill(button, spinner(), label);
  return () => {
    button.removeAttribute("aria-busy");
    button.removeAttribute("aria-disabled");
    delete button.dataset.busy;
    button.replaceChildren(...before);
  };
}

export function isBusy(button) {
  return button.dataset.busy === "1";
}

// The admin's time zone and language, as Atlassian passes them to the
// iframe (tz and loc query parameters); the browser's otherwise.
const params = new URLSearchParams(location.search);
function supported(fn) { try { fn(); return true; } catch (err) { return false; } }
const timeZone = params.get("tz") && supported(() => new Intl.DateTimeFormat("en", { timeZone: params.get("tz") })) ? params.get("tz") : undefined;
const locale = params.get("loc") && supported(() => new Intl.DateTimeFormat(params.get("loc").replace("_", "-"))) ? params.get("loc").replace("_", "-") : undefined;

export function parseDate(value) {
  if (!value) return null;
  const d = new Date(value);
  return isNaN(d.getTime()) ? null : d;
}

export function formatDateTime(value) {
  const d = parseDate(value);
  if (!d) return "";
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short", timeZone }).format(d);
}

// formatDate shows the day of value in the admin's time zone, or with
// utc the calendar day in UTC (expiry dates are whole days in UTC).
export function formatDate(value, utc) {
  const d = parseDate(value);
  if (!d) return "";
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: utc ? "UTC" : timeZone }).format(d);
}

// daysUntil is the number of whole days from now until value (negative
// when past).
export function daysUntil(value, now = new Date()) {
  const d = parseDate(value);
  if (!d) return null;
  return Math.floor((d.getTime() - now.getTime()) / 86400000);
}

// timeEl is a <time> element showing value as a date and time, or as a
// day ("date", or "utc-date" for a day in UTC).
export function timeEl(value, as) {
  const d = parseDate(value);
  if (!d) return null;
  const text = as === "date" ? formatDate(d) : as === "utc-date" ? formatDate(d, true) : formatDateTime(d);
  return h("time", { datetime: d.toISOString() }, text);
}

// localizeTimes rewrites server-rendered <time data-format> elements in
// the admin's time zone and language.
export function localizeTimes(root) {
  for (const el of root.querySelectorAll("time[data-format]")) {
    const text = el.dataset.format === "date" ? formatDate(el.dateTime) : formatDateTime(el.dateTime);
    if (text) el.textContent = text;
  }
}

// isEmail is a deliberately loose check: something@domain.tld, no spaces.
// The server has the final word.
export function isEmail(s) {
  return /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(s);
}
