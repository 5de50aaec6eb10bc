/* Progressive enhancement only: every page works without this file.
   1. Move focus to the error summary so a screen reader hears it first.
   2. Check a personal identity number as it is typed (the server checks it again). */
(function () {
  "use strict";
  var summary = document.querySelector("[data-error-summary]");
  if (summary) { summary.focus(); }

  var field = document.querySelector("[data-personal-number]");
  if (!field) { return; }
  var sv = document.documentElement.lang !== "en";
  var status = document.createElement("p");
  status.className = "pnr-status";
  status.id = field.id + "-check";
  status.setAttribute("aria-live", "polite");
  field.insertAdjacentElement("afterend", status);

  function luhn(digits) {
    var sum = 0;
    for (var i = 0; i < digits.length; i++) {
      var d = digits.charCodeAt(i) - 48;
      if (i % 2 === 0) { d *= 2; if (d > 9) { d -= 9; } }
      sum += d;
    }
    return sum % 10 === 0;
  }
  function valid(raw) {
    var value = raw.replace(/[\s+-]/g, "");
    if (!/^(\d{10}|\d{12})$/.test(value)) { return false; }
    var ten = value.length === 12 ? value.slice(2) : value;
    var month = +ten.slice(2, 4), day = +ten.slice(4, 6);
    if (day > 60) { day -= 60; }  /* samordningsnummer */
    return month >= 1 && month <= 12 && day >= 1 && day <= 31 && luhn(ten);
  }
  function check() {
    var value = field.value.trim();
    if (!value) { status.textContent = ""; return; }
    var digits = value.replace(/\D/g, "").length;
    if (digits < 10) { status.textContent = ""; return; }
    var ok = valid(value);
    status.className = "pnr-status " + (ok ? "pnr-ok" : "pnr-bad");
    status.textContent = ok
      ? (sv ? "Numret ser rätt ut." : "The number looks right.")
      : (sv ? "Numret stämmer inte. Kontrollera siffrorna." : "The number does not add up. Check the digits.");
  }
  field.addEventListener("input", check);
  check();
}());
