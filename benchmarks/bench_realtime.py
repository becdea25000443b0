"""Real-time pipeline speed: frames/s and p50/p95 latency per stage (decode, detect, classify).

::

    .venv/bin/python benchmarks/bench_realtime.py                        # untrained EfficientNet-B3, 320x240, one face
    .venv/bin/python benchmarks/bench_realtime.py --checkpoint models/runs/default/best.pt --backend torch
    .venv/bin/python benchmarks/bench_realtime.py --browser 20           # also the widget in JupyterLab + Chromium
    .venv/bin/python benchmarks/bench_realtime.py --browser 20 --jupyter-defaults   # ... without jupyter_config/
    .venv/bin/python benchmarks/bench_realtime.py --detector mtcnn       # another detector (not for --browser's widget)
    .venv/bin/python benchmarks/bench_realtime.py --camera 0             # also a real camera, 300 frames
    .venv/bin/python benchmarks/bench_realtime.py --fake-camera 30       # also camera index 0 on a V4L2 stand-in
    taskset -c 0,1 .venv/bin/python benchmarks/bench_realtime.py        # pin to two cores on a bigger machine

Paths measured (all on a clip of a real public-domain face moving over a plain background, one face per frame):

- ``cli``: what ``python -m fer_utils.realtime --source clip.mp4 --no-window`` does: decode the video frame
  (FFmpeg), detect, crop, classify, smooth. Target: >= 30 frames/s on 2 cores.
- ``widget-kernel``: the kernel's share of the webcam widget: decode a 320-px JPEG as the browser sends it,
  then the same pipeline. An upper bound for the widget; the browser's capture/encode and the round trip
  through JupyterLab come on top.
- ``--camera INDEX``: what ``python -m fer_utils.realtime --source INDEX --no-window`` does with a real camera.
  Frames/s cannot exceed the camera's own rate, and "decode" includes waiting for the camera's next frame;
  detect + classify against the camera's frame interval is the headroom. Say what is in front of it.
- ``--fake-camera FPS``: for machines without a camera, the command line itself
  (``python -m fer_utils.realtime --source 0 --no-window``, in a child process) on camera index 0 served by
  tests/fake_v4l2.c, a user-space V4L2 webcam that OpenCV opens through its real V4L2 backend: YUYV frames
  of the clip's face at ``--fake-camera-size`` (default 640x480, the mode OpenCV asks a webcam for), captured on
  the camera's own clock at FPS (0: whenever the pipeline asks, to see its ceiling). Needs gcc.
- ``--browser SECONDS``: the widget end to end, in JupyterLab with headless Chromium and a fake camera
  (needs /usr/bin/chromium and playwright); frames/s as the widget itself reports them. Target: >= 15.
  JupyterLab runs with the repository's server settings (``jupyter_config/``, as ``make lab`` starts it;
  see fer_utils/live/lab_server.py), or with Jupyter's defaults under ``--jupyter-defaults``.

Weights do not change speed, so the default is an untrained EfficientNet-B3 checkpoint (the shipped model's
architecture). Prints a table and, with ``--json FILE``, writes the numbers. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def untrained_checkpoint(path: Path, arch: str, img_size: int = 48) -> Path:
    import torch

    from fer_utils import CLASS_NAMES
    from fer_utils.model import ModelConfig, Preprocess, create_model
    from fer_utils.model import checkpoint as ck

    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch)
    model, _ = create_model(cfg)
    return ck.save_checkpoint(
        path,
        {
            "format": ck.FORMAT,
            "model_config": cfg.to_dict(),
            "state_dict": model.state_dict(),
            "class_names": list(CLASS_NAMES),
            "preprocess": Preprocess(img_size=img_size, crop_size=44).to_dict(),
            "tta": "none",
        },
    )


def summarise(timings: dict[str, list[float]], frames: int, faces: int, seconds: float) -> dict:
    out = {"frames": frames, "frames_with_face": faces, "fps": frames / seconds if seconds else 0.0}
    for stage, values in timings.items():
        a = np.asarray(values)
        out[stage] = {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95))}
    return out


def bench_cli(clip: Path, pipeline, warmup: int) -> dict:
    """Video file -> pipeline, exactly as fer_utils.live.runner.run reads it, timed per stage."""
    from fer_utils.live.runner import run

    run(str(clip), pipeline, max_frames=warmup)
    stats, _ = run(str(clip), pipeline)
    return _run_summary(stats.to_dict())


def _run_summary(stats: dict) -> dict:
    """A run's statistics (``RunStats.to_dict()``, the command line's --json) as this benchmark reports them:
    counts, frames/s, p50/p95 per stage."""
    out = {k: stats[k] for k in ("frames", "frames_with_face", "fps", "corrupt_frames")}
    out.update({k: {"p50": v["p50"], "p95": v["p95"]} for k, v in stats["latency_ms"].items()})
    return out


def bench_widget_kernel(frames: list[np.ndarray], pipeline, warmup: int, quality: int) -> dict:
    """JPEG bytes (as the browser sends them) -> pipeline.process_jpeg, timed per stage."""
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes() for f in frames]
    pipeline.reset()
    for j in jpegs[:warmup]:
        pipeline.process_jpeg(j)
    pipeline.reset()
    timings: dict[str, list[float]] = {k: [] for k in ("decode", "detect", "classify", "total")}
    with_face = 0
    t0 = time.perf_counter()
    for j in jpegs:
        r = pipeline.process_jpeg(j)
        with_face += bool(r.faces)
        for k in timings:
            timings[k].append(r.timings_ms[k])
    return summarise(timings, len(jpegs), with_face, time.perf_counter() - t0)


def bench_camera(index: int, pipeline, frames: int, warmup: int) -> dict:
    """Camera index -> pipeline, as fer_utils.live.runner.run reads it; a camera that does not open is reported."""
    from fer_utils.live.runner import run
    from fer_utils.live.sources import SourceError

    try:
        if warmup:
            run(str(index), pipeline, max_frames=warmup)
        stats, _ = run(str(index), pipeline, max_frames=frames)
    except SourceError as err:
        return {"error": str(err)}
    return _run_summary(stats.to_dict())


def bench_fake_camera(
    fps: float, size: tuple[int, int], checkpoint: Path, work: Path, frames: int, pipeline_args: list[str]
) -> dict:
    """``python -m fer_utils.realtime --source 0`` on the V4L2 stand-in camera, as a user would run it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import fake_camera

    from fer_utils.live.sources import sample_frames

    raw = work / f"camera_{size[0]}x{size[1]}.yuyv"
    fake_camera.write_yuyv(raw, sample_frames(60, size, seed=5))
    out, report = work / "camera.json", work / "camera_report.json"
    cmd = [
        sys.executable,
        "-m",
        "fer_utils.realtime",
        "--source",
        "0",
        "--checkpoint",
        str(checkpoint),
        "--no-window",
        "--max-frames",
        str(frames),
        "--json",
        str(out),
        *pipeline_args,
    ]
    env = {**fake_camera.camera_env(fake_camera.build(work), raw, size, fps), "FAKE_V4L2_REPORT": str(report)}
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120 + frames)
    except subprocess.TimeoutExpired:
        return {"error": f"no result after {120 + frames} s"}
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]}
    summary = _run_summary(json.loads(out.read_text()))
    counts = json.loads(report.read_text())
    summary["camera_frames"] = {k: counts[k] for k in ("captured", "delivered", "dropped")}
    return {
        **summary,
        "camera": f"V4L2 stand-in, YUYV {size[0]}x{size[1]} at {fps:g} frames/s"
        if fps
        else f"V4L2 stand-in, YUYV {size[0]}x{size[1]}, a frame whenever asked",
    }


def bench_browser(seconds: float, checkpoint: Path, work: Path, project_settings: bool = True) -> dict:
    """The widget end to end in JupyterLab + headless Chromium with a fake camera."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from jupyter_lab import block_outside_requests, launch_chromium
    from playwright.sync_api import sync_playwright
    from test_webcam_browser import _open_and_run_all, webcam_lab

    from fer_utils.live.sources import sample_frames, write_y4m

    y4m = write_y4m(work / "face.y4m", sample_frames(60, (320, 240), seed=3), fps=30)
    (work / "lab").mkdir()
    (work / "home").mkdir()
    with webcam_lab(work / "lab", work / "home", checkpoint, project_settings) as lab, sync_playwright() as p:
        browser = launch_chromium(
            p,
            [
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-video-capture={y4m}",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            block_outside_requests(page, "127.0.0.1")
            _open_and_run_all(page, f"{lab['url']}/lab/tree/05_webcam.ipynb?token={lab['token']}")
            w = page.locator(".fer-webcam")
            w.locator(".fer-start").click()
            page.wait_for_function(
                "() => Number(document.querySelector('.fer-webcam').dataset.results) >= 10", timeout=120_000
            )
            procs = _process_groups()
            cpu0 = _cpu_seconds(procs)
            n0, t0 = int(w.get_attribute("data-results")), time.perf_counter()
            page.wait_for_timeout(seconds * 1000)
            n1, t1 = int(w.get_attribute("data-results")), time.perf_counter()
            cpu1 = _cpu_seconds(procs)
            faces = int(w.get_attribute("data-with-face"))
            text = w.locator(".fer-stats").inner_text()
            w.locator(".fer-start").click()
        finally:
            browser.close()
    n = max(1, n1 - n0)
    cpu_ms = {k: 1000 * (cpu1[k] - cpu0[k]) / n for k in cpu0}
    cores = {k: (cpu1[k] - cpu0[k]) / (t1 - t0) for k in cpu0}
    return {
        "jupyter_settings": "project" if project_settings else "default",
        "frames": n1 - n0,
        "fps": (n1 - n0) / (t1 - t0),
        "frames_with_face_total": faces,
        "results_total": n1,
        "widget_line": text,
        "cpu_ms_per_frame": cpu_ms,
        "cores_busy": cores,
    }


def _process_groups() -> dict[str, list]:
    """This benchmark's child processes, grouped: the kernel, the Jupyter server, Chromium, the rest."""
    import psutil

    groups: dict[str, list] = {"kernel": [], "jupyter_server": [], "chromium": [], "other": []}
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        key = (
            "kernel"
            if "ipykernel" in cmd
            else "jupyter_server"
            if "jupyterlab" in cmd
            else "chromium"
            if "chrom" in cmd
            else "other"
        )
        groups[key].append(proc)
    return groups


def _cpu_seconds(groups: dict[str, list]) -> dict[str, float]:
    import psutil

    out = {}
    for key, procs in groups.items():
        total = 0.0
        for proc in procs:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        out[key] = total
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="checkpoint to time (default: an untrained --arch checkpoint)")
    ap.add_argument("--arch", default="efficientnet_b3", help="architecture of the untrained default checkpoint")
    ap.add_argument("--img-size", type=int, default=48, help="model input side of the untrained default checkpoint")
    ap.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"])
    ap.add_argument("--threads", type=int, default=1, help="classifier threads")
    ap.add_argument("--frames", type=int, default=300, help="frames in the clip")
    ap.add_argument("--size", default="320x240", help="frame size WIDTHxHEIGHT")
    ap.add_argument("--full-detect-every", type=int, default=10, help="frames between full-frame face searches")
    ap.add_argument("--detector", default="haar", help="face detector: haar, mtcnn, or yunet with --detector-model")
    ap.add_argument("--detector-model", default="", help="model file for --detector yunet")
    ap.add_argument("--warmup", type=int, default=20, help="untimed frames first")
    ap.add_argument("--browser", type=float, default=0, help="also time the widget in Chromium for this many seconds")
    ap.add_argument(
        "--jupyter-defaults",
        action="store_true",
        help="run JupyterLab for --browser without the repository's jupyter_config/ settings",
    )
    ap.add_argument("--camera", type=int, help="also time the command-line pipeline on this camera index")
    ap.add_argument(
        "--fake-camera",
        type=float,
        metavar="FPS",
        help="also time the command line on camera 0 served by the V4L2 stand-in at FPS (0: unpaced)",
    )
    ap.add_argument("--fake-camera-size", default="640x480", help="frame size of the --fake-camera stand-in")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if args.jupyter_defaults and not args.browser:
        ap.error("--jupyter-defaults applies to --browser SECONDS")
    if args.camera is not None and args.frames < 1:
        ap.error("--camera needs --frames of at least 1 (a camera never ends)")

    from fer_utils.live.pipeline import Pipeline, PipelineConfig
    from fer_utils.live.sources import make_sample_clip, sample_frames

    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("FER_UTILS_CACHE", str(work / "cache"))
        ckpt = (
            Path(args.checkpoint)
            if args.checkpoint
            else untrained_checkpoint(work / f"{args.arch}.pt", args.arch, args.img_size)
        )
        clip = make_sample_clip(work / "clip.mp4", n=args.frames, size=(w, h), fps=30)
        frames = list(sample_frames(args.frames, (w, h)))
        config = PipelineConfig(
            detector=args.detector,
            detector_model=args.detector_model,
            backend=args.backend,
            threads=args.threads,
            full_detect_every=args.full_detect_every,
        )
        pipeline = Pipeline.from_checkpoint(ckpt, config)
        clf = pipeline.classifier
        results = {
            "machine": {
                "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                "processor": platform.processor() or platform.machine(),
                "opencv_threads": cv2.getNumThreads(),
                "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            },
            "setup": {
                "arch": clf.meta["model_config"].arch,
                "img_size": clf.preprocess.img_size,
                "backend": clf.backend,
                "threads": args.threads,
                "size": f"{w}x{h}",
                "frames": args.frames,
                "full_detect_every": args.full_detect_every,
                "detector": args.detector,
            },
            "cli": bench_cli(clip, pipeline, args.warmup),
            "widget-kernel": bench_widget_kernel(frames, pipeline, args.warmup, quality=75),
        }
        if args.camera is not None:
            results["camera"] = bench_camera(args.camera, pipeline, args.frames, args.warmup)
        if args.fake_camera is not None:
            cw, ch = (int(v) for v in args.fake_camera_size.lower().split("x"))
            results["fake-camera"] = bench_fake_camera(
                args.fake_camera,
                (cw, ch),
                ckpt,
                work,
                args.frames,
                [
                    "--backend",
                    args.backend,
                    "--threads",
                    str(args.threads),
                    "--full-detect-every",
                    str(args.full_detect_every),
                    "--detector",
                    args.detector,
                    *(["--detector-model", args.detector_model] if args.detector_model else []),
                ],
            )
        if args.browser:
            results["widget-browser"] = bench_browser(args.browser, ckpt, work, not args.jupyter_defaults)

    m, s = results["machine"], results["setup"]
    print(
        f"{s['arch']} at {s['img_size']} px via {s['backend']} ({s['threads']} thread), {s['detector']} detector, "
        f"{s['size']}, {s['frames']} frames, one face; {m['cpus_usable']} usable CPUs, load {m['load_avg_1min']}"
    )
    print(
        f"{'path':<15}{'frames/s':>9}{'face %':>8}  "
        + "  ".join(f"{st + ' p50/p95 ms':>22}" for st in ("decode", "detect", "classify", "total"))
    )
    for name in ("cli", "widget-kernel", "camera", "fake-camera"):
        r = results.get(name)
        if r is None:
            continue
        if "error" in r:
            print(f"{name:<15}  not measured: {r['error']}")
            continue
        print(
            f"{name:<15}{r['fps']:>9.1f}{100 * r['frames_with_face'] / max(1, r['frames']):>8.0f}  "
            + "  ".join(
                f"{r[st]['p50']:>13.1f} / {r[st]['p95']:>5.1f}" for st in ("decode", "detect", "classify", "total")
            )
        )
    if "fake-camera" in results and "camera" in results["fake-camera"]:
        r = results["fake-camera"]
        print(
            f"  fake-camera: {r['camera']}, through OpenCV's V4L2 backend; the camera captured "
            f"{r['camera_frames']['captured']} frames, delivered {r['camera_frames']['delivered']}, "
            f"dropped {r['camera_frames']['dropped']} (frames that found no free buffer: the pipeline was behind)"
        )
    if "widget-browser" in results:
        r = results["widget-browser"]
        print(
            f"{'widget-browser':<15}{r['fps']:>9.1f}  over {r['frames']} results, {r['jupyter_settings']} Jupyter "
            f"server settings; widget: {r['widget_line']}"
        )
        cpu, cores = r["cpu_ms_per_frame"], r["cores_busy"]
        print("  CPU ms per frame: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
        print(
            "  cores kept busy:  "
            + ", ".join(f"{k} {v:.2f}" for k, v in cores.items())
            + f"; total {sum(cores.values()):.2f} of {results['machine']['cpus_usable']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
