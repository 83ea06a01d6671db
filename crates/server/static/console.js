// orgsync console: copy buttons and the live callback-URL preview of the connection wizard.
// No inline scripts (the console's Content-Security-Policy allows scripts from itself only).
(function () {
  "use strict";
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("button[data-copy]");
    if (!btn) return;
    var el = document.getElementById(btn.getAttribute("data-copy"));
    if (!el) return;
    var text = el.textContent.trim();
    var done = function () {
      var old = btn.textContent;
      btn.textContent = "Copied";
      setTimeout(function () { btn.textContent = old; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else {
      var range = document.createRange();
      range.selectNodeContents(el);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      try { document.execCommand("copy"); done(); } catch (e) { /* selected: copy by hand */ }
    }
  });

  function updateCallback() {
    var code = document.getElementById("callback-url");
    var ident = document.getElementById("identifier");
    var pool = document.getElementById("pool");
    if (!code || !ident || !code.hasAttribute("data-prefix")) return;
    var id = ident.value.trim() || "{identifier}";
    var p = pool ? pool.value : code.getAttribute("data-pool");
    code.textContent = code.getAttribute("data-prefix") + id + "/" + p + "/events";
  }
  document.addEventListener("input", function (ev) {
    if (ev.target && (ev.target.id === "identifier" || ev.target.id === "pool")) updateCallback();
  });
  document.addEventListener("change", function (ev) {
    if (ev.target && ev.target.id === "pool") updateCallback();
  });
})();
