"""Running the live pipeline over a source, and the command line ``python -m fer_utils.realtime``.

:func:`run` takes frames from a camera, a video file or images
(:mod:`fer_utils.live.sources`) through a :class:`~fer_utils.live.pipeline.Pipeline`,
and can write an annotated video, a per-face CSV and show a window;
:func:`run_headless` is notebook 05's run over a file, writing its report files.
:func:`run_photos` classifies photos one by one, each on its own
(:mod:`fer_utils.live.photo`), and writes annotated copies.

Command line::

    python -m fer_utils.realtime --source 0                       # camera 0, in a window when there is a display
    python -m fer_utils.realtime --source clip.mp4 --no-window --output annotated.mp4 --json stats.json --csv frames.csv
    python -m fer_utils.realtime --source party.jpg --output party_faces.png   # a photo: one line per face
    python -m fer_utils.realtime --source "photos/*.jpg" --output annotated/ --json faces.json

For a camera or a video, ``--json`` holds ``frames``, ``frames_with_face``,
``fps``, per-emotion counts and per-stage latency; ``--csv`` one row per face per
frame (frame index, box, label, the probabilities shown and the raw ones).

A photo, a glob or a folder of photos is classified photo by photo, as
:func:`fer_utils.classify_image` does: one printed line per face (file, face
index, box, label and the three most probable classes), ``--output`` an annotated
image (for a glob or folder: a folder, one image per photo under its own file
name), ``--json`` every face's box, landmarks and probabilities, ``--csv`` one row
per face. An ``--output`` ending in ``.mp4``/``.avi`` instead runs the photos as the
frames of a video, as for a video file.

Bad input (an unreadable file, a camera that does not open, a missing checkpoint,
an ``--output`` suffix that cannot be written) ends with a one-line message and exit
status 2; a corrupt frame, or an unreadable photo among several, is counted, logged
and skipped.
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

from fer_utils import paths
from fer_utils.files import atomic_write_bytes, atomic_write_json, atomic_write_text

from .draw import annotate, montage
from .photo import FaceResult, face_results, photo_pipeline
from .pipeline import STAGES, FrameResult, Pipeline, PipelineConfig
from .sources import (
    FrameSource,
    ImageReadError,
    VideoWriter,
    image_files,
    image_source,
    open_source,
    read_image,
    resolve_source,
)

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


@dataclass
class _RunState:
    """A run in progress: where its annotated frames go and what it gathers frame by frame."""

    stats: RunStats
    counts: dict[str, int]
    writer: VideoWriter | None
    window: bool
    keep_at: set[int]
    want_rows: bool
    t_start: float
    timings: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in STAGES})
    rows: list[list[Any]] = field(default_factory=list)
    kept: dict[int, np.ndarray] = field(default_factory=dict)


def _keep_indices(keep_frames: int, max_frames: int, length: int) -> set[int]:
    """Indices of ``keep_frames`` frames spread evenly over the run; none when its length is unknown."""
    known = [n for n in (max_frames, length) if n > 0]
    planned = min(known) if known else 0
    if keep_frames and planned:
        return set(np.linspace(0, planned - 1, keep_frames).round().astype(int).tolist())
    return set()


def _start(
    src: FrameSource,
    pipeline: Pipeline,
    *,
    output: str | os.PathLike[str] | None,
    csv_path: str | os.PathLike[str] | None,
    window: bool,
    max_frames: int,
    keep_frames: int,
) -> _RunState:
    """Reset the pipeline and set up a run over an opened source (opens the video writer, if any)."""
    pipeline.reset()
    stats = RunStats(source=src.description)
    counts = dict.fromkeys(pipeline.class_names, 0)
    writer = VideoWriter(output, src.fps) if output else None
    keep_at = _keep_indices(keep_frames, max_frames, src.length)
    return _RunState(stats, counts, writer, window, keep_at, want_rows=bool(csv_path), t_start=time.perf_counter())


def _show(state: _RunState, index: int, frame: np.ndarray, result: FrameResult, class_names: Sequence[str]) -> bool:
    """Annotate a frame for the video, the kept frames and the window; True when the user quits the window."""
    if state.writer is None and not state.window and index not in state.keep_at:
        return False  # nothing would use the annotated frame, and annotating costs time
    elapsed = time.perf_counter() - state.t_start
    fps_now = state.stats.frames / elapsed if elapsed else None
    shown = annotate(frame, result, class_names, show_fps=fps_now)
    if state.writer is not None:
        state.writer.write(shown)
    if index in state.keep_at:
        state.kept[index] = shown
    if state.window:
        cv2.imshow("fer_utils.realtime (q to quit)", shown)
        return cv2.waitKey(1) & 0xFF in (ord("q"), 27)
    return False


def _step(
    state: _RunState,
    pipeline: Pipeline,
    index: int,
    frame: np.ndarray,
    decode_ms: float,
    *,
    max_frames: int,
    on_result: Callable[[np.ndarray, FrameResult], None] | None,
) -> bool:
    """Process one decoded frame: tally it, show it where wanted, call back; True when the run stops after it."""
    result = pipeline.process(frame, decode_ms=decode_ms)
    result.index = index
    stats = state.stats
    stats.frames += 1
    stats.faces += len(result.faces)
    stats.frames_with_face += bool(result.faces)
    for f in result.faces:
        state.counts[f.label] += 1
    for k in STAGES:
        state.timings[k].append(result.timings_ms[k])
    if state.want_rows:
        state.rows.extend(csv_rows(result))
    if _show(state, index, frame, result, pipeline.class_names):
        stats.stopped_by = "user (q)"
        return True
    if on_result is not None:
        on_result(frame, result)
    if max_frames and stats.frames >= max_frames:
        stats.stopped_by = f"max_frames={max_frames}"
        return True
    return False


def _finish(
    state: _RunState, class_names: Sequence[str], csv_path: str | os.PathLike[str] | None
) -> tuple[RunStats, list[np.ndarray]]:
    """Put the counts and latency percentiles into the stats and write the CSV; returns :func:`run`'s result."""
    stats = state.stats
    stats.emotion_counts = state.counts
    stats.latency_ms = {k: {m: round(v, 3) for m, v in _percentiles(state.timings[k]).items()} for k in STAGES}
    if csv_path:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(csv_header(class_names))
        w.writerows(state.rows)
        atomic_write_text(csv_path, buf.getvalue())
    return stats, [state.kept[i] for i in sorted(state.kept)]


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
    state = _start(
        src,
        pipeline,
        output=output,
        csv_path=csv_path,
        window=window,
        max_frames=max_frames,
        keep_frames=keep_frames,
    )
    ok = False
    try:
        t_read = time.perf_counter()
        for index, frame in src.frames:
            decode_ms = (time.perf_counter() - t_read) * 1e3
            if frame is None:
                state.stats.corrupt_frames += 1
                logger.warning("%s: frame %d could not be decoded; skipped", src.description, index)
            elif _step(state, pipeline, index, frame, decode_ms, max_frames=max_frames, on_result=on_result):
                break
            t_read = time.perf_counter()
        ok = True
    except KeyboardInterrupt:
        state.stats.stopped_by = "user (Ctrl-C)"
        ok = True
    finally:
        state.stats.seconds = time.perf_counter() - state.t_start
        src.close()
        if state.writer is not None:
            state.writer.close(keep=ok)
        if window:
            cv2.destroyAllWindows()
    return _finish(state, pipeline.class_names, csv_path)


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


# --------------------------------------------------------------------------- photos

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi")
"""``--output`` suffixes written as an annotated video (:class:`~fer_utils.live.sources.VideoWriter`)."""

IMAGE_OUTPUT_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
"""``--output`` suffixes written as one annotated image, for a photo source."""

PHOTO_CSV_FIXED = ("file", "face", "x", "y", "w", "h", "label", "confidence", "detector_score")


def photo_csv_header(class_names: Sequence[str]) -> list[str]:
    """Columns of the per-face CSV for photos: :data:`PHOTO_CSV_FIXED`, then ``p_<class>``."""
    return [*PHOTO_CSV_FIXED, *(f"p_{c}" for c in class_names)]


def photo_csv_rows(record: dict[str, Any]) -> list[list[Any]]:
    """One CSV row per face of a :func:`run_photos` record (see :func:`photo_csv_header`)."""
    rows = []
    for photo in record["results"]:
        for j, f in enumerate(photo["faces"]):
            scores = [round(f["confidence"], 5), round(f["detector_score"], 5)]
            probs = [round(p, 5) for p in f["probabilities"].values()]
            rows.append([photo["file"], j, *f["box"], f["label"], *scores, *probs])
    return rows


def output_kind(output: str | os.PathLike[str] | None, source: str | int) -> str:
    """What ``--output`` asks for, decided from the names alone, before anything is read.

    Returns:
        ``""`` (no output), ``"video"`` (:data:`VIDEO_SUFFIXES`), ``"image"`` (one annotated
        image, :data:`IMAGE_OUTPUT_SUFFIXES`, for one photo) or ``"folder"`` (one annotated
        image per photo under its own file name: an existing folder, or a name without a suffix).

    Raises:
        ValueError: a suffix neither list holds (the message names them), an image or a
            folder for a camera or a video, or one image for a glob or folder of photos.
    """
    if not output:
        return ""
    path = Path(output).expanduser()
    suffix = path.suffix.lower()
    photos = image_source(source)
    video = " or ".join(VIDEO_SUFFIXES)
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if path.is_dir() or not suffix:
        if photos:
            return "folder"
        raise ValueError(f"--output {output}: a camera or a video is written as a video: use a {video} file name")
    if suffix not in IMAGE_OUTPUT_SUFFIXES:
        raise ValueError(
            f"--output {output}: cannot write {suffix} files; use {', '.join(IMAGE_OUTPUT_SUFFIXES)} (an annotated "
            f"image), {', '.join(VIDEO_SUFFIXES)} (an annotated video), or a folder (for a glob or folder of photos)"
        )
    if not photos:
        raise ValueError(f"--output {output}: an annotated image needs a photo as --source; use {video} for a video")
    if photos == "many":
        raise ValueError(
            f"--output {output}: for a glob or folder of photos, --output must be a folder "
            "(one annotated image per photo, under the photo's file name)"
        )
    return "image"


def photo_destinations(files: Sequence[str], output: str | os.PathLike[str] | None, kind: str) -> list[Path | None]:
    """Where each photo's annotated copy goes: ``output`` itself (kind ``"image"``), ``output/<the photo's
    file name>`` (``"folder"``), or nowhere (any other kind).

    Raises:
        ValueError: two photos have the same file name, or a copy would overwrite its photo.
    """
    if not output or kind not in ("image", "folder"):
        return [None] * len(files)
    out = Path(output).expanduser().resolve()
    dests = [out if kind == "image" else out / Path(f).name for f in files]
    seen: dict[Path, str] = {}
    for f, dest in zip(files, dests, strict=True):
        if dest == Path(f).expanduser().resolve():
            raise ValueError(f"--output {output}: the annotated copy would overwrite the photo {f}; choose another")
        if dest in seen:
            raise ValueError(f"--output {output}: {seen[dest]} and {f} have the same file name; choose one folder")
        seen[dest] = f
    return [*dests]  # a list of Path | None, as the other kinds give


def photo_lines(file: str, faces: Sequence[FaceResult]) -> list[str]:
    """The command line's report of one photo: a line per face (file, face index, box, label, top-3 probabilities)."""
    if not faces:
        return [f"{file}: no face found"]
    return [
        f"{file} face {i} box {list(f.box)}: {f.label} (" + ", ".join(f"{c} {p:.2f}" for c, p in f.top(3)) + ")"
        for i, f in enumerate(faces)
    ]


def _write_image(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(path.suffix, image)
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot write {path.suffix} images")
    atomic_write_bytes(path, data.tobytes())


def run_photos(
    files: Sequence[str],
    pipeline: Pipeline,
    *,
    destinations: Sequence[Path | None] | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Classify each photo on its own (the pipeline is reset before each) and write annotated copies.

    Args:
        files: Image files.
        pipeline: A pipeline for photos (:func:`fer_utils.live.photo.photo_pipeline`).
        destinations: Per file, where its annotated copy goes (``None``: nowhere); see
            :func:`photo_destinations`. ``None``: no copies.
        echo: Called with each of :func:`photo_lines`' lines as photos are done (e.g. ``print``).

    Returns:
        The run's record (``--json``): ``photos``, ``photos_with_face``, ``faces``,
        ``unreadable`` (files skipped), ``emotion_counts``, ``seconds`` and ``results``,
        one entry per photo read: ``file``, ``width``, ``height`` and ``faces``
        (:meth:`~fer_utils.live.photo.FaceResult.to_dict`).

    Raises:
        ImageReadError: the only photo cannot be read (among several, an unreadable
            photo is logged, listed and skipped).
    """
    t0 = time.perf_counter()
    counts = dict.fromkeys(pipeline.class_names, 0)
    results: list[dict[str, Any]] = []
    unreadable: list[str] = []
    for file, dest in zip(files, destinations or [None] * len(files), strict=True):
        try:
            frame = read_image(file)
        except (ImageReadError, FileNotFoundError) as err:
            if len(files) == 1:
                raise
            logger.warning("%s; skipped", err)
            unreadable.append(file)
            continue
        pipeline.reset()
        result = pipeline.process(frame)
        faces = face_results(result, pipeline.class_names)
        for f in faces:
            counts[f.label] += 1
        results.append(
            {"file": file, "width": result.width, "height": result.height, "faces": [f.to_dict() for f in faces]}
        )
        if echo is not None:
            for line in photo_lines(file, faces):
                echo(line)
        if dest is not None:
            _write_image(dest, annotate(frame, result, pipeline.class_names, landmarks=True))
    return {
        "photos": len(results),
        "photos_with_face": sum(bool(r["faces"]) for r in results),
        "faces": sum(len(r["faces"]) for r in results),
        "unreadable": unreadable,
        "emotion_counts": counts,
        "seconds": round(time.perf_counter() - t0, 3),
        "results": results,
    }


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
        description="Detect faces and recognise their expressions in a camera stream, a video file or photos.",
    )
    ap.add_argument(
        "--source", required=True, help="camera index (0), a video file, a photo, or a glob/folder of photos"
    )
    ap.add_argument(
        "--checkpoint",
        default="",
        help="fer_utils checkpoint (default: the shipped model, else notebook 03's models/runs/manual/best.pt)",
    )
    ap.add_argument(
        "--output",
        help="write annotated output here: a video (.mp4, .avi); for photos an image (.png, .jpg, .jpeg, .bmp, "
        ".webp), or a folder for a glob or folder of photos",
    )
    ap.add_argument(
        "--json",
        help="write the run's record here (video: frames, fps, emotion counts, latency; photos: every face's box, "
        "landmarks and probabilities)",
    )
    ap.add_argument("--csv", help="write one row per face (per frame, or per photo) here")
    ap.add_argument("--no-window", action="store_true", help="do not open a window (automatic without a display)")
    ap.add_argument(
        "--max-frames", type=int, default=0, help="stop after this many frames, or photos (0: until the end / q)"
    )
    d = PipelineConfig()
    ap.add_argument(
        "--detector",
        default=None,
        help=f"face detector: haar (built in), mtcnn (the live extra) or yunet (needs --detector-model); default: "
        f"{d.detector} for cameras and video, for photos mtcnn when installed, else haar",
    )
    ap.add_argument("--detector-model", default=d.detector_model, help="model file for --detector yunet")
    ap.add_argument("--backend", default=d.backend, choices=["auto", "onnx", "torch"], help="classifier backend")
    ap.add_argument("--threads", type=int, default=d.threads, help="classifier CPU threads (cameras and video)")
    ap.add_argument("--smoothing", type=float, default=d.smoothing, help="per-face EMA weight of the past (0: off)")
    ap.add_argument(
        "--full-detect-every",
        type=int,
        default=d.full_detect_every,
        help="frames between full-frame face searches (1: every frame)",
    )
    return ap


def _cli_path(path: str | None) -> str | None:
    """A path given on the command line, as typed: from the working directory."""
    return str(Path(path).expanduser().resolve()) if path else None


def _main_stream(args: argparse.Namespace) -> int:
    """The command line over a camera or a video (or photos as the frames of a video)."""
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
    config = PipelineConfig(
        detector=args.detector or PipelineConfig().detector,
        detector_model=args.detector_model,
        backend=args.backend,
        threads=args.threads,
        smoothing=args.smoothing,
        full_detect_every=args.full_detect_every,
    )
    pipeline = Pipeline.from_checkpoint(args.checkpoint or None, config)
    stats, _ = run(
        args.source,
        pipeline,
        output=_cli_path(args.output),
        csv_path=_cli_path(args.csv),
        window=window,
        max_frames=args.max_frames,
    )
    if args.json:
        atomic_write_json(Path(args.json).expanduser().resolve(), stats.to_dict(pipeline))
    top = max(stats.emotion_counts, key=lambda name: stats.emotion_counts[name]) if stats.faces else "-"
    print(
        f"{stats.frames} frames ({stats.corrupt_frames} corrupt skipped), face in {stats.frames_with_face}, "
        f"{stats.fps:.1f} frames/s, most frequent: {top}; latency p50/p95 ms: "
        + ", ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in stats.latency_ms.items())
    )
    return 0


def _main_photos(args: argparse.Namespace, kind: str) -> int:
    """The command line over a photo, or a glob or folder of photos: each classified on its own."""
    files = image_files(args.source)
    if args.max_frames:
        files = files[: args.max_frames]
    destinations = photo_destinations(files, args.output, kind)
    pipeline = photo_pipeline(
        args.checkpoint or None,
        detector=args.detector,
        detector_model=args.detector_model or None,
        backend=args.backend,
    )
    record = {"source": str(args.source), **run_photos(files, pipeline, destinations=destinations, echo=print)}
    record["pipeline"] = pipeline.describe()
    if args.csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(photo_csv_header(pipeline.class_names))
        w.writerows(photo_csv_rows(record))
        atomic_write_text(Path(args.csv).expanduser().resolve(), buf.getvalue())
    if args.json:
        atomic_write_json(Path(args.json).expanduser().resolve(), record)
    counts = record["emotion_counts"]
    top = max(counts, key=lambda name: counts[name]) if record["faces"] else "-"
    print(
        f"{record['photos']} photos ({len(record['unreadable'])} unreadable skipped), face in "
        f"{record['photos_with_face']}, {record['faces']} faces, most frequent: {top}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: 0 on success, 2 on bad input (with a one-line message, no traceback)."""
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        kind = output_kind(args.output, args.source)  # before any work: a bad --output costs nothing
        if image_source(args.source) and kind != "video":
            return _main_photos(args, kind)
        return _main_stream(args)
    # SourceError, ImageReadError and CheckpointError are ValueErrors: bad input. ImportError: a missing extra.
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
