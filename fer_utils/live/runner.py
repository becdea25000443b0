"""Running the live pipeline over a source, and the command line ``python -m fer_utils.realtime``.

:func:`run` takes frames from a camera, a video file or images
(:mod:`fer_utils.live.sources`) through a :class:`~fer_utils.live.pipeline.Pipeline`,
and can write an annotated video, a per-face CSV and show a window;
:func:`run_headless` is notebook 05's run over a file, writing its report files.

Command line::

    python -m fer_utils.realtime --source 0                       # camera 0, in a window when there is a display
    python -m fer_utils.realtime --source clip.mp4 --no-window --output annotated.mp4 --json stats.json --csv frames.csv
    python -m fer_utils.realtime --source "frames/*.png" --checkpoint models/runs/default/best.pt

``--json`` holds ``frames``, ``frames_with_face``, ``fps``, per-emotion counts
and per-stage latency; ``--csv`` one row per face per frame (frame index, box,
label, the probabilities shown and the raw ones). Bad input (an unreadable file,
a camera that does not open, a missing checkpoint) ends with a one-line message
and exit status 2; a corrupt frame is counted, logged and skipped.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import paths
from ..files import atomic_write_bytes, atomic_write_json, atomic_write_text
from .draw import annotate, montage
from .pipeline import STAGES, FrameResult, Pipeline, PipelineConfig
from .sources import VideoWriter, open_source, resolve_source

logger = logging.getLogger(__name__)


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "mean": 0.0}
    a = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean())}


CSV_FIXED = ("frame", "face", "track", "x", "y", "w", "h", "label", "confidence")


def csv_header(class_names: Sequence[str]) -> list[str]:
    """Columns of the per-face CSV: :data:`CSV_FIXED`, ``p_<class>`` (shown, smoothed) and ``raw_<class>``."""
    return [*CSV_FIXED, *(f"p_{c}" for c in class_names), *(f"raw_{c}" for c in class_names)]


def csv_rows(result: FrameResult) -> list[list[Any]]:
    """One CSV row per face of ``result`` (see :func:`csv_header`)."""
    rows = []
    for j, f in enumerate(result.faces):
        rows.append(
            [
                result.index,
                j,
                f.track,
                *f.box.as_list(),
                f.label,
                round(f.confidence, 5),
                *(round(float(p), 5) for p in f.probs),
                *(round(float(p), 5) for p in f.raw_probs),
            ]
        )
    return rows


@dataclass
class RunStats:
    """Counts and timings of a run over a source (the ``--json`` output)."""

    source: str
    frames: int = 0
    frames_with_face: int = 0
    faces: int = 0
    corrupt_frames: int = 0
    seconds: float = 0.0
    emotion_counts: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    stopped_by: str = "end of source"

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self, pipeline: Pipeline | None = None) -> dict[str, Any]:
        d = asdict(self)
        d["fps"] = round(self.fps, 2)
        d["seconds"] = round(self.seconds, 3)
        d["face_rate"] = round(self.frames_with_face / self.frames, 4) if self.frames else 0.0
        if pipeline is not None:
            d["pipeline"] = pipeline.describe()
        return d


def run(
    source: str | int,
    pipeline: Pipeline,
    *,
    output: str | os.PathLike[str] | None = None,
    csv_path: str | os.PathLike[str] | None = None,
    window: bool = False,
    max_frames: int = 0,
    keep_frames: int = 0,
    on_result: Callable[[np.ndarray, FrameResult], None] | None = None,
) -> tuple[RunStats, list[np.ndarray]]:
    """Run the pipeline over a camera, video file or image glob.

    Args:
        source: See :func:`~fer_utils.live.sources.open_source`.
        pipeline: The pipeline (reset at the start).
        output: Annotated video to write (``.mp4`` or ``.avi``), or ``None``.
        csv_path: Per-face CSV to write, or ``None``.
        window: Show annotated frames in an OpenCV window (``q`` or Esc stops).
        max_frames: Stop after this many frames (0: until the source ends or is stopped).
        keep_frames: Also return this many annotated frames, evenly spread over
            the run (for a montage); needs ``max_frames`` or a finite source.
        on_result: Called with ``(frame, result)`` after each frame.

    Returns:
        ``(stats, kept annotated frames)``.

    Raises:
        SourceError: the source cannot be opened or the video cannot be written.
    """
    src = open_source(source)
    pipeline.reset()
    stats = RunStats(source=src.description)
    counts = dict.fromkeys(pipeline.class_names, 0)
    timings: dict[str, list[float]] = {k: [] for k in STAGES}
    rows: list[list[Any]] = []
    writer = VideoWriter(output, src.fps) if output else None
    kept: dict[int, np.ndarray] = {}
    known = [n for n in (max_frames, src.length) if n > 0]
    planned = min(known) if known else 0
    keep_at: set[int] = set()
    if keep_frames and planned:
        keep_at = set(np.linspace(0, planned - 1, keep_frames).round().astype(int).tolist())
    t_start = time.perf_counter()
    ok = False
    try:
        t_read = time.perf_counter()
        for index, frame in src.frames:
            decode_ms = (time.perf_counter() - t_read) * 1e3
            if frame is None:
                stats.corrupt_frames += 1
                logger.warning("%s: frame %d could not be decoded; skipped", src.description, index)
                t_read = time.perf_counter()
                continue
            result = pipeline.process(frame, decode_ms=decode_ms)
            result.index = index
            stats.frames += 1
            stats.faces += len(result.faces)
            stats.frames_with_face += bool(result.faces)
            for f in result.faces:
                counts[f.label] += 1
            for k in STAGES:
                timings[k].append(result.timings_ms[k])
            if csv_path:
                rows.extend(csv_rows(result))
            if writer is not None or window or index in keep_at:
                elapsed = time.perf_counter() - t_start
                fps_now = stats.frames / elapsed if elapsed else None
                shown = annotate(frame, result, pipeline.class_names, show_fps=fps_now)
                if writer is not None:
                    writer.write(shown)
                if index in keep_at:
                    kept[index] = shown
                if window:
                    cv2.imshow("fer_utils.realtime (q to quit)", shown)
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        stats.stopped_by = "user (q)"
                        break
            if on_result is not None:
                on_result(frame, result)
            if max_frames and stats.frames >= max_frames:
                stats.stopped_by = f"max_frames={max_frames}"
                break
            t_read = time.perf_counter()
        ok = True
    except KeyboardInterrupt:
        stats.stopped_by = "user (Ctrl-C)"
        ok = True
    finally:
        stats.seconds = time.perf_counter() - t_start
        src.close()
        if writer is not None:
            writer.close(keep=ok)
        if window:
            cv2.destroyAllWindows()
    stats.emotion_counts = counts
    stats.latency_ms = {k: {m: round(v, 3) for m, v in _percentiles(timings[k]).items()} for k in STAGES}
    if csv_path:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(csv_header(pipeline.class_names))
        w.writerows(rows)
        atomic_write_text(csv_path, buf.getvalue())
    return stats, [kept[i] for i in sorted(kept)]


def run_headless(
    source: str,
    report_dir: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    config: PipelineConfig | None = None,
    max_frames: int = 0,
    montage_frames: int = 12,
    pipeline: Pipeline | None = None,
) -> dict[str, Any]:
    """Notebook 05's fallback without a browser: run over a file and write the report files.

    Writes to ``report_dir``: ``realtime_frames.csv`` (one row per face per frame),
    ``realtime_montage.png`` (annotated frames spread over the run) and
    ``realtime_stats.json`` (the run's statistics and configuration).

    Args:
        source: Video file, image glob or folder (relative paths: from the
            working directory if they exist there, else from the repository root).
        report_dir: Output folder (relative paths from the repository root).
        checkpoint: Checkpoint for :meth:`Pipeline.from_checkpoint` (``None``: the default).
        config: Pipeline parameters (``None``: the defaults).
        max_frames: Stop after this many frames (0: all).
        montage_frames: Frames in the montage.
        pipeline: An already built pipeline (then ``checkpoint`` and ``config`` are ignored).

    Returns:
        The statistics written to ``realtime_stats.json``, plus ``files`` (name -> path).
    """
    out = paths.resolve(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = resolve_source(source)
    pipe = pipeline or Pipeline.from_checkpoint(checkpoint, config or PipelineConfig())
    files = {
        "csv": out / "realtime_frames.csv",
        "montage": out / "realtime_montage.png",
        "json": out / "realtime_stats.json",
    }
    stats, kept = run(src, pipe, csv_path=files["csv"], max_frames=max_frames, keep_frames=montage_frames)
    if kept:
        ok, png = cv2.imencode(".png", montage(kept, cols=4, width=240))
        if not ok:
            raise RuntimeError("could not encode the montage as PNG")
        atomic_write_bytes(files["montage"], png.tobytes())
    else:
        files.pop("montage")
    record = {**stats.to_dict(pipe), "files": {k: str(v) for k, v in files.items()}}
    atomic_write_json(files["json"], record)
    return record


# --------------------------------------------------------------------------- command line


def gui_available() -> tuple[bool, str]:
    """Whether OpenCV can open a window here, and if not, why."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display ($DISPLAY is not set)"
    try:
        cv2.namedWindow("fer_utils.realtime probe", cv2.WINDOW_AUTOSIZE)
        cv2.destroyWindow("fer_utils.realtime probe")
    except cv2.error:
        return False, "this OpenCV build has no GUI support (opencv-python-headless)"
    return True, ""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m fer_utils.realtime",
        description="Detect faces and recognise their expressions in a camera stream, a video file or images.",
    )
    ap.add_argument("--source", required=True, help="camera index (0), a video file, or an image glob/folder")
    ap.add_argument(
        "--checkpoint",
        default="",
        help="fer_utils checkpoint (default: the shipped model, else notebook 03's models/runs/manual/best.pt)",
    )
    ap.add_argument("--output", help="write the annotated video here (.mp4 or .avi)")
    ap.add_argument("--json", help="write run statistics here (frames, frames_with_face, fps, emotion counts, latency)")
    ap.add_argument("--csv", help="write one row per face per frame here")
    ap.add_argument("--no-window", action="store_true", help="do not open a window (automatic without a display)")
    ap.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: until the end / q)")
    d = PipelineConfig()
    ap.add_argument("--detector", default=d.detector, help="face detector: haar (built in) or yunet")
    ap.add_argument("--detector-model", default=d.detector_model, help="model file for --detector yunet")
    ap.add_argument("--backend", default=d.backend, choices=["auto", "onnx", "torch"], help="classifier backend")
    ap.add_argument("--threads", type=int, default=d.threads, help="classifier CPU threads")
    ap.add_argument("--smoothing", type=float, default=d.smoothing, help="per-face EMA weight of the past (0: off)")
    ap.add_argument(
        "--full-detect-every",
        type=int,
        default=d.full_detect_every,
        help="frames between full-frame face searches (1: every frame)",
    )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: 0 on success, 2 on bad input (with a one-line message, no traceback)."""
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    window = not args.no_window
    if window:
        ok, why = gui_available()
        if not ok:
            print(
                f"note: cannot open a window: {why}; continuing as with --no-window "
                "(use --output FILE.mp4 to keep the annotated video)",
                file=sys.stderr,
            )
            window = False
    try:
        config = PipelineConfig(
            detector=args.detector,
            detector_model=args.detector_model,
            backend=args.backend,
            threads=args.threads,
            smoothing=args.smoothing,
            full_detect_every=args.full_detect_every,
        )
        pipeline = Pipeline.from_checkpoint(args.checkpoint or None, config)
        cli = lambda p: str(Path(p).expanduser().resolve()) if p else None  # noqa: E731 - paths as typed, from the cwd
        stats, _ = run(
            args.source,
            pipeline,
            output=cli(args.output),
            csv_path=cli(args.csv),
            window=window,
            max_frames=args.max_frames,
        )
    except (FileNotFoundError, ValueError) as err:  # SourceError and CheckpointError are ValueErrors: bad input
        print(f"error: {err}", file=sys.stderr)
        return 2
    record = stats.to_dict(pipeline)
    if args.json:
        atomic_write_json(Path(args.json).expanduser().resolve(), record)
    top = max(stats.emotion_counts, key=lambda name: stats.emotion_counts[name]) if stats.faces else "-"
    print(
        f"{stats.frames} frames ({stats.corrupt_frames} corrupt skipped), face in {stats.frames_with_face}, "
        f"{stats.fps:.1f} frames/s, most frequent: {top}; latency p50/p95 ms: "
        + ", ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in stats.latency_ms.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
