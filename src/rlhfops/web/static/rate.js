// The comparison page: 1 left, 2 right, 3 tie, 4 both bad, Enter submits; choosing never scrolls the page.
// On phones a toggle shows one reply at a time. The draft (choice, criteria, rationale) is kept in
// localStorage per item, so a rater whose session expired finds it again on the same pair after signing in.
// The time taken is measured in milliseconds from when the pair was shown.
document.addEventListener("DOMContentLoaded", function () {
  var shownAt = performance.now();
  var form = document.getElementById("label-form");
  if (!form) { return; }
  var item = form.getAttribute("data-item");
  var KEY = "rlhfops-draft";

  function readDrafts() {
    try { return JSON.parse(localStorage.getItem(KEY) || "{}") || {}; } catch (e) { return {}; }
  }
  function saveDraft() {
    var d = { criteria: {}, rationale: "" };
    var c = form.querySelector('input[name="choice"]:checked');
    if (c) { d.choice = c.value; }
    form.querySelectorAll('input[type="radio"][name^="criterion_"]:checked').forEach(function (r) {
      d.criteria[r.name] = r.value;
    });
    d.rationale = form.elements.rationale ? form.elements.rationale.value : "";
    var all = {}; all[item] = d;  // only the pair on screen is kept: an older draft was submitted
    try { localStorage.setItem(KEY, JSON.stringify(all)); } catch (e) { /* storage off: no draft */ }
  }
  function restoreDraft() {
    var d = readDrafts()[item];
    if (!d) { try { localStorage.removeItem(KEY); } catch (e) { /* ignore */ } return; }
    if (d.choice) {
      var r = form.querySelector('input[name="choice"][value="' + d.choice + '"]');
      if (r) { r.checked = true; }
    }
    Object.keys(d.criteria || {}).forEach(function (name) {
      var r = form.querySelector('input[name="' + name + '"][value="' + d.criteria[name] + '"]');
      if (r) { r.checked = true; }
    });
    if (d.rationale && form.elements.rationale) { form.elements.rationale.value = d.rationale; }
  }
  restoreDraft();
  form.addEventListener("change", saveDraft);
  form.addEventListener("input", saveDraft);

  var pair = document.getElementById("pair");
  document.querySelectorAll(".pane-toggle button").forEach(function (b) {
    b.addEventListener("click", function () {
      var side = b.getAttribute("data-show");
      pair.setAttribute("data-show", side);
      document.querySelectorAll(".pane-toggle button").forEach(function (o) {
        o.setAttribute("aria-pressed", o === b ? "true" : "false");
      });
    });
  });
  document.body.classList.add("js");

  form.addEventListener("submit", function () {
    form.elements.elapsed_ms.value = String(Math.round(performance.now() - shownAt));
  });

  document.addEventListener("keydown", function (ev) {
    var t = ev.target || {};
    var tag = t.tagName || "";
    if (tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && t.type === "text")) { return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (ev.key >= "1" && ev.key <= "4") {
      var radio = form.querySelector('input[name="choice"][data-key="' + ev.key + '"]');
      if (radio) {
        radio.checked = true;
        radio.focus({ preventScroll: true });  // the text being read stays where it is
        ev.preventDefault();
        saveDraft();
      }
    } else if (ev.key === "Enter") {
      // Enter on a button, link or summary does what that element does; elsewhere it submits
      if ((tag === "BUTTON" && t.id !== "submit") || tag === "A" || tag === "SUMMARY") { return; }
      if (form.querySelector('input[name="choice"]:checked')) { ev.preventDefault(); form.requestSubmit(); }
    }
  });
});
