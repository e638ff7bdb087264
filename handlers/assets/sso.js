// Customer SSO: the sign-in settings, the identity providers (add, edit,
// turn on or off, delete, test) and the URLs an identity provider needs
// (SPEC sections 4 and 7). Secrets go in and never come back: an edit that
// leaves a secret empty keeps the saved one.

import * as ui from "./ui.js";

function list(text) {
  return text.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
}

function copyField(label, value, id) {
  return ui.h("div", { class: "field" },
    ui.h("label", { class: "label", for: id }, label),
    ui.h("input", { class: "input mono", id, type: "text", readonly: true, value, spellcheck: "false", onfocus: (ev) => ev.target.select() }));
}

export default {
  id: "sso",

  init(ctx) {
    const { api, store } = ctx;
    const facts = document.getElementById("sso-facts");
    const form = document.getElementById("sso-form");
    const status = document.getElementById("sso-status");
    const idpsEl = document.getElementById("sso-idps");
    const idpsStatus = document.getElementById("sso-idps-status");
    const add = document.getElementById("sso-add");
    const addTitle = document.getElementById("sso-add-title");
    const idpForm = document.getElementById("sso-idp-form");
    const idpStatus = document.getElementById("sso-idp-status");
    const idpSave = document.getElementById("sso-idp-save");
    const $ = (id) => document.getElementById(id);
    let editing = ""; // the ID of the identity provider being edited

    store.loaders.sso = () => api.get("/sso");
    store.loaders.idps = () => api.get("/idps");

    function protocol() {
      return (idpForm.querySelector("input[name=protocol]:checked") || {}).value || "oidc";
    }
    function showProtocol() {
      for (const el of idpForm.querySelectorAll("[data-protocol]")) el.hidden = el.dataset.protocol !== protocol();
    }
    for (const r of idpForm.querySelectorAll("input[name=protocol]")) r.addEventListener("change", showProtocol);

    store.on("sso", (entry) => {
      if (entry.error) {
        ui.fill(facts, ui.banner("error", "The sign-in settings could not be loaded.", entry.error.message));
        return;
      }
      const s = entry.value;
      ui.fill(facts,
        ui.h("p", { class: "card-title" }, "Customer sign-in ", ui.lozenge(s.enabled ? "success" : "", s.enabled ? "On" : "Off")),
        ui.h("p", { class: "help" }, "Give your identity provider these addresses."),
        copyField("Portal (share with customers)", s.portalUrl, "sso-portal-url"),
        copyField("OpenID Connect redirect URI", s.redirectUri, "sso-redirect-uri"),
        copyField("SAML entity ID (audience)", s.spEntityId, "sso-sp-entity"),
        copyField("SAML assertion consumer service (ACS) URL", s.acsUrl, "sso-acs-url"),
        copyField("SAML service provider metadata", s.spMetadataUrl, "sso-sp-metadata"));
      $("sso-enabled").checked = s.enabled;
      $("sso-allowedDomains").value = (s.allowedDomains || []).join(", ");
      $("sso-autoCreateCustomers").checked = s.autoCreateCustomers;
      $("sso-serviceDeskIds").value = (s.serviceDeskIds || []).join(", ");
      $("sso-organizationsByDomain").value = Object.entries(s.organizationsByDomain || {}).map(([d, o]) => d + " = " + o).join("\n");
      $("sso-sessionIdleMinutes").value = s.sessionIdleMinutes || 30;
      $("sso-sessionMaxHours").value = s.sessionMaxHours || 8;
    });

    function idpRow(p) {
      const del = ui.h("button", { class: "button button-subtle", type: "button" }, "Delete");
      const toggle = ui.h("button", { class: "button button-subtle", type: "button" }, p.enabled ? "Turn off" : "Turn on");
      const edit = ui.h("button", { class: "button button-subtle", type: "button" }, "Edit");
      let confirming = false;
      del.addEventListener("click", async () => {
        if (!confirming) {
          confirming = true;
          ui.fill(del, "Delete " + p.name + "?");
          ui.fill(idpsStatus, ui.banner("warning", "Press again to delete “" + p.name + "”.", "Sign-ins in progress with it stop."));
          return;
        }
        const restore = ui.busy(del, "Deleting…");
        try {
          await api.request("DELETE", "/idps/" + encodeURIComponent(p.id));
          ui.fill(idpsStatus, ui.banner("success", "“" + p.name + "” was deleted."));
          store.load("idps");
        } catch (err) {
          restore();
          ui.fill(idpsStatus, ui.banner("error", "It was not deleted.", err.message));
        }
      });
      toggle.addEventListener("click", async () => {
        const restore = ui.busy(toggle, "Saving…");
        try {
          await api.put("/idps/" + encodeURIComponent(p.id), { enabled: !p.enabled });
          store.load("idps");
        } catch (err) {
          restore();
          ui.fill(idpsStatus, ui.banner("error", "It was not changed.", err.message));
        }
      });
      edit.addEventListener("click", () => startEdit(p));
      const details = p.protocol === "oidc" ? [p.oidc.issuer, " · client ", p.oidc.clientId, p.oidc.clientSecretHint ? " · secret " + p.oidc.clientSecretHint : ""]
        : [p.saml.metadataUrl || p.saml.entityId || "metadata XML"];
      return ui.h("li", { class: "card idp" },
        ui.h("p", { class: "card-title" }, p.name, " ", ui.lozenge(p.enabled ? "success" : "", p.enabled ? "On" : "Off"), " ",
          ui.lozenge("info", p.protocol === "oidc" ? "OpenID Connect" : "SAML")),
        ui.h("p", { class: "help mono" }, details),
        p.emailDomains && p.emailDomains.length ? ui.h("p", { class: "help" }, "Signs in: " + p.emailDomains.join(", ")) : null,
        ui.h("div", { class: "form-actions" },
          ui.h("a", { class: "button", href: p.testSignInUrl, target: "_blank", rel: "noopener noreferrer" }, "Test sign-in",
            ui.h("span", { class: "visually-hidden" }, " (opens a new tab)")),
          edit, toggle, del));
    }

    store.on("idps", (entry) => {
      if (entry.error) {
        ui.fill(idpsEl, ui.banner("error", "The identity providers could not be loaded.", entry.error.message));
        return;
      }
      const idps = entry.value.identityProviders || [];
      if (idps.length === 0) {
        ui.fill(idpsEl, ui.h("p", { class: "empty-state" }, "No identity provider yet. Add one below."));
        add.open = true;
        return;
      }
      ui.fill(idpsEl, ui.h("ul", { class: "idp-list" }, idps.map(idpRow)));
    });

    function resetIdPForm() {
      idpForm.reset();
      editing = "";
      for (const r of idpForm.querySelectorAll("input[name=protocol]")) r.disabled = false;
      ui.fill(addTitle, "Add an identity provider");
      ui.fill(idpSave, "Add identity provider");
      ui.clearErrors(idpForm);
      showProtocol();
    }

    function startEdit(p) {
      resetIdPForm();
      editing = p.id;
      $("sso-idp-name").value = p.name;
      $("sso-idp-domains").value = (p.emailDomains || []).join(", ");
      $("sso-protocol-" + p.protocol).checked = true;
      for (const r of idpForm.querySelectorAll("input[name=protocol]")) r.disabled = true;
      if (p.oidc) {
        $("sso-oidc-issuer").value = p.oidc.issuer;
        $("sso-oidc-clientId").value = p.oidc.clientId;
      }
      if (p.saml) $("sso-saml-metadataUrl").value = p.saml.metadataUrl || "";
      ui.fill(addTitle, "Edit “" + p.name + "”");
      ui.fill(idpSave, "Save changes");
      showProtocol();
      add.open = true;
      $("sso-idp-name").focus();
    }

    $("sso-idp-cancel").addEventListener("click", () => { resetIdPForm(); add.open = false; });

    const fieldIDs = {
      name: "sso-idp-name", protocol: "sso-idp-protocol", emailDomains: "sso-idp-domains",
      "oidc.issuer": "sso-oidc-issuer", "oidc.clientId": "sso-oidc-clientId", "oidc.clientSecret": "sso-oidc-clientSecret",
      saml: "sso-saml-metadataUrl", "saml.metadataUrl": "sso-saml-metadataUrl", "saml.metadataXml": "sso-saml-metadataXml",
    };

    idpForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (ui.isBusy(idpSave)) return;
      ui.clearErrors(idpForm);
      ui.fill(idpStatus);
      const id = editing;
      const body = { name: $("sso-idp-name").value.trim(), emailDomains: list($("sso-idp-domains").value) };
      if (!id) { body.protocol = protocol(); body.enabled = true; }
      if (protocol() === "oidc") {
        body.oidc = { issuer: $("sso-oidc-issuer").value.trim(), clientId: $("sso-oidc-clientId").value.trim() };
        const secret = $("sso-oidc-clientSecret").value;
        if (secret) body.oidc.clientSecret = secret;
      } else {
        const url = $("sso-saml-metadataUrl").value.trim();
        const xml = $("sso-saml-metadataXml").value.trim();
        body.saml = xml ? { metadataXml: xml } : url ? { metadataUrl: url } : {};
      }
      const restore = ui.busy(idpSave, id ? "Saving…" : "Checking and adding…");
      try {
        const saved = id ? await api.put("/idps/" + encodeURIComponent(id), body) : await api.post("/idps", body);
        ui.fill(idpStatus, ui.banner("success", "“" + saved.name + "” is saved.", "Use Test sign-in to try it."));
        resetIdPForm();
        store.load("idps");
      } catch (err) {
        const control = $(fieldIDs[err.field] || "");
        if (!(control && ui.setFieldError(control, err.message))) {
          ui.fill(idpStatus, ui.banner("error", "It was not saved.", err.message));
        } else {
          ui.fill(idpStatus, ui.banner("error", "It was not saved.", "Check the field marked below."));
        }
        ui.focusFirstError(idpForm);
      } finally {
        restore();
      }
    });

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const save = $("sso-save");
      if (ui.isBusy(save)) return;
      ui.clearErrors(form);
      ui.fill(status);
      const orgs = {};
      for (const line of $("sso-organizationsByDomain").value.split("\n")) {
        const [d, o] = line.split("=").map((s) => (s || "").trim());
        if (d) orgs[d] = o || "";
      }
      const body = {
        enabled: $("sso-enabled").checked,
        allowedDomains: list($("sso-allowedDomains").value),
        autoCreateCustomers: $("sso-autoCreateCustomers").checked,
        serviceDeskIds: list($("sso-serviceDeskIds").value),
        organizationsByDomain: orgs,
        sessionIdleMinutes: Number($("sso-sessionIdleMinutes").value),
        sessionMaxHours: Number($("sso-sessionMaxHours").value),
      };
      const restore = ui.busy(save, "Saving…");
      try {
        store.set("sso", await api.put("/sso", body));
        ui.fill(status, ui.banner("success", "Saved."));
      } catch (err) {
        const control = $("sso-" + err.field);
        if (!(control && ui.setFieldError(control, err.message))) {
          ui.fill(status, ui.banner("error", "Nothing was saved.", err.message));
        }
        ui.focusFirstError(form);
      } finally {
        restore();
      }
    });
    showProtocol();
  },

  show(ctx, first) {
    if (first) {
      ctx.store.load("sso");
      ctx.store.load("idps");
    }
  },
};
