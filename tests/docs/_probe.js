// What a reader would see wrong on the page that is open, as one JSON-able object.
// Run by tests/docs/test_site.py (and tests/docs/site_report.py) in headless Chromium after
// KaTeX has rendered. `GENMATH_SELF_ID` (set before this script) is the id of the derivation
// the page is about, if any: its own id need not link to itself.
(() => {
  const article = document.querySelector("article.md-content__inner") || document.body;
  // the id pattern of the build hook (docs/_hooks/ids.py): "D-fgan-bound-*", a family of
  // ids named by its prefix, is not an id
  const ID = /(?<![\w\-.\/#])[DC]-[a-z0-9]+(?:[-_][a-z0-9]+)*(?![\w-])/g;
  const SKIP_TEXT = "script, style, .katex, pre, code, textarea, .md-search, .md-source";

  // Visible text nodes of the article, outside math and code (where `$` and `\(` are
  // legitimate), with the element each lies in.
  function textNodes(root, skip) {
    const out = [];
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!el || el.closest(skip)) continue;
      out.push(n);
    }
    return out;
  }

  const prose = textNodes(article, SKIP_TEXT);
  const raw = [];
  for (const n of prose) {
    const t = n.textContent;
    for (const d of ["$", "\\(", "\\)", "\\[", "\\]"]) {
      if (t.includes(d)) raw.push(t.trim().slice(0, 120));
    }
  }
  const katexErrors = [...article.querySelectorAll(".katex-error")].map(
    (e) => (e.getAttribute("title") || e.textContent).slice(0, 120));

  // Id mentions (prose and code alike) that are not inside a link.
  const unlinked = [];
  const mentionNodes = textNodes(article, "script, style, .katex, .headerlink, textarea");
  for (const n of mentionNodes) {
    const ids = n.textContent.match(ID) || [];
    for (const id of ids) {
      if (id === window.GENMATH_SELF_ID) continue;
      if (n.parentElement.closest("a[href]")) continue;
      // an example or a test may name an id that exists nowhere, on purpose: in listings
      // the build hook links every id that exists and marks the others
      if (n.parentElement.closest(".gm-unregistered-id")) continue;
      unlinked.push(id);
    }
  }

  // Links in the body, other than a heading's own permalink.
  const links = [...article.querySelectorAll("a[href]")]
    .filter((a) => !a.classList.contains("headerlink"))
    .map((a) => a.getAttribute("href"));

  // Horizontal overflow: display math and code blocks that scroll sideways, and anything
  // sticking out of the viewport that no scroll container holds.
  const scrolls = (e) => e.scrollWidth > e.clientWidth + 1;
  const displays = [...article.querySelectorAll(".katex-display")];
  const codeBlocks = [...article.querySelectorAll("pre > code")];
  const vw = document.documentElement.clientWidth;
  function inScroller(el) {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const ox = getComputedStyle(p).overflowX;
      if (ox === "auto" || ox === "scroll" || ox === "hidden") return true;
    }
    return false;
  }
  const sticking = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= vw + 1) continue;
    if (getComputedStyle(el).position === "fixed") continue;
    if (inScroller(el)) continue;
    sticking.push(`${el.tagName.toLowerCase()}.${[...el.classList].join(".")} ` +
      `${Math.round(r.right)}px: ${(el.textContent || "").trim().slice(0, 60)}`);
  }
  const images = [...article.querySelectorAll("img")].filter((i) => i.naturalWidth > 0).map(
    (i) => ({ src: i.getAttribute("src"), natural: i.naturalWidth, shown: i.clientWidth }));
  // Code names that are links, with where they point (the API entries of derivation pages).
  const codeLinks = [...article.querySelectorAll("a[href] > code")].map(
    (c) => [c.textContent.trim(), c.parentElement.getAttribute("href")]);
  return {
    title: document.title,
    codeLinks,
    raw,
    katexErrors,
    unlinked,
    links,
    displays: displays.length,
    displaysScrolling: displays.filter(scrolls).length,
    scrollingDisplayTex: displays.filter(scrolls).map((e) =>
      (e.querySelector("annotation") || {}).textContent || "").map((t) => t.slice(0, 80)),
    codeBlocks: codeBlocks.length,
    codeBlocksScrolling: codeBlocks.filter(scrolls).length,
    pageWidth: document.documentElement.scrollWidth,
    viewport: vw,
    sticking: sticking.slice(0, 10),
    images,
    text: article.innerText,
  };
})()
