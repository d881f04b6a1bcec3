// Keyboard shortcuts on the comparison page: 1 left, 2 right, 3 tie, 4 both bad, Enter submits.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("label-form");
  if (!form) { return; }
  document.addEventListener("keydown", function (ev) {
    var tag = (ev.target && ev.target.tagName) || "";
    if (tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && ev.target.type === "text")) { return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (ev.key >= "1" && ev.key <= "4") {
      var radio = form.querySelector('input[name="choice"][data-key="' + ev.key + '"]');
      if (radio) { radio.checked = true; radio.focus(); ev.preventDefault(); }
    } else if (ev.key === "Enter") {
      if (form.querySelector('input[name="choice"]:checked')) { ev.preventDefault(); form.requestSubmit(); }
    }
  });
});
