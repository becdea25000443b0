// Detail view of one face in the misclassification browser (fer_utils.browser), an anywidget module.
//
// Python sets `face`: {} for none (then `placeholder` is shown), else the face's row, labels,
// confidence, loss, label-issue score, image and Grad-CAM overlays (PNG data URIs), class
// probabilities, FER+ votes and review marks (see browser_widgets.detail_payload). A newly
// opened face is scrolled into view.

function el_(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function figure(src, cls, caption, note) {
  const fig = el_("figure");
  const img = el_("img", cls);
  img.src = src;
  img.alt = caption;
  const cap = el_("figcaption", "", caption);
  if (note) {
    cap.appendChild(el_("br"));
    cap.appendChild(el_("i", "", note));
  }
  fig.append(img, cap);
  return fig;
}

function bars(probs) {
  const box = el_("div", "fer-prob-bars");
  for (const { name, p, role } of probs) {
    const row = el_("div", "fer-prob-row");
    row.dataset.class = name;
    row.dataset.prob = p.toFixed(6);
    const mark = role === "true" ? " (true)" : role === "pred" ? " (predicted)" : "";
    const track = el_("span", "fer-prob-track");
    const bar = el_("span", "fer-prob-bar" + (role ? ` fer-${role}` : ""));
    bar.style.width = `${(100 * p).toFixed(2)}%`;
    track.appendChild(bar);
    row.append(el_("span", "fer-prob-name", name + mark), track, el_("span", "fer-prob-value", p.toFixed(3)));
    box.appendChild(row);
  }
  return box;
}

function votes(d) {
  const box = el_("div", "fer-ferplus");
  const head = el_("div");
  head.append(el_("b", "", "FER+ votes"), ` (majority: ${d.ferplus_name || "none"})`);
  const list = el_("div", "fer-votes");
  for (const { name, n } of d.votes) {
    const v = el_("span", "fer-vote" + (n ? "" : " fer-vote-zero"));
    v.dataset.name = name;
    v.append(el_("b", "", String(n)), ` ${name}`);
    list.appendChild(v);
  }
  box.append(head, list);
  return box;
}

function render({ model, el }) {
  const root = el_("div", "fer-detail-body");
  el.appendChild(root);
  let shown = (model.get("face") || {}).position;

  function draw() {
    const d = model.get("face") || {};
    root.replaceChildren();
    if (d.position === undefined) {
      root.appendChild(el_("div", "fer-detail-empty", model.get("placeholder")));
      shown = undefined;
      return;
    }
    const verdict = d.correct ? "correct" : "wrong";
    root.appendChild(el_("div", "fer-detail-title",
      `Row ${d.row} of ${d.source} (${d.split}): true ${d.true_name}, predicted ${d.pred_name} `
      + `(${d.confidence.toFixed(3)}, ${verdict}); loss ${d.loss.toFixed(3)}`));
    const marks = [d.flagged ? "⚑ flagged" : "", d.corrected_name ? `relabelled ${d.corrected_name}` : ""].filter(Boolean);
    if (marks.length) root.appendChild(el_("div", "fer-detail-review", marks.join(" · ")));
    const images = el_("div", "fer-detail-images");
    images.appendChild(figure(d.face, "fer-detail-face", "face"));
    for (const m of d.maps) images.appendChild(figure(m.src, "fer-heatmap", m.title, m.empty ? "no positive evidence" : ""));
    const scale = el_("div", "fer-heat-scale");
    scale.append(el_("span", "", "no evidence"), el_("span", "fer-heat-bar"), el_("span", "", "most"));
    root.append(images, scale, el_("div", "fer-detail-note", d.gradcam_note || ""), bars(d.probs));
    if (d.votes) root.appendChild(votes(d));
    root.appendChild(el_("div", "fer-detail-note",
      `Label-issue score ${d.label_issue.toFixed(3)} (above 0: another class is likelier than the label, `
      + "by confident learning)."));
    if (d.position !== shown) {
      shown = d.position;
      requestAnimationFrame(() => el.scrollIntoView({ block: "nearest" }));
    }
  }

  model.on("change:face", draw);
  model.on("change:placeholder", draw);
  draw();
  return () => {
    model.off("change:face", draw);
    model.off("change:placeholder", draw);
  };
}

export default { render };
