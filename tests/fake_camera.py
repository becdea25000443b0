"""A V4L2 camera for machines without one, for the tests and ``benchmarks/bench_realtime.py --fake-camera``.

``fake_v4l2.c`` (next to this file) is preloaded into a process and answers for ``/dev/video0`` as a webcam
would: OpenCV's ``cv2.VideoCapture(0)`` opens it through its real V4L2 backend, negotiates the format,
maps the streaming buffers and dequeues frames captured on the camera's own clock. The frames are YUYV
4:2:2, the format most USB webcams send uncompressed, made from BGR frames given here.

    lib = build(tmp)                                   # gcc, once per folder
    size = write_yuyv(tmp / "frames.yuyv", frames)     # BGR frames, all the same even width
    env = camera_env(lib, tmp / "frames.yuyv", size, fps=30)
    subprocess.run([sys.executable, "-m", "fer_utils.realtime", "--source", "0", ...], env=env)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

SOURCE = Path(__file__).with_name("fake_v4l2.c")


def build(out_dir: str | os.PathLike[str]) -> Path:
    """Compile ``fake_v4l2.c`` into ``out_dir/fake_v4l2.so`` (needs gcc and the Linux kernel headers)."""
    cc = shutil.which(os.environ.get("CC", "gcc"))
    if cc is None:
        raise RuntimeError("the stand-in camera needs a C compiler: install gcc (Debian: apt-get install gcc)")
    lib = Path(out_dir) / "fake_v4l2.so"
    if not lib.exists() or lib.stat().st_mtime < SOURCE.stat().st_mtime:
        proc = subprocess.run(
            [cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(lib), str(SOURCE), "-ldl", "-lpthread"],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            raise RuntimeError(f"{SOURCE}: gcc failed:\n{proc.stderr}")
    return lib


def write_yuyv(path: str | os.PathLike[str], frames: Iterable[np.ndarray]) -> tuple[int, int]:
    """Write BGR frames as raw YUYV 4:2:2, one after another; returns their ``(width, height)``."""
    size = None
    with open(path, "wb") as f:
        for frame in frames:
            h, w = frame.shape[:2]
            if size is None:
                if w % 2:
                    raise ValueError(f"{path}: YUYV needs an even frame width, got {w}")
                size = (w, h)
            elif (w, h) != size:
                raise ValueError(f"{path}: frame of {w}x{h} among frames of {size[0]}x{size[1]}")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_YUY2).tobytes())
    if size is None:
        raise ValueError(f"{path}: no frames given")
    return size


def camera_env(
    lib: Path,
    frames: str | os.PathLike[str],
    size: tuple[int, int],
    fps: float = 30.0,
    device: str = "/dev/video0",
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a process that should see ``device`` as a camera (``fps`` 0: a frame whenever asked)."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "LD_PRELOAD": " ".join(p for p in (str(lib), env.get("LD_PRELOAD", "")) if p),
            "FAKE_V4L2_DEVICE": device,
            "FAKE_V4L2_FRAMES": str(frames),
            "FAKE_V4L2_SIZE": f"{size[0]}x{size[1]}",
            "FAKE_V4L2_FPS": str(fps),
        }
    )
    return env
