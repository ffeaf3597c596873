// The self-service kiosk (web/kiosk.py, docs/web.md "The kiosk"), on pages of a kiosk session.
//   attract screen  (data-kiosk-page="attract"): ask the reader agent for a card, then the PIN pad;
//   PIN pad        (data-kiosk-page="pin"): the PIN goes to the agent only (POST /login), the
//                  token it answers is posted to /kiosk/session;
//   a resident's page (data-kiosk-session="<idle seconds>"): no touch or key for that long, or
//                  the card out of the slot, ends the session (the 退卡 form).
(function () {
  "use strict";
  var body = document.body;
  var POLL_MS = 1000;

  function agent() { return window.HCAgent; }

  function poll(onAnswer, onFailure) {
    var stopped = false;
    function once() {
      if (stopped) { return; }
      agent().call("/status").then(function (status) {
        if (!stopped) { onAnswer(status); }
      }, function (error) {
        if (!stopped && onFailure) { onFailure(error); }
      }).then(function () { setTimeout(once, POLL_MS); });
    }
    once();
    return function () { stopped = true; };
  }

  // --- the attract screen ----------------------------------------------------------------------
  function attract() {
    var status = document.getElementById("kiosk-status");
    poll(function (answer) {
      if (answer.card_present) {
        status.textContent = status.getAttribute("data-reading");
        window.location.assign("/kiosk/pin");
      }
    }, function () {
      status.textContent = status.getAttribute("data-unreachable");
    });
  }

  // --- the PIN pad -------------------------------------------------------------------------------
  function pinPad() {
    var form = document.getElementById("pin-form");
    var input = document.getElementById("pin");
    var message = document.getElementById("pin-message");
    var busy = false;
    var stop = poll(function (answer) {
      if (!answer.card_present && !busy) { window.location.assign("/kiosk"); }
    });

    function say(text) {
      message.textContent = text;
      input.setAttribute("aria-invalid", text ? "true" : "false");
    }

    form.querySelectorAll("button[data-digit]").forEach(function (button) {
      button.addEventListener("click", function () {
        if (input.value.length < 6) { input.value += button.getAttribute("data-digit"); }
        say("");
      });
    });
    form.querySelector("button[data-key=clear]").addEventListener("click", function () {
      input.value = "";
      say("");
      input.focus();
    });
    form.querySelector("button[data-key=back]").addEventListener("click", function () {
      input.value = input.value.slice(0, -1);
    });
    input.addEventListener("input", function () {
      input.value = input.value.replace(/\D/g, "").slice(0, 6);
    });

    function locked() {
      stop();
      document.getElementById("pin-entry").hidden = true;
      var panel = document.getElementById("pin-locked");
      panel.hidden = false;
      panel.setAttribute("tabindex", "-1");
      panel.focus();
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var pin = input.value;
      if (!/^\d{6}$/.test(pin)) { say(form.getAttribute("data-short")); input.focus(); return; }
      if (busy) { return; }
      busy = true;
      say(form.getAttribute("data-checking"));
      agent().call("/login", { pin: pin }).then(function (answer) {
        stop();
        var session = document.getElementById("session-form");
        session.querySelector("input[name=token]").value = answer.access_token;
        input.value = "";
        session.submit();
      }, function (error) {
        busy = false;
        input.value = "";
        if (error.code === "pin-wrong") {
          var left = error.tries_left;
          var text = form.getAttribute(left === 1 ? "data-wrong-last" : "data-wrong");
          say(text.replace("{tries}", String(left)));
        } else if (error.code === "pin-blocked") {
          locked();
          return;
        } else if (error.code === "no-card" || error.code === "card-removed") {
          window.location.assign("/kiosk");
          return;
        } else if (error.code === "no-pin") {
          say(form.getAttribute("data-no-pin"));
        } else if (error.code === "agent-unreachable") {
          say(form.getAttribute("data-unreachable"));
        } else {
          say(form.getAttribute("data-failed").replace("{code}", error.code || ""));
        }
        input.focus();
      });
    });
  }

  // --- a resident's page at the kiosk -----------------------------------------------------------
  function residentPage(idleSeconds) {
    var exit = document.getElementById("kiosk-exit");
    if (!exit) { return; }
    var ended = false;
    function end() {
      if (ended) { return; }
      ended = true;
      exit.submit();
    }
    var timer = null;
    function touched() {
      clearTimeout(timer);
      timer = setTimeout(end, idleSeconds * 1000);
    }
    ["pointerdown", "keydown", "wheel", "touchstart"].forEach(function (kind) {
      document.addEventListener(kind, touched, { passive: true });
    });
    touched();
    var misses = 0;
    poll(function (answer) {
      misses = 0;
      if (!answer.card_present) { end(); }
    }, function () {
      misses += 1;  // the agent gone for a few seconds: the card cannot be vouched for
      if (misses >= 3) { end(); }
    });
  }

  function start() {
    var page = body.getAttribute("data-kiosk-page");
    var session = body.getAttribute("data-kiosk-session");
    if (page === "attract") { attract(); }
    else if (page === "pin") { pinPad(); }
    else if (session) { residentPage(parseInt(session, 10) || 120); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
