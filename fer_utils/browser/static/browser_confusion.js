// Confusion matrix of the misclassification browser (fer_utils.browser), an anywidget module.
//
// Python sets `counts` (rows: true class, columns: predicted), `class_names` and `selected` ([true, pred],
// -1 for "any"). A click, or Enter / Space on a focused cell, sends {kind: "cell", true, pred}.
// Tab reaches the matrix once; arrows then move between its cells.

function render({ model, el }) {
  const table = document.createElement("table");
  table.className = "fer-confusion";
  table.setAttribute("data-lm-suppress-shortcuts", "true"); // keep JupyterLab's notebook shortcuts out
  el.appendChild(table);
  let tabStop = [0, 0];

  const cell = (t, p) => table.querySelector(`.fer-cm-cell[data-true="${t}"][data-pred="${p}"]`);

  function moveTo(t, p) {
    const n = model.get("class_names").length;
    const target = cell(Math.min(Math.max(t, 0), n - 1), Math.min(Math.max(p, 0), n - 1));
    if (!target) return;
    table.querySelectorAll(".fer-cm-cell").forEach((c) => (c.tabIndex = -1));
    target.tabIndex = 0;
    target.focus();
    tabStop = [Number(target.dataset.true), Number(target.dataset.pred)];
  }

  function draw() {
    const cm = model.get("counts");
    const names = model.get("class_names");
    const sel = model.get("selected");
    const hadFocus = table.contains(document.activeElement);
    table.replaceChildren();
    const cap = document.createElement("caption");
    cap.textContent = "rows: true, columns: predicted; click a cell";
    table.appendChild(cap);
    const head = document.createElement("tr");
    head.appendChild(document.createElement("th"));
    for (const n of names) {
      const th = document.createElement("th");
      th.textContent = n.slice(0, 3);
      th.title = "predicted " + n;
      head.appendChild(th);
    }
    table.appendChild(head);
    cm.forEach((row, t) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = names[t];
      th.className = "fer-cm-rowhead";
      tr.appendChild(th);
      const total = row.reduce((a, b) => a + b, 0) || 1;
      row.forEach((v, p) => {
        const td = document.createElement("td");
        td.className = "fer-cm-cell" + (t === p ? " fer-cm-diag" : "")
          + (sel[0] === t && sel[1] === p ? " fer-cm-selected" : "");
        td.dataset.true = t;
        td.dataset.pred = p;
        td.textContent = v;
        td.tabIndex = t === tabStop[0] && p === tabStop[1] ? 0 : -1;
        td.setAttribute("data-lm-suppress-shortcuts", "true");
        const rate = v / total;
        td.style.background = t === p ? `rgba(46,133,64,${0.15 + 0.7 * rate})` : `rgba(201,48,44,${v ? 0.1 + 0.8 * rate : 0})`;
        td.title = `true ${names[t]}, predicted ${names[p]}: ${v} (${(100 * rate).toFixed(1)}%)`;
        td.addEventListener("click", () => {
          tabStop = [t, p];
          model.send({ kind: "cell", true: t, pred: p });
        });
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
    if (hadFocus) moveTo(tabStop[0], tabStop[1]);
  }

  table.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey || !e.target.classList.contains("fer-cm-cell")) return;
    const t = Number(e.target.dataset.true);
    const p = Number(e.target.dataset.pred);
    switch (e.key) {
      case "ArrowRight": moveTo(t, p + 1); break;
      case "ArrowLeft": moveTo(t, p - 1); break;
      case "ArrowDown": moveTo(t + 1, p); break;
      case "ArrowUp": moveTo(t - 1, p); break;
      case "Enter":
      case " ":
        tabStop = [t, p];
        model.send({ kind: "cell", true: t, pred: p });
        break;
      default: return;
    }
    e.preventDefault();
    e.stopPropagation();
  });

  model.on("change:counts", draw);
  model.on("change:selected", draw);
  draw();
  return () => {
    model.off("change:counts", draw);
    model.off("change:selected", draw);
  };
}

export default { render };
