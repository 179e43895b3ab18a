// meterd console: the only script a page runs (the Content-Security-Policy allows no inline one).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // The language picker sends itself on change; its button stays for browsers without script.
  for (const select of document.querySelectorAll("select.autosubmit")) {
    const button = select.form.querySelector(".js-hidden");
    if (button) button.classList.add("hidden");
    select.addEventListener("change", () => select.form.submit());
  }
  // Review queue: j / k move between anomalies (not while typing in a field).
  const items = Array.from(document.querySelectorAll("article.anomaly"));
  if (items.length) {
    document.addEventListener("keydown", (event) => {
      if (event.target.closest("input, select, textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key !== "j" && event.key !== "k") return;
      const at = items.indexOf(document.activeElement.closest("article.anomaly"));
      const next = event.key === "j" ? Math.min(at + 1, items.length - 1) : Math.max(at - 1, 0);
      items[next].focus();
      event.preventDefault();
    });
  }
});
