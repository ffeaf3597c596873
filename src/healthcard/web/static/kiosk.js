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
        } else if (error.code === "too-many-attempts") {  // the agent's own limit per reader
          say(form.getAttribute("data-too-many").replace("{seconds}", String(error.data.retry_after || 60)));
        } else {
          say(form.getAttribute("data-failed").replace("{code}", error.code || ""));
        }
        input.focus();
      });
    });
  }

  // --- self-service issuance (自助发卡) ----------------------------------------------------------
  // The ID number, the name and the PIN chosen twice go to the agent only (POST /issue); the
  // agent asks the platform for the card over the kiosk's SAM session and dispenses it.
  function issuePage() {
    var form = document.getElementById("issue-form");
    var idInput = document.getElementById("id_number");
    var nameInput = document.getElementById("holder_name");
    var pins = Array.prototype.slice.call(form.querySelectorAll("input[data-pin]"));
    var active = pins[0];
    var message = document.getElementById("issue-message");
    var fields = { id_number: idInput, name: nameInput, pin: pins[0], pin_again: pins[1] };
    var busy = false;

    function clear() {
      Object.keys(fields).forEach(function (key) {
        document.getElementById(key + "-error").textContent = "";
        fields[key].setAttribute("aria-invalid", "false");
      });
      message.textContent = "";
    }
    function resetPins() {
      pins.forEach(function (input) { input.value = ""; });
      active = pins[0];
    }
    function fail(key, text) {
      if (fields[key]) {
        document.getElementById(key + "-error").textContent = text;
        fields[key].setAttribute("aria-invalid", "true");
        (key === "pin_again" ? pins[0] : fields[key]).focus();  // both PINs are typed again
      } else {
        message.textContent = text;
      }
    }
    Object.keys(fields).forEach(function (key) {  // an error goes when its field is edited
      fields[key].addEventListener("input", function () {
        document.getElementById(key + "-error").textContent = "";
        fields[key].setAttribute("aria-invalid", "false");
      });
    });
    pins.forEach(function (input) {
      input.addEventListener("focus", function () { active = input; });
      input.addEventListener("input", function () {
        input.value = input.value.replace(/\D/g, "").slice(0, 6);
      });
    });
    form.querySelectorAll("button[data-digit]").forEach(function (button) {
      button.addEventListener("click", function () {
        if (active.value.length < 6) { active.value += button.getAttribute("data-digit"); }
        if (active.value.length === 6 && active === pins[0]) { active = pins[1]; }
      });
    });
    form.querySelector("button[data-key=clear]").addEventListener("click", function () {
      active.value = "";
      active.focus();
    });
    form.querySelector("button[data-key=back]").addEventListener("click", function () {
      active.value = active.value.slice(0, -1);
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy) { return; }
      clear();
      var body = {
        id_number: idInput.value.trim().toUpperCase(),
        name: nameInput.value.trim(),
        pin: pins[0].value,
        pin_again: pins[1].value
      };
      var refused = !body.id_number ? ["id_number", "data-missing-id"]
        : !body.name ? ["name", "data-missing-name"]
        : !/^\d{6}$/.test(body.pin) ? ["pin", "data-short"]
        : body.pin_again !== body.pin ? ["pin_again", "data-differ"] : null;
      if (refused) {
        resetPins();  // the PINs are typed again, both
        fail(refused[0], form.getAttribute(refused[1]));
        return;
      }
      busy = true;
      message.textContent = form.getAttribute("data-working");
      agent().call("/issue", body).then(function (answer) {
        pins.forEach(function (input) { input.value = ""; });
        document.getElementById("issue-entry").hidden = true;
        var done = document.getElementById("issue-done");
        var number = (answer.card && answer.card.card_number) || "";
        var text = done.getAttribute(answer.dispensed ? "data-lead" : "data-not-dispensed");
        document.getElementById("issue-done-lead").textContent = text.replace("{card}", number);
        document.getElementById("issue-login").hidden = !answer.dispensed;
        done.hidden = false;
        done.setAttribute("tabindex", "-1");
        done.focus();
      }, function (error) {
        busy = false;
        message.textContent = "";
        resetPins();
        if (error.code === "not-found") {
          fail("id_number", form.getAttribute("data-no-application"));
        } else if (error.field === "name") {
          fail("name", form.getAttribute("data-name-mismatch"));
        } else if (error.field === "pin") {
          fail("pin", form.getAttribute("data-short"));
        } else if (error.field === "pin_again") {
          fail("pin_again", form.getAttribute("data-differ"));
        } else if (error.field === "id_number") {
          fail("id_number", error.message);
        } else if (error.code === "agent-unreachable") {
          fail("", form.getAttribute("data-unreachable"));
        } else {
          fail("", form.getAttribute("data-failed").replace("{code}", error.code || ""));
        }
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
    else if (page === "issue") { issuePage(); }
    else if (session) { residentPage(parseInt(session, 10) || 120); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
