// The browser's side of the local reader agent (docs/agent.md), for the pages rendered with
// `agent=True` (their CSP allows the agent's origin, given on <body data-agent>).
//   HCAgent.call("/swipe", {stage: "consultation"}).then(answer => …, error => …)
// A refusal rejects with an Error carrying the agent's {code, message, field, tries_left} and
// the HTTP status; an agent that does not answer rejects with code "agent-unreachable".
(function () {
  "use strict";
  var base = (document.body && document.body.getAttribute("data-agent")) || "";

  function failure(status, data) {
    var error = new Error((data && data.message) || "the reader agent answered " + status);
    error.status = status;
    error.code = (data && data.code) || "agent-error";
    error.field = data && data.field;
    error.tries_left = data && data.tries_left;
    error.data = data || {};
    return error;
  }

  function call(path, body) {
    var init = body === undefined
      ? { method: "GET" }
      : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    return fetch(base + path, init).then(
      function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (!response.ok) { throw failure(response.status, data); }
          return data;
        });
      },
      function () {
        var error = failure(0, { code: "agent-unreachable", message: "the reader agent does not answer" });
        throw error;
      }
    );
  }

  window.HCAgent = { call: call, base: base };
})();
