// The few lines of our own (htmx does the rest): the countdown of the e-health-card QR code.
// Counts the seconds given by the server down to zero, then says the code expired.
(function () {
  "use strict";
  function tick() {
    document.querySelectorAll(".countdown[data-seconds]").forEach(function (el) {
      var left = parseInt(el.getAttribute("data-seconds"), 10) - 1;
      el.setAttribute("data-seconds", String(left));
      if (left <= 0) {
        el.textContent = el.getAttribute("data-expired");
        el.classList.add("expired");
        el.removeAttribute("data-seconds");
      } else {
        el.textContent = el.textContent.replace(/\d+/, String(left));
      }
    });
  }
  setInterval(tick, 1000);
})();
