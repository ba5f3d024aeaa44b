/* Reading aids for every page of the book (Jupyter Book loads each .js file of _static; this
 * one fetches nothing).
 *
 * 1. Scroll cues. A formula, table, code block or printed output wider than the text column
 *    scrolls sideways inside its own box (an inline formula too wide for its paragraph gets a
 *    line of its own to do so: MathJax 3 cannot break it, and it would be cut off). The box is
 *    marked `scroll-more-right` and/or `scroll-more-left` while more of it is hidden on that
 *    side; custom.css fades that side out, so a cut-off formula or column reads as "there is
 *    more this way".
 * 2. Solution titles. sphinx-togglebutton opens a solution when its title is clicked, but only
 *    when the click lands on the title's own text or on the toggle button (a click on anything
 *    else in the title, such as a formula, makes it throw). Here a tap anywhere on the title
 *    opens or closes the solution, and the small link back to the exercise (see
 *    _ext/offline_theme.py) only follows the link.
 * 3. Search snippets. Sphinx's search shows, under each page found, the text around the first
 *    match in the page's main region. That region also holds the page's table of contents
 *    (printed before the article), so the snippet was often a list of section titles. The
 *    snippet is taken from the article alone.
 */
(() => {
  "use strict";

  /* 1. Scroll cues */
  const SCROLL_BOXES = [
    "article div.math > mjx-container",
    "article .pst-scrollable-table-container",
    "article pre",
  ].join(", ");

  const updateCue = (box) => {
    const hidden = box.scrollWidth - box.clientWidth;
    const left = Math.abs(box.scrollLeft);
    box.classList.toggle("scroll-more-left", hidden > 1 && left > 1);
    box.classList.toggle("scroll-more-right", hidden > 1 && left < hidden - 1);
  };

  const watched = new WeakSet();
  const boxOf = new WeakMap();   // a box's content (formula, table) -> the box
  const resized = new ResizeObserver((entries) => {
    for (const { target } of entries) {
      if (target.matches("div.math")) {
        // MathJax puts its container into the div once it has typeset the formula
        const box = target.querySelector(":scope > mjx-container");
        if (box) watch(box);
      } else {
        updateCue(boxOf.get(target) || target);
      }
    }
  });

  const watch = (box) => {
    if (watched.has(box)) {
      updateCue(box);
      return;
    }
    watched.add(box);
    box.addEventListener("scroll", () => updateCue(box), { passive: true });
    resized.observe(box);   // reports the box's size at once, then whenever it changes
    const content = box.firstElementChild;   // a formula or table that may grow inside its box
    if (content) {
      boxOf.set(content, box);
      resized.observe(content);
    }
  };

  // An inline formula wider than its paragraph cannot break (MathJax 3 does not break lines) and
  // would be cut off at the column's edge; such a formula gets a line of its own and scrolls.
  const blockOf = (el) => {
    let block = el.parentElement;
    while (block.parentElement && getComputedStyle(block).display.startsWith("inline")) block = block.parentElement;
    return block;
  };
  const fitInlineFormulas = () => {
    for (const box of document.querySelectorAll('article mjx-container:not([display="true"])')) {
      const math = box.querySelector(":scope > mjx-math");
      const block = blockOf(box);
      if (!math || !block) continue;
      const style = getComputedStyle(block);
      const room = block.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      const wide = room > 0 && math.getBoundingClientRect().width > room + 1;
      box.classList.toggle("wide-inline", wide);
      if (wide) watch(box);
      else if (watched.has(box)) updateCue(box);
    }
  };

  const watchAll = () => {
    document.querySelectorAll("article div.math").forEach((div) => resized.observe(div));
    fitInlineFormulas();
    document.querySelectorAll(SCROLL_BOXES).forEach(watch);
  };

  /* 2. Solution titles */
  const routeTitleClicks = (event) => {
    const title = event.target.closest && event.target.closest(".admonition.toggle > .admonition-title");
    if (!title) return;
    if (event.target.closest("a[href]")) {
      // the link back to the exercise: follow it, leave the solution as it is
      event.stopPropagation();
      return;
    }
    const button = title.querySelector("button.toggle-button");
    if (!button || event.target === title || event.target === button) return;   // togglebutton's own case
    event.preventDefault();
    event.stopPropagation();
    button.click();
  };

  /* 3. Search snippets */
  const snippetsFromTheArticle = () => {
    // searchtools.js declares `Search` in a later script of the search page; this runs once all are loaded
    if (typeof Search === "undefined" || typeof Search.htmlToText !== "function") return;
    const htmlToText = Search.htmlToText;
    if (htmlToText.articleOnly) return;
    const articleOnly = (htmlString, anchor) => {
      const page = new DOMParser().parseFromString(htmlString, "text/html");
      const main = page.querySelector('[role="main"]');
      const article = main && main.querySelector("article");
      if (article) main.replaceChildren(article);
      return htmlToText(page.documentElement.outerHTML, anchor);
    };
    articleOnly.articleOnly = true;
    Search.htmlToText = articleOnly;
  };

  document.addEventListener("click", routeTitleClicks, true);
  const start = () => {
    snippetsFromTheArticle();
    watchAll();
    // later layout changes that resize no box: MathJax's typesetting, web fonts, a new window width
    const mathjax = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
    if (mathjax) mathjax.then(watchAll);
    if (document.fonts) document.fonts.ready.then(watchAll);
    window.addEventListener("load", watchAll);
    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(fitInlineFormulas, 150);
    });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
