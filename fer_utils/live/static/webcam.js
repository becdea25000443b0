// Browser side of fer_utils.live.webcam.WebcamWidget (an anywidget ES module).
//
// Captures the camera with getUserMedia, scales each frame to `capture_width` px, encodes it as JPEG and sends
// it to the kernel in a binary buffer, one frame in flight at a time. The kernel answers with faces (box, label,
// probabilities); they are drawn over the live video, with per-emotion bars, frames/s and latency. Stop clears them
// all (and tells the kernel), so no label outlives the video it described.
// The root element carries data-state, data-results, data-with-face, data-fps, data-label and data-lab-settings for
// tests and styling.

const STALE_MS = 250;
const UI_EVERY_MS = 100;

const MESSAGES = {
  idle: "Press Start to use your camera.",
  starting: "Asking for the camera…",
  running: "Running.",
  "no-face": "No face found: face the camera, with light on your face.",
  denied:
    "Camera permission denied. Allow the camera for this page (the camera icon in the address bar, or the " +
    "browser's site settings), then press Start.",
  "no-camera": "No camera found. Connect a camera (or close the program using it) and press Start.",
  "in-use": "The camera could not be started: another program may be using it.",
  insecure: "", // filled in with the page's origin
  stopped: "Stopped.",
  timeout: "No answer from the kernel: is a cell still running? Frames are re-sent.",
  "kernel-error": "", // the kernel's message
  error: "",
};

// JupyterLab 4.5+ publishes the server's untracked message types in its page config. Without "comm_msg"
// among them it redraws its kernel indicators twice per frame (a busy and an idle status for each frame
// message), which costs the browser more CPU than the capture itself: fer_utils/live/lab_server.py.
function labSettings() {
  const node = document.getElementById("jupyter-config-data");
  let untracked;
  try {
    untracked = node && JSON.parse(node.textContent).untracked_message_types;
  } catch (err) {
    untracked = undefined;
  }
  if (!Array.isArray(untracked)) return "unknown";
  return untracked.includes("comm_msg") ? "project" : "default";
}

function el(tag, cls, parent, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

function render({ model, el: host }) {
  const root = el("div", "fer-webcam", host);
  const bar = el("div", "fer-toolbar", root);
  const button = el("button", "fer-start", bar, "Start");
  button.type = "button";
  const status = el("span", "fer-status", bar);
  const body = el("div", "fer-body", root);
  const stage = el("div", "fer-stage", body);
  const video = el("video", "fer-video", stage);
  video.muted = true;
  video.playsInline = true;
  video.autoplay = true;
  const overlay = el("canvas", "fer-overlay", stage);
  const side = el("div", "fer-side", body);
  const label = el("div", "fer-label", side, "–");
  const bars = el("div", "fer-bars", side);
  const stats = el("div", "fer-stats", side, "");
  const info = el("div", "fer-info", side, model.get("info"));
  root.dataset.labSettings = labSettings();
  if (root.dataset.labSettings === "default") {
    const tip = el("div", "fer-tip", side, "Tip: this JupyterLab redraws its kernel status for every frame. Start it with ");
    el("code", "", tip, "make lab");
    tip.append(" (the repository's ");
    el("code", "", tip, "jupyter_config/");
    tip.append(" settings) for more frames per second.");
  }

  const names = model.get("class_names");
  const rows = names.map((name) => {
    const row = el("div", "fer-bar-row", bars);
    el("span", "fer-bar-name", row, name);
    const track = el("span", "fer-bar-track", row);
    const fill = el("span", "fer-bar-fill", track);
    const value = el("span", "fer-bar-value", row, "");
    return { fill, value };
  });

  const capture = document.createElement("canvas");
  let stream = null;
  let running = false;
  let inflight = null; // the frame the kernel is working on: {id, sent, captured, encodeMs, timer}
  let ready = null; // the next frame, encoded: {buf, w, h, at, encodeMs}
  let preparing = false;
  let lastUi = 0;
  let nextId = 0;
  let lastSend = 0;
  let results = 0;
  let withFace = 0;
  let replies = []; // timestamps of recent replies, for frames/s
  let schedule = null;

  function setState(state, text) {
    root.dataset.state = state;
    status.textContent = text || MESSAGES[state] || state;
    status.className = "fer-status fer-status-" + state;
  }

  function setCounts() {
    root.dataset.results = String(results);
    root.dataset.withFace = String(withFace);
  }

  function insecureText() {
    return (
      "The camera needs a secure page: open JupyterLab at http://localhost:PORT or over https " +
      `(this page is ${location.origin}).`
    );
  }

  async function start() {
    if (running) return;
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setState("insecure", insecureText());
      return;
    }
    setState("starting");
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" },
        audio: false,
      });
    } catch (err) {
      const name = (err && err.name) || "";
      if (name === "NotAllowedError" || name === "PermissionDeniedError" || name === "SecurityError") {
        setState("denied");
      } else if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
        setState("no-camera");
      } else if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") {
        setState("in-use");
      } else {
        setState("error", `The camera could not be started (${name || "error"}: ${(err && err.message) || err}).`);
      }
      return;
    }
    video.srcObject = stream;
    try {
      await video.play();
    } catch (err) {
      // autoplay policies may refuse play() without a gesture; the stream still renders once it has frames
    }
    running = true;
    results = withFace = 0;
    replies = [];
    setCounts();
    button.textContent = "Stop";
    root.classList.toggle("fer-mirror", model.get("mirror"));
    model.send({ type: "start" });
    setState("running");
    loop();
  }

  function stop(state) {
    if (running) model.send({ type: "stop" });
    running = false;
    if (schedule) clearTimeout(schedule);
    schedule = null;
    if (inflight) clearTimeout(inflight.timer);
    inflight = null;
    ready = null;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    video.srcObject = null;
    button.textContent = "Start";
    clearResults();
    if (state) setState(state);
  }

  function loop(delay = 0) {
    if (!running) return;
    if (schedule) clearTimeout(schedule);
    schedule = setTimeout(sendFrame, delay);
  }

  // Encoding the next frame while the kernel works on the current one keeps one frame in flight but hides
  // the JPEG encoding time; a prepared frame older than STALE_MS is dropped and a fresh one captured.
  function prepare() {
    if (!running || preparing || ready) return;
    if (video.readyState < 2 || !video.videoWidth) {
      setTimeout(prepare, 30);
      return;
    }
    preparing = true;
    const at = performance.now();
    const w = Math.min(model.get("capture_width"), video.videoWidth);
    const h = Math.round((w * video.videoHeight) / video.videoWidth);
    capture.width = w;
    capture.height = h;
    capture.getContext("2d").drawImage(video, 0, 0, w, h);
    capture.toBlob(
      (blob) => {
        if (!running || !blob) {
          preparing = false;
          if (running) setTimeout(prepare, 30);
          return;
        }
        blob.arrayBuffer().then((buf) => {
          preparing = false;
          if (!running) return;
          ready = { buf, w, h, at, encodeMs: performance.now() - at };
          sendFrame();
        });
      },
      "image/jpeg",
      model.get("jpeg_quality"),
    );
  }

  function sendFrame() {
    schedule = null;
    if (!running || inflight) return;
    if (!ready) {
      prepare();
      return;
    }
    const minGap = 1000 / Math.max(1, model.get("max_fps"));
    const wait = lastSend + minGap - performance.now();
    if (wait > 1) {
      loop(wait);
      return;
    }
    const frame = ready;
    ready = null;
    if (performance.now() - frame.at > STALE_MS) {
      prepare();
      return;
    }
    const id = nextId++;
    const sent = performance.now();
    lastSend = sent;
    inflight = { id, sent, captured: frame.at, encodeMs: frame.encodeMs, timer: null };
    inflight.timer = setTimeout(() => {
      if (inflight && inflight.id === id) {
        inflight = null;
        setState("timeout");
        loop();
      }
    }, model.get("resend_timeout_ms"));
    model.send({ type: "frame", id, width: frame.w, height: frame.h }, undefined, [frame.buf]);
    prepare();
  }

  function clearOverlay() {
    const ctx = overlay.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, overlay.width, overlay.height);
  }

  function drawFaces(msg) {
    const dpr = window.devicePixelRatio || 1;
    const cw = video.clientWidth;
    const ch = video.clientHeight;
    if (overlay.width !== Math.round(cw * dpr) || overlay.height !== Math.round(ch * dpr)) {
      overlay.width = Math.round(cw * dpr);
      overlay.height = Math.round(ch * dpr);
      overlay.style.width = cw + "px";
      overlay.style.height = ch + "px";
    }
    const ctx = overlay.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cw, ch);
    const sx = cw / msg.width;
    const sy = ch / msg.height;
    const mirror = model.get("mirror");
    ctx.font = "600 13px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    for (const f of msg.faces) {
      const [x, y, w, h] = f.box;
      const left = mirror ? cw - (x + w) * sx : x * sx;
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#ffb000";
      ctx.strokeRect(left, y * sy, w * sx, h * sy);
      const text = `${f.label} ${Math.round(f.confidence * 100)}%`;
      const tw = ctx.measureText(text).width + 8;
      const top = y * sy > 18 ? y * sy : y * sy + h * sy + 18;
      ctx.fillStyle = "rgba(0, 0, 0, 0.65)";
      ctx.fillRect(left, top - 18, tw, 18);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, left + 4, top - 2);
    }
  }

  function showBars(face) {
    root.classList.toggle("fer-no-face", !face);
    label.textContent = face ? `${face.label} ${Math.round(face.confidence * 100)}%` : "no face";
    root.dataset.label = face ? face.label : "";
    rows.forEach((r, i) => {
      const p = face ? face.probs[i] : 0;
      r.fill.style.width = (p * 100).toFixed(1) + "%";
      r.value.textContent = face ? (p * 100).toFixed(0) + "%" : "";
    });
  }

  // No faces, label, bars or timings: the state before Start and after Stop.
  function clearResults() {
    clearOverlay();
    showBars(null);
    root.classList.remove("fer-no-face");
    label.textContent = "–";
    stats.textContent = "";
  }

  function onResult(msg) {
    const now = performance.now();
    const rtt = now - inflight.sent;
    const age = now - inflight.captured;
    const encode = inflight.encodeMs;
    clearTimeout(inflight.timer);
    inflight = null;
    results += 1;
    if (msg.faces.length) withFace += 1;
    setCounts();
    replies.push(now);
    while (replies.length && now - replies[0] > 2000) replies.shift();
    const span = replies.length > 1 ? (replies[replies.length - 1] - replies[0]) / 1000 : 0;
    const fps = span > 0 ? (replies.length - 1) / span : 0;
    root.dataset.fps = fps.toFixed(2);
    drawFaces(msg);
    // Text and bars change at most every UI_EVERY_MS: redrawing them on every frame costs the browser CPU
    // that the camera and the kernel need when all three share two cores, and 10 updates/s read the same.
    if (now - lastUi < UI_EVERY_MS) {
      if (!msg.faces.length) setState("no-face");
      loop();
      return;
    }
    lastUi = now;
    showBars(msg.faces[0]);
    const t = msg.timings_ms;
    stats.textContent =
      `${fps.toFixed(1)} frames/s · round trip ${rtt.toFixed(0)} ms, capture to result ${age.toFixed(0)} ms ` +
      `(JPEG ${encode.toFixed(0)} ms) · ` +
      `kernel ${t.total.toFixed(0)} ms ` +
      `(decode ${t.decode.toFixed(0)}, detect ${t.detect.toFixed(0)}, classify ${t.classify.toFixed(0)})`;
    if (msg.faces.length) {
      setState("running", msg.faces.length === 1 ? "Running: 1 face." : `Running: ${msg.faces.length} faces.`);
    } else {
      setState("no-face");
    }
    loop();
  }

  function onMessage(msg) {
    if (!msg || !running || !inflight || msg.id !== inflight.id) return;
    if (msg.type === "result") {
      onResult(msg);
    } else if (msg.type === "error") {
      clearTimeout(inflight.timer);
      inflight = null;
      setState("kernel-error", "Kernel: " + msg.message);
      loop(100);
    }
  }

  model.on("msg:custom", onMessage);
  model.on("change:info", () => (info.textContent = model.get("info")));
  button.addEventListener("click", () => (running ? stop("stopped") : start()));
  setCounts();
  clearResults();
  setState(window.isSecureContext ? "idle" : "insecure", window.isSecureContext ? "" : insecureText());
  if (model.get("autostart")) start();

  return () => {
    stop();
    model.off("msg:custom", onMessage);
  };
}

export default { render };
