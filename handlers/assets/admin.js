// The admin page's script: it asks Atlassian's all.js for a context token
// and calls idbridge's admin API with it. No token is ever put in a URL.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var status = document.getElementById("api-status");
  var api = main.getAttribute("data-api");

  function show(text, ok) {
    status.textContent = text;
    status.className = ok ? "ok" : "error";
  }

  function call(path) {
    return new Promise(function (resolve, reject) {
      if (!window.AP || !AP.context || !AP.context.getToken) {
        reject(new Error("This page must be opened from your Atlassian site's administration."));
        return;
      }
      AP.context.getToken(function (token) {
        fetch(api + path, { headers: { "Authorization": "JWT " + token, "Accept": "application/json" } })
          .then(function (res) {
            return res.json().then(function (body) {
              if (!res.ok) { throw new Error(body.error || ("HTTP " + res.status)); }
              return body;
            });
          })
          .then(resolve, reject);
      });
    });
  }

  call("/site").then(function (site) {
    show("connected (" + site.state + ")", true);
  }, function (err) {
    show(err.message, false);
  });
})();
