// A stand-in for Atlassian's all.js (https://connect-cdn.atl-paas.net/all.js),
// served in its place by the browser tests and by the demo's simulated site,
// which cannot (or should not) reach Atlassian's CDN.
//
// It is what the real all.js is: the iframe half of a bridge to the host
// page. AP's methods post a message to the parent window (the host origin
// comes from the xdm_e parameter Jira puts on the iframe URL, as in the
// real library), and the host page (fakeatlassian's HostPage) answers:
// AP.context.getToken gets a context JWT from the host page. The admin
// page's own code is the same as in production; only the transport under AP
// is the stand-in's.
(function () {
  "use strict";
  var hostOrigin = new URLSearchParams(window.location.search).get("xdm_e");
  if (!hostOrigin || window.parent === window) {
    return; // not framed by a host: no AP, as when all.js cannot connect
  }
  var pending = {};
  var seq = 0;
  function call(method, args, cb) {
    var id = ++seq;
    if (cb) pending[id] = cb;
    window.parent.postMessage({ idbridgeTestAP: 1, id: id, method: method, args: args }, hostOrigin);
  }
  window.addEventListener("message", function (ev) {
    if (ev.source !== window.parent || ev.origin !== hostOrigin) return;
    var m = ev.data;
    if (!m || m.idbridgeTestAPReply !== 1) return;
    var cb = pending[m.id];
    delete pending[m.id];
    if (cb) cb(m.result);
  });
  window.AP = {
    context: {
      getToken: function (cb) { call("context.getToken", [], cb); }
    },
    resize: function (w, h) { call("resize", [w, h]); },
    sizeToParent: function () { call("sizeToParent", []); }
  };
})();
