// Render the math that pymdownx.arithmatex (generic mode) leaves in the page, with the
// KaTeX served from this site. Material's instant navigation swaps page bodies, so render
// on each `document$` emission rather than once on load.
function genmathRenderMath(root) {
  renderMathInElement(root, {
    delimiters: [
      { left: "\\[", right: "\\]", display: true },
      { left: "\\(", right: "\\)", display: false },
      { left: "$$", right: "$$", display: true },
    ],
    throwOnError: false,
    // a derivation's gradient can expand the site printer's macros more than KaTeX's default
    // 1000 times (D-meanflow-losses) without any loop
    maxExpand: 20000,
  });
}

if (typeof document$ !== "undefined") {
  document$.subscribe(({ body }) => genmathRenderMath(body));
} else {
  document.addEventListener("DOMContentLoaded", () => genmathRenderMath(document.body));
}
