// The Simulated site page: shows the site's state, refreshed every second.
// Rows that were not there at the previous refresh are highlighted.
(function () {
  "use strict";
  var seen = null;

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function fill(id, rows, key, cells, next) {
    var tbody = document.querySelector("#" + id + " tbody");
    var frag = document.createDocumentFragment();
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      var k = id + ":" + key(row);
      tr.dataset.key = key(row);
      if (seen && !seen[k]) tr.className = "new";
      next[k] = true;
      cells(row).forEach(function (c) { cell(tr, c[0], c[1]); });
      frag.appendChild(tr);
    });
    if (rows.length === 0) {
      var tr = document.createElement("tr");
      var td = document.createElement("td");
      td.colSpan = document.querySelectorAll("#" + id + " thead th").length;
      td.textContent = "None yet.";
      tr.appendChild(td);
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
    var count = document.getElementById(id + "-count");
    if (count) count.textContent = "(" + rows.length + ")";
  }

  function render(st) {
    var next = {};
    fill("users", st.users, function (u) { return u.email; }, function (u) {
      return [[u.email], [u.displayName], [u.active ? "active" : "inactive", u.active ? "" : "inactive"], [u.products.join(", ")]];
    }, next);
    fill("groups", st.groups, function (g) { return g.name; }, function (g) {
      return [[g.name], [g.members.join(", ")]];
    }, next);
    fill("customers", st.customers, function (c) { return c.email; }, function (c) {
      return [[c.email], [c.displayName], [c.accountId]];
    }, next);
    fill("requests", st.requests, function (r) { return r.key; }, function (r) {
      return [[r.key], [r.summary], [r.reporter], [r.status]];
    }, next);
    seen = next;
  }

  var status = document.getElementById("status");
  function refresh() {
    fetch("/simulated-site/state", { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (st) { render(st); status.textContent = ""; })
      .catch(function () { status.textContent = "The simulated site did not answer; is idbridge demo still running?"; })
      .finally(function () { setTimeout(refresh, 1000); });
  }
  refresh();
})();
