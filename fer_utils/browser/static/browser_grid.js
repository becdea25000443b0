// Thumbnail grid of the misclassification browser (fer_utils.browser), an anywidget module.
//
// Python sets `items` (the faces of one page), `selected` (the face in the detail view, -1 for none),
// `thumb_px` and `ncols` (the most columns; fewer where the width is narrower). The grid answers with
// custom messages: {kind: "open", position}, {kind: "flag", position}, {kind: "page", delta}.
//
// Keyboard, with a face focused (Tab reaches the grid once; the last focused face keeps the tab stop):
// arrows move, Home / End go to the first / last face, Enter or Space opens the detail, f flags,
// n or PageDown and p or PageUp turn the page.

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "fer-grid";
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", "faces: arrows move, Enter opens, f flags, n and p turn pages");
  // JupyterLab's notebook shortcuts (Enter edits a cell, arrows change cells) stay out of the grid.
  root.setAttribute("data-lm-suppress-shortcuts", "true");
  el.appendChild(root);

  let tabStop = 0; // index of the face that holds the tab stop
  let refocus = false; // a key turned the page: focus the new page's first face once it is drawn

  const thumbs = () => [...root.querySelectorAll(".fer-thumb")];
  const columns = () => Math.max(1, getComputedStyle(root).gridTemplateColumns.split(" ").filter(Boolean).length);

  function moveTo(i) {
    const t = thumbs();
    if (!t.length) return;
    tabStop = Math.min(Math.max(i, 0), t.length - 1);
    t.forEach((e, j) => (e.tabIndex = j === tabStop ? 0 : -1));
    t[tabStop].focus();
  }

  function thumb(it, j, px, selected) {
    const fig = document.createElement("figure");
    fig.className = "fer-thumb" + (it.correct ? " fer-correct" : " fer-wrong")
      + (it.position === selected ? " fer-selected" : "") + (it.flagged ? " fer-flagged" : "")
      + (it.corrected_name ? " fer-relabelled" : "");
    fig.tabIndex = j === tabStop ? 0 : -1;
    fig.setAttribute("data-lm-suppress-shortcuts", "true"); // no notebook shortcut fires on a focused face
    fig.dataset.position = it.position;
    fig.dataset.index = it.index;
    fig.dataset.true = it.true_name;
    fig.dataset.pred = it.pred_name;
    const review = [it.flagged ? "flagged" : "", it.corrected_name ? `relabelled ${it.corrected_name}` : ""]
      .filter(Boolean).join(", ");
    fig.title = `row ${it.index}: true ${it.true_name}, predicted ${it.pred_name} (${it.confidence.toFixed(3)})`
      + (review ? `; ${review}` : "") + " - Enter or click for details";
    const img = document.createElement("img");
    img.src = it.src;
    img.width = px;
    img.height = px;
    img.alt = `row ${it.index}`;
    const cap = document.createElement("figcaption");
    const l1 = document.createElement("div");
    l1.className = "fer-thumb-labels";
    l1.textContent = `${it.true_name} → ${it.pred_name}`;
    const l2 = document.createElement("div");
    l2.className = "fer-thumb-conf";
    l2.textContent = `${it.confidence.toFixed(2)} · #${it.index}`;
    cap.append(l1, l2);
    fig.append(img, cap);
    if (review) {
      const badge = document.createElement("span");
      badge.className = "fer-thumb-review";
      badge.textContent = (it.flagged ? "⚑" : "") + (it.corrected_name ? ` ${it.corrected_name.slice(0, 3)}` : "");
      badge.title = review;
      fig.appendChild(badge);
    }
    fig.addEventListener("click", () => {
      tabStop = j;
      model.send({ kind: "open", position: it.position });
    });
    fig.addEventListener("focus", () => {
      tabStop = j;
      thumbs().forEach((e, k) => (e.tabIndex = k === j ? 0 : -1));
    });
    return fig;
  }

  function draw() {
    const items = model.get("items");
    const px = model.get("thumb_px");
    const hadFocus = refocus || root.contains(document.activeElement);
    refocus = false;
    root.style.setProperty("--fer-thumb-px", `${px}px`);
    root.style.maxWidth = `${model.get("ncols") * (px + 14)}px`;
    root.replaceChildren();
    if (!items.length) {
      const empty = document.createElement("div");
      empty.className = "fer-grid-empty";
      empty.textContent = "No faces match this selection.";
      root.appendChild(empty);
      return;
    }
    tabStop = Math.min(tabStop, items.length - 1);
    const selected = model.get("selected");
    items.forEach((it, j) => root.appendChild(thumb(it, j, px, selected)));
    if (hadFocus) moveTo(tabStop);
  }

  function markSelected() {
    const selected = model.get("selected");
    thumbs().forEach((t) => t.classList.toggle("fer-selected", Number(t.dataset.position) === selected));
  }

  root.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const t = thumbs();
    const at = Math.max(0, t.indexOf(document.activeElement));
    const position = t[at] ? Number(t[at].dataset.position) : null;
    const turn = (delta) => {
      refocus = true;
      tabStop = 0;
      model.send({ kind: "page", delta });
    };
    switch (e.key) {
      case "ArrowRight": moveTo(at + 1); break;
      case "ArrowLeft": moveTo(at - 1); break;
      case "ArrowDown": moveTo(at + columns()); break;
      case "ArrowUp": moveTo(at - columns()); break;
      case "Home": moveTo(0); break;
      case "End": moveTo(t.length - 1); break;
      case "Enter":
      case " ":
        if (position !== null) model.send({ kind: "open", position });
        break;
      case "f":
      case "F":
        if (position !== null) model.send({ kind: "flag", position });
        break;
      case "n":
      case "PageDown": turn(1); break;
      case "p":
      case "PageUp": turn(-1); break;
      default: return;
    }
    e.preventDefault();
    e.stopPropagation();
  });

  const redraw = ["change:items", "change:thumb_px", "change:ncols"];
  redraw.forEach((ev) => model.on(ev, draw));
  model.on("change:selected", markSelected);
  draw();
  return () => {
    redraw.forEach((ev) => model.off(ev, draw));
    model.off("change:selected", markSelected);
  };
}

export default { render };
