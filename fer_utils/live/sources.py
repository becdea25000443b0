"""Where live frames come from and where annotated video goes: cameras, video files, images, sample clips.

:func:`open_source` opens a camera index, a video file, one image, or a glob or
folder of images as a :class:`FrameSource`; a frame that cannot be decoded comes
out as ``None`` (counted and skipped by the runner) and the stream goes on.
:func:`image_source` tells photos from cameras and videos by the source's text,
:func:`image_files` lists a glob's or folder's images, and :func:`read_image`
reads one, refusing a corrupt or truncated file with an error that names it.
:class:`VideoWriter` writes annotated video without leaving half a file behind.

:func:`sample_frames` stands in for a camera where there is none: a real,
public-domain face (:data:`SAMPLE_FACE`) moving gently over a plain background;
:func:`make_sample_clip` and :func:`write_y4m` save it as a video file or as the
y4m clip Chromium's fake camera plays.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_utils import paths
from fer_utils.data import IMAGE_SUFFIXES
from fer_utils.files import atomic_write_bytes

logger = logging.getLogger(__name__)

SAMPLE_FACE = Path(__file__).resolve().parent.parent / "assets" / "astronaut_face.png"
"""A real face (NASA, public domain; see ``fer_utils/assets/README.md``) for sample clips."""

MAX_CONSECUTIVE_BAD_READS = 25
"""Failed reads in a row after which a video is taken to have ended (single failures are corrupt frames)."""


JPEG_MAGIC = b"\xff\xd8\xff"
"""The first bytes of every JPEG file."""


class SourceError(ValueError):
    """A source that cannot be opened: unreadable file, empty glob, or a camera that does not open."""


class ImageReadError(SourceError):
    """An image file that cannot be decoded, or is truncated; the message names the file."""


# --------------------------------------------------------------------------- sources


@dataclass
class FrameSource:
    """An opened source of frames.

    Attributes:
        description: What it is (for messages and the JSON).
        fps: Frames per second the source declares (0 if unknown; cameras and image folders).
        is_camera: True for a live camera (runs until stopped).
        frames: Iterator of ``(index, frame or None)``; ``None`` marks a corrupt frame.
        close: Releases the camera or file.
        length: Frames the source declares (images found, or the video's frame
            count; 0 if unknown, and for cameras).
    """

    description: str
    fps: float
    is_camera: bool
    frames: Iterator[tuple[int, np.ndarray | None]]
    close: Callable[[], None] = lambda: None
    length: int = 0


def open_source(source: str | int) -> FrameSource:
    """Open a camera index, a video file or an image glob (paths as given: see :func:`resolve_source`).

    Args:
        source: ``0``/``"0"`` (camera index), a video file, or a glob of images
            (``"frames/*.png"``) or a folder of images.

    Raises:
        SourceError: the file is missing or unreadable, the glob matches no
            image, or the camera does not open.
    """
    text = str(source)
    if text.isdigit():
        index = int(text)
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"camera {index} could not be opened (no camera at that index, no permission, or it is in use)"
            )
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return FrameSource(f"camera {index}", fps, True, _read_capture(cap, True), cap.release)
    if _is_pattern(text) or Path(text).is_dir():
        files = image_files(text)
        return FrameSource(f"{len(files)} images matching {text}", 0.0, False, _read_images(files), length=len(files))
    path = Path(text).expanduser()
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return FrameSource(str(path), 0.0, False, _read_images([str(path)]), length=1)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"{path}: not a readable video (OpenCV/FFmpeg cannot open it)")
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise SourceError(f"{path}: not a readable video (no frame could be decoded)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    fps = fps if math.isfinite(fps) else 0.0
    count = float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
    total = int(count) if math.isfinite(count) and count > 0 else 0
    return FrameSource(str(path), fps, False, _read_capture(cap, False, first, total), cap.release, length=total)


def resolve_source(source: str | int) -> str:
    """A source as a command-line user means it: camera indices kept, relative paths made absolute.

    A relative file or folder is taken from the working directory when it exists
    there, else from the repository root (:func:`fer_utils.paths.resolve_cli`); a
    relative glob likewise, by whether it matches anything in the working directory.
    """
    text = str(source)
    if text.isdigit() or (_is_pattern(text) and glob.glob(os.path.expanduser(text))):
        return text
    return str(paths.resolve_cli(text))


def _is_pattern(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def image_source(source: str | int) -> str:
    """What kind of still-image source ``source`` names, from its text alone (nothing is read).

    Returns:
        ``"many"`` for a glob or a folder (of images), ``"file"`` for one file with an image
        suffix (:data:`fer_utils.data.IMAGE_SUFFIXES`), ``""`` for a camera index or a video.
    """
    text = str(source)
    if text.isdigit():
        return ""
    if _is_pattern(text) or Path(text).expanduser().is_dir():
        return "many"
    return "file" if Path(text).suffix.lower() in IMAGE_SUFFIXES else ""


def image_files(source: str | os.PathLike[str]) -> list[str]:
    """The image files a glob, a folder or one image file names, sorted (other files in a folder are left out).

    Raises:
        SourceError: a glob or folder holds no image file, or a named file does not exist.
    """
    text = str(source)
    folder = Path(text).expanduser()
    if not _is_pattern(text) and not folder.is_dir():
        if not folder.is_file():
            raise SourceError(f"{folder}: no such file")
        return [str(folder)]
    pattern = str(folder / "*") if folder.is_dir() else os.path.expanduser(text)
    files = sorted(p for p in glob.glob(pattern) if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file())
    if not files:
        raise SourceError(f"{text}: no image files ({', '.join(IMAGE_SUFFIXES)}) match")
    return files


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as OpenCV does for every frame here: uint8 BGR (H, W, 3).

    EXIF orientation is applied, an alpha channel dropped, 16-bit images scaled to 8 bits.

    Raises:
        FileNotFoundError: no such file.
        ImageReadError: not a decodable image, or a truncated one; the message names the file.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such image file")
    frame = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if frame is None:
        raise ImageReadError(f"{p}: not a readable image (corrupt, truncated, or not an image file)")
    with open(p, "rb") as f:
        is_jpeg = f.read(len(JPEG_MAGIC)) == JPEG_MAGIC
    problem = _jpeg_problem(p) if is_jpeg else ""
    if problem:
        raise ImageReadError(f"{p}: truncated or corrupt JPEG ({problem})")
    return frame


def _jpeg_problem(path: Path) -> str:
    """Why a JPEG file is incomplete ("" if it is whole), by decoding it with Pillow at an eighth of its size.

    OpenCV decodes a truncated JPEG without complaint (libjpeg fills the missing part with grey and prints a
    warning to stderr), so a cut-off download would be classified as if it were whole; Pillow raises instead.
    The scaled decode still reads every byte of the file, at a fraction of a full decode's time and memory.
    """
    from PIL import Image  # a core dependency (matplotlib's too); only needed here

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.draft("L", (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
    except Image.DecompressionBombError:
        return ""  # larger than Pillow checks by default; OpenCV decoded it
    except OSError as err:
        return str(err)
    return ""


def _read_capture(
    cap: Any, is_camera: bool, first: np.ndarray | None = None, total: int = 0
) -> Iterator[tuple[int, np.ndarray | None]]:
    """Frames of an opened capture; ``total`` is the video's declared frame count (0: unknown)."""
    index = 0
    if first is not None:
        yield index, first
        index += 1
    bad = 0
    while True:
        ok, frame = cap.read()
        if ok and frame is not None:
            bad = 0
            yield index, frame
            index += 1
            continue
        bad += 1
        # A failed read is either the end of the video or a frame FFmpeg could not decode. Past the declared
        # frame count, or after many failures in a row, it is the end; otherwise report one corrupt frame.
        if bad >= MAX_CONSECUTIVE_BAD_READS or (not is_camera and (total <= 0 or index >= total)):
            return
        yield index, None
        index += 1


def _read_images(files: Sequence[str]) -> Iterator[tuple[int, np.ndarray | None]]:
    for i, f in enumerate(files):
        try:
            frame: np.ndarray | None = read_image(f)
        except (ImageReadError, FileNotFoundError) as err:
            logger.warning("%s; skipped", err)
            frame = None
        yield i, frame


class VideoWriter:
    """An annotated-video writer that leaves no half-written file behind.

    Frames go to a hidden temporary file in the destination folder (with the same
    extension, which FFmpeg uses to choose the container) and are renamed into
    place by :meth:`close`; on error the temporary file is removed.

    Args:
        path: ``.mp4`` (MPEG-4 Part 2, plays everywhere) or ``.avi`` (Motion JPEG).
        fps: Frame rate written into the file.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        self.path = Path(path)
        self.fps = fps if fps and fps > 0 else 15.0
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer: Any = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            codec = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
            fourcc = cv2.VideoWriter_fourcc(*codec)  # type: ignore[attr-defined]  # missing from OpenCV's stubs
            h, w = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                raise SourceError(f"{self.path}: cannot write video (use a .mp4 or .avi file name)")
        self._writer.write(frame)
        self.frames += 1

    def close(self, keep: bool = True) -> Path | None:
        """Finish the file and move it into place (``keep=False`` discards it)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if keep and self.frames and self._tmp.exists():
            os.replace(self._tmp, self.path)
            return self.path
        self._tmp.unlink(missing_ok=True)
        return None


# --------------------------------------------------------------------------- sample clips


def sample_frames(n: int = 60, size: tuple[int, int] = (320, 240), *, seed: int = 0) -> Iterator[np.ndarray]:
    """Frames of a real face moving gently over a plain background: a stand-in for a camera.

    The face is ``SAMPLE_FACE`` (public domain). It drifts along a slow
    Lissajous path, grows and shrinks by a few percent and the light changes a
    little, as a person in front of a laptop would.

    Args:
        n: Number of frames.
        size: ``(width, height)`` in pixels.
        seed: Seed of the motion's phase.

    Yields:
        uint8 BGR frames (height, width, 3).
    """
    face = cv2.imread(str(SAMPLE_FACE), cv2.IMREAD_COLOR)
    if face is None:
        raise FileNotFoundError(f"{SAMPLE_FACE}: bundled sample face missing")
    w, h = size
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi)
    # A warm grey wall, lit from above: smooth, so clips and montages compress well.
    shade = np.linspace(1.1, 0.85, h, dtype=np.float32)[:, None, None]
    base = np.clip(np.array([96, 112, 128], np.float32) * shade, 0, 255).astype(np.uint8).repeat(w, axis=1)
    side0 = 0.75 * min(w, h)
    for t in range(n):
        s = side0 * (1.0 + 0.06 * np.sin(2 * np.pi * t / 47.0 + phase))
        cx = w / 2 + 0.12 * w * np.sin(2 * np.pi * t / 61.0 + phase)
        cy = h / 2 + 0.06 * h * np.sin(2 * np.pi * t / 37.0)
        m = np.array([[s / face.shape[1], 0, cx - s / 2], [0, s / face.shape[0], cy - s / 2]], np.float32)
        frame = base.copy()
        cv2.warpAffine(face, m, (w, h), dst=frame, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
        gain = 1.0 + 0.05 * np.sin(2 * np.pi * t / 29.0)
        yield cv2.convertScaleAbs(frame, alpha=gain)


def write_video(
    path: str | os.PathLike[str], frames: Iterator[np.ndarray] | Sequence[np.ndarray], fps: float = 15.0
) -> Path:
    """Write BGR frames to ``.mp4``/``.avi`` atomically; returns the path."""
    writer = VideoWriter(path, fps)
    try:
        for f in frames:
            writer.write(f)
    except BaseException:
        writer.close(keep=False)
        raise
    out = writer.close()
    if out is None:
        raise ValueError(f"{path}: no frames to write")
    return out


def write_y4m(path: str | os.PathLike[str], frames: Iterator[np.ndarray] | Sequence[np.ndarray], fps: int = 30) -> Path:
    """Write BGR frames as an uncompressed YUV4MPEG2 (4:2:0) file, e.g. for Chromium's fake camera
    (``--use-file-for-fake-video-capture=FILE.y4m``). Width and height must be even."""
    chunks: list[bytes] = []
    header: bytes | None = None
    for f in frames:
        h, w = f.shape[:2]
        if w % 2 or h % 2:
            raise ValueError(f"y4m 4:2:0 needs even width and height, got {w}x{h}")
        if header is None:
            header = f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii")
        chunks.append(b"FRAME\n" + cv2.cvtColor(f, cv2.COLOR_BGR2YUV_I420).tobytes())
    if header is None:
        raise ValueError(f"{path}: no frames to write")
    return atomic_write_bytes(path, header + b"".join(chunks))


def make_sample_clip(
    path: str | os.PathLike[str], n: int = 60, size: tuple[int, int] = (320, 240), fps: float = 15.0, seed: int = 0
) -> Path:
    """Write :func:`sample_frames` as a video (``make reproduce`` and the tests use it)."""
    return write_video(path, sample_frames(n, size, seed=seed), fps)
