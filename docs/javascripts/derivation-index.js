// Filter the derivation index (docs/derivations/) by the part of genmath a row's code is in
// and by status. Rows carry data-area ("core: path|family: diffusion") and data-status, both
// written by genmath/derivations/_site.py from the verification results.
function genmathFilterIndex(root) {
  const form = root.querySelector(".gm-index-filter");
  if (!form) return;
  const area = form.querySelector('[data-gm-filter="area"]');
  const status = form.querySelector('[data-gm-filter="status"]');
  const shown = form.querySelector(".gm-index-shown");
  const rows = [...root.querySelectorAll("table.gm-index tbody tr")];
  function apply() {
    let n = 0;
    for (const row of rows) {
      const areas = (row.dataset.area || "").split("|");
      const keep = (!area.value || areas.includes(area.value)) &&
        (!status.value || row.dataset.status === status.value);
      row.hidden = !keep;
      n += keep;
    }
    shown.textContent = area.value || status.value ? `${n} of ${rows.length} rows shown` : "";
  }
  area.addEventListener("change", apply);
  status.addEventListener("change", apply);
  apply();
}

if (typeof document$ !== "undefined") {
  document$.subscribe(({ body }) => genmathFilterIndex(body));
} else {
  document.addEventListener("DOMContentLoaded", () => genmathFilterIndex(document.body));
}
