// The clinic console's side of the card reader (docs/web.md, docs/agent.md): the reader's state,
// the swipe, the chip's photo, the write-back.  Everything goes through HCAgent (agent.js); the
// words come from data-* attributes the server rendered in the page's language.  Text from the
// card or the agent is only ever set as textContent.
(function () {
  "use strict";

  function show(el, text) {
    if (!el) { return; }
    el.textContent = text;
    el.hidden = !text;
  }

  // --- the workstation: reader state and the swipe --------------------------------------------
  function workstation(panel) {
    var status = document.getElementById("agent-status");
    var button = document.getElementById("swipe");
    var failure = document.getElementById("swipe-error");
    var busy = false;

    function poll() {
      if (busy) { return; }
      HCAgent.call("/status").then(function (answer) {
        status.textContent = panel.getAttribute(answer.card_present ? "data-ready" : "data-nocard");
        status.className = answer.card_present ? "ready" : "";
      }, function () {
        status.textContent = panel.getAttribute("data-missing");
        status.className = "missing";
      });
    }

    function chip(card) {
      var box = document.getElementById("chip");
      document.getElementById("chip-name").textContent = card.holder ? card.holder.name : "";
      document.getElementById("chip-number").textContent = card.card_number || "";
      var alerts = (card.alerts && card.alerts.present) || [];
      if (card.alerts && card.alerts.other) { alerts = alerts.concat([card.alerts.other]); }
      document.getElementById("chip-alerts").textContent = alerts.join("、") || "—";
      var allergies = (card.allergies || []).map(function (a) { return a.allergen || a.name || ""; });
      document.getElementById("chip-allergies").textContent = allergies.join("、") || "—";
      box.hidden = false;
    }

    button.addEventListener("click", function () {
      busy = true;
      button.disabled = true;
      show(failure, "");
      status.textContent = panel.getAttribute("data-reading");
      HCAgent.call("/swipe", { stage: panel.getAttribute("data-stage") }).then(function (answer) {
        var platform = answer.platform;
        if (platform && platform.ok) {
          var rid = platform.answer.resident_id;
          try {
            if (answer.card.photo) { sessionStorage.setItem("hc-photo-" + rid, answer.card.photo); }
          } catch (e) { /* a full or disabled storage: no photo, nothing else lost */ }
          window.location.assign("/clinic/patient/" + encodeURIComponent(rid));
          return;
        }
        chip(answer.card);
        show(failure, platform ? platform.error.message : panel.getAttribute("data-offline"));
        busy = false;
        button.disabled = false;
      }, function (error) {
        show(failure, error.message);
        busy = false;
        button.disabled = false;
        poll();
      });
    });
    poll();
    setInterval(poll, 3000);
  }

  // --- the patient's photo, as the chip gave it at the swipe (kept in this tab only) -------------
  function photo(img) {
    var data = null;
    try { data = sessionStorage.getItem("hc-photo-" + img.getAttribute("data-resident")); } catch (e) { data = null; }
    if (data && data.indexOf("data:image/") === 0) {
      img.src = data;
      img.hidden = false;
    }
  }

  // --- the write-back at the end of the visit ----------------------------------------------------
  function writeBack(panel) {
    var button = document.getElementById("write-card");
    if (!button) { return; }
    var status = document.getElementById("write-status");
    var failure = document.getElementById("write-error");
    button.addEventListener("click", function () {
      button.disabled = true;
      show(failure, "");
      status.textContent = panel.getAttribute("data-writing");
      var body = {
        resident_id: panel.getAttribute("data-resident"),
        encounter_id: parseInt(panel.getAttribute("data-encounter"), 10)
      };
      if (panel.getAttribute("data-card")) { body.card_number = panel.getAttribute("data-card"); }
      HCAgent.call("/write/visit", body).then(function (answer) {
        if (answer.closed) {
          status.textContent = panel.getAttribute("data-done").replace("{slot}", String(answer.slot));
          window.location.reload();
        } else {
          status.textContent = panel.getAttribute("data-unclosed");
          show(failure, answer.error ? answer.error.message : "");
        }
      }, function (error) {
        status.textContent = "";
        show(failure, error.message);
        button.disabled = false;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.getElementById("reader");
    if (panel) { workstation(panel); }
    var img = document.getElementById("photo");
    if (img) { photo(img); }
    var write = document.getElementById("write");
    if (write) { writeBack(write); }
  });
})();
