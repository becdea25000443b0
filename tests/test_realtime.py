"""The real-time pipeline, its command line, the fast classifier and notebook 05's headless run.

Models are untrained (weights do not matter for these behaviours); the face is a real public-domain one from
fer_utils/assets; no FER2013 data. Speed is measured by benchmarks/bench_realtime.py, not here.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import fer_utils.live.classify as classify
from fer_utils import CLASS_NAMES, paths
from fer_utils.live.classify import FaceClassifier
from fer_utils.live.detect import Box, HaarDetector, crop_face, to_gray
from fer_utils.live.pipeline import CorruptFrameError, FaceSmoother, Pipeline
from fer_utils.live.runner import csv_header, main, run
from fer_utils.live.sources import make_sample_clip, resolve_source, sample_frames, write_y4m
from fer_utils.model import CheckpointError, ModelConfig, Preprocess, create_model, resolve_checkpoint
from fer_utils.model import checkpoint as ck


def make_checkpoint(path: Path, arch: str = "test_efficientnet", seed: int = 0) -> Path:
    """An untrained but complete fer_utils checkpoint."""
    torch.manual_seed(seed)
    cfg = ModelConfig(arch=arch)
    model, _ = create_model(cfg)
    return ck.save_checkpoint(
        path,
        {
            "format": ck.FORMAT,
            "model_config": cfg.to_dict(),
            "state_dict": model.state_dict(),
            "class_names": list(CLASS_NAMES),
            "preprocess": Preprocess(crop_size=44).to_dict(),
            "tta": "flip",
        },
    )


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The PyTorch backend sets one thread process-wide (as the CLI and widget want); give other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    # Module-scoped fixtures run before conftest's per-test cache redirection: redirect here too, so the ONNX
    # exports made while building them stay out of the repository.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FER_UTILS_CACHE", str(tmp_path_factory.getbasetemp() / "fer_cache"))
        yield _files(tmp_path_factory)


def _files(tmp_path_factory):
    d = tmp_path_factory.mktemp("realtime")
    return {
        "ckpt": make_checkpoint(d / "tiny.pt"),
        "clip": make_sample_clip(d / "clip.mp4", n=30, fps=15),
        "dir": d,
    }


@pytest.fixture(scope="module")
def pipeline(files, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FER_UTILS_CACHE", str(tmp_path_factory.getbasetemp() / "fer_cache"))
        return Pipeline.from_checkpoint(files["ckpt"])


def _faces(n: int = 3) -> np.ndarray:
    det = HaarDetector()
    grays = [to_gray(f) for f in sample_frames(n, seed=2)]
    return np.stack([crop_face(g, det.detect(g)[0], det.framing) for g in grays])


# --------------------------------------------------------------------------- classifier


def test_onnx_classifier_agrees_with_pytorch(files):
    faces = _faces()
    onnx = FaceClassifier(files["ckpt"], backend="onnx")
    torch_clf = FaceClassifier(files["ckpt"], backend="torch")
    assert onnx.backend == "onnx" and torch_clf.backend == "torch"
    assert onnx.verification["max_abs_diff"] <= classify.ONNX_ATOL
    p_onnx, p_torch = onnx.predict(faces), torch_clf.predict(faces)
    assert p_onnx.shape == (3, len(CLASS_NAMES)) and p_onnx.dtype == np.float32
    np.testing.assert_allclose(p_onnx, p_torch, atol=1e-5)
    np.testing.assert_allclose(p_onnx.sum(1), 1.0, atol=1e-5)


def test_onnx_export_happens_once_per_checkpoint(files):
    FaceClassifier(files["ckpt"], backend="onnx")
    exported = sorted((paths.cache_dir() / "onnx").glob("*.onnx"))
    mtimes = [p.stat().st_mtime_ns for p in exported]
    FaceClassifier(files["ckpt"], backend="onnx")
    assert [p.stat().st_mtime_ns for p in exported] == mtimes


def test_auto_backend_falls_back_to_pytorch_when_export_fails(files, monkeypatch):
    def broken(*args, **kwargs):
        raise classify.ExportError("no exporter")

    monkeypatch.setattr(classify, "onnx_for_checkpoint", broken)
    clf = FaceClassifier(files["ckpt"], backend="auto")
    assert clf.backend == "torch" and "no exporter" in clf.backend_note
    assert torch.get_num_threads() == 1


def test_no_checkpoint_anywhere_names_what_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(ck, "SHIPPED_MODEL", tmp_path / "shipped.pt")
    monkeypatch.setattr(ck, "DEFAULT_RUN_CHECKPOINT", tmp_path / "runs" / "best.pt")
    with pytest.raises(CheckpointError, match=r"shipped\.pt.*runs/best\.pt.*--checkpoint"):
        resolve_checkpoint(None)


def test_given_checkpoint_path_is_used_and_must_exist(files, tmp_path):
    assert resolve_checkpoint(files["ckpt"]) == files["ckpt"]
    with pytest.raises(CheckpointError, match="nope.pt: checkpoint file not found"):
        resolve_checkpoint(tmp_path / "nope.pt")


# --------------------------------------------------------------------------- pipeline


def test_pipeline_finds_the_face_in_most_frames_of_a_clip(files, pipeline):
    stats, _ = run(str(files["clip"]), pipeline)
    assert stats.frames == 30 and stats.corrupt_frames == 0
    assert stats.frames_with_face >= 0.8 * stats.frames
    assert sum(stats.emotion_counts.values()) == stats.faces
    assert set(stats.latency_ms) == {"decode", "detect", "classify", "total"}


def test_jpeg_bytes_go_through_the_same_pipeline(pipeline):
    frame = next(sample_frames(1))
    ok, jpeg = cv2.imencode(".jpg", frame)
    result = pipeline.process_jpeg(jpeg.tobytes())
    msg = result.to_message()
    assert (msg["width"], msg["height"]) == (320, 240) and len(msg["faces"]) == 1
    face = msg["faces"][0]
    assert face["label"] in CLASS_NAMES and len(face["probs"]) == len(CLASS_NAMES)


def test_corrupt_jpeg_bytes_raise_a_corrupt_frame_error(pipeline):
    with pytest.raises(CorruptFrameError, match="could not decode"):
        pipeline.process_jpeg(b"\xff\xd8 not really a jpeg")


def test_montage_frames_spread_over_the_frames_the_source_has(files, pipeline):
    _, kept = run(str(files["clip"]), pipeline, max_frames=100, keep_frames=4)  # the clip has 30 frames
    assert len(kept) == 4


def test_relative_sources_are_taken_from_the_working_directory_else_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"")
    assert resolve_source("clip.mp4") == str((tmp_path / "clip.mp4").resolve())
    assert resolve_source("notebooks/05_webcam.ipynb") == str(paths.REPO_ROOT / "notebooks" / "05_webcam.ipynb")
    assert resolve_source("*.mp4") == "*.mp4"  # a glob that matches here stays as typed
    assert resolve_source("0") == "0"  # a camera index


def test_smoothing_follows_a_face_and_damps_flicker():
    smoother = FaceSmoother(smoothing=0.6)
    a, b = np.eye(2, dtype=np.float32)
    box = Box(100, 60, 80, 80)
    shown = []
    for t in range(6):
        ids, probs = smoother.update([Box(100 + t, 60, 80, 80)], np.stack([a if t % 2 else b]))
        shown.append(probs[0])
        assert ids == [0]  # the same face throughout
    raw_jump = np.abs(a - b).max()
    assert max(np.abs(shown[i] - shown[i - 1]).max() for i in range(2, 6)) < 0.5 * raw_jump
    ids, _ = smoother.update([box, Box(250, 150, 60, 60)], np.stack([a, b]))
    assert ids == [0, 1]  # a new face elsewhere starts its own track


# --------------------------------------------------------------------------- command line


def test_cli_writes_annotated_video_json_and_csv(files, tmp_path, capsys):
    out = {k: tmp_path / f"run.{k}" for k in ("mp4", "json", "csv")}
    code = main(
        [
            "--source",
            str(files["clip"]),
            "--checkpoint",
            str(files["ckpt"]),
            "--no-window",
            "--output",
            str(out["mp4"]),
            "--json",
            str(out["json"]),
            "--csv",
            str(out["csv"]),
        ]
    )
    assert code == 0
    stats = json.loads(out["json"].read_text())
    assert stats["frames"] == 30 and stats["frames_with_face"] >= 24 and stats["fps"] > 0
    assert set(stats["emotion_counts"]) == set(CLASS_NAMES)
    with open(out["csv"], newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == csv_header(CLASS_NAMES) and len(rows) - 1 == stats["faces"]
    cap = cv2.VideoCapture(str(out["mp4"]))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    cap.release()
    assert "30 frames" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*partial*"))  # no temporary file left behind


def test_cli_unreadable_file_is_a_message_not_a_traceback(files, tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fer_utils.realtime",
            "--source",
            str(bad),
            "--checkpoint",
            str(files["ckpt"]),
            "--no-window",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FER_UTILS_CACHE": str(tmp_path)},
    )
    assert proc.returncode == 2
    assert "notes.mp4: not a readable video" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_camera_that_does_not_open_is_a_clear_message(files, capsys):
    assert main(["--source", "57", "--checkpoint", str(files["ckpt"]), "--no-window"]) == 2
    assert "camera 57 could not be opened" in capsys.readouterr().err


def test_cli_refuses_an_output_suffix_it_cannot_write_before_reading_anything(tmp_path, capsys):
    # Neither the source nor the checkpoint exists: had either been read first, the error would be about it.
    args = ["--source", str(tmp_path / "clip.mp4"), "--checkpoint", str(tmp_path / "none.pt"), "--no-window"]
    assert main([*args, "--output", str(tmp_path / "annotated.gif")]) == 2
    err = capsys.readouterr().err
    assert "annotated.gif: cannot write .gif files" in err and len(err.strip().splitlines()) == 1
    assert all(suffix in err for suffix in (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".mp4", ".avi"))
    assert not list(tmp_path.iterdir())


def test_cli_refuses_an_annotated_image_for_a_video(files, tmp_path, capsys):
    out = tmp_path / "annotated.png"
    assert main(["--source", str(files["clip"]), "--checkpoint", str(files["ckpt"]), "--output", str(out)]) == 2
    assert "needs a photo as --source" in capsys.readouterr().err and not out.exists()


def test_cli_runs_a_video_with_the_mtcnn_detector(files, tmp_path):
    out = tmp_path / "mtcnn.json"
    args = ["--source", str(files["clip"]), "--checkpoint", str(files["ckpt"]), "--no-window", "--max-frames", "10"]
    assert main([*args, "--detector", "mtcnn", "--json", str(out)]) == 0
    stats = json.loads(out.read_text())
    assert stats["pipeline"]["detector"] == "mtcnn" and stats["frames"] == 10 and stats["frames_with_face"] >= 8


class _StandInCamera:
    """What ``cv2.VideoCapture(index)`` returns for a working camera: frames from the sample clip, one dropped
    frame (cameras fail single reads), and no frame count. (The tests below run a whole V4L2 camera in user
    space; this one injects a failed read.)"""

    opened: list[int] = []

    def __init__(self, index, clip: Path, drop_at: int = 5):
        assert isinstance(index, int), "a camera is opened by its integer index"
        self.opened.append(index)
        self._cap, self._reads, self._drop_at, self.released = cv2.VideoCapture(str(clip)), 0, drop_at, False

    def isOpened(self):
        return True

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        self._reads += 1
        ok, frame = self._cap.read()
        return (False, None) if self._reads == self._drop_at else (ok, frame)

    def release(self):
        self.released = True
        self._cap.release()


def test_cli_reads_a_camera_index_and_keeps_going_past_a_dropped_frame(files, tmp_path, monkeypatch, capsys):
    cameras = []
    real_capture = cv2.VideoCapture

    def capture(arg, *rest):
        if isinstance(arg, int):
            cameras.append(_StandInCamera(arg, files["clip"]))
            return cameras[-1]
        return real_capture(arg, *rest)

    monkeypatch.setattr(cv2, "VideoCapture", capture)
    out = tmp_path / "cam.json"
    assert (
        main(
            [
                "--source",
                "2",
                "--checkpoint",
                str(files["ckpt"]),
                "--no-window",
                "--max-frames",
                "20",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    stats = json.loads(out.read_text())
    assert [c.opened[-1] for c in cameras] == [2] and cameras[0].released
    assert stats["frames"] == 20 and stats["frames_with_face"] >= 16
    assert stats["corrupt_frames"] == 1 and stats["source"] == "camera 2" and stats["stopped_by"] == "max_frames=20"
    assert "20 frames (1 corrupt skipped)" in capsys.readouterr().out


# A V4L2 camera in user space (tests/fake_v4l2.c, preloaded): OpenCV opens index 0 with its real V4L2 backend.

_PROBE = """
import json, sys, time, cv2
reads, pause = int(sys.argv[2]), float(sys.argv[3])
cap = cv2.VideoCapture(0)
out = {"opened": cap.isOpened(), "backend": cap.getBackendName() if cap.isOpened() else None,
       "fps": cap.get(cv2.CAP_PROP_FPS),
       "size": [cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)]}
frames, t0 = [], time.perf_counter()
for _ in range(reads):
    frames.append(cap.read()[1])
    time.sleep(pause)
out["read_seconds"] = time.perf_counter() - t0
out["second_opened"] = cv2.VideoCapture(0).isOpened()
cap.release()
if frames:
    cv2.imwritemulti(sys.argv[1], frames)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    """The stand-in camera built, with frames of the sample face at 320x240."""
    import fake_camera

    d = tmp_path_factory.mktemp("camera")
    frames = list(sample_frames(12, (320, 240), seed=4))
    size = fake_camera.write_yuyv(d / "frames.yuyv", frames)
    lib = fake_camera.build(d)
    return {"bgr": frames, "dir": d, "env": lambda fps: fake_camera.camera_env(lib, d / "frames.yuyv", size, fps)}


def _probe(camera, tmp_path, fps: float, reads: int, pause: float = 0.0, **env):
    """Open camera 0 in a fresh process with the stand-in preloaded; returns (what OpenCV said, frames read,
    the camera's own counts)."""
    out, report = tmp_path / "frames.tiff", tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), str(reads), str(pause)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**camera["env"](fps), "FAKE_V4L2_REPORT": str(report), **env},
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    info["stderr"] = proc.stderr
    frames = cv2.imreadmulti(str(out))[1] if reads else []
    return info, frames, json.loads(report.read_text()) if report.exists() else None


def test_stand_in_camera_is_a_v4l2_device_to_opencv(camera, tmp_path):
    info, frames, _ = _probe(camera, tmp_path, fps=0, reads=1)
    assert info["opened"] and info["backend"] == "V4L2"
    assert info["fps"] == 30.0 and info["size"] == [320.0, 240.0]  # the camera's mode, not the 640x480 OpenCV asks for
    assert len(frames) == 1 and frames[0].shape == (240, 320, 3)


def test_stand_in_camera_sends_its_frames_in_order_and_loops(camera, tmp_path):
    _, got, counts = _probe(camera, tmp_path, fps=0, reads=15)
    # The file's frames, exactly as OpenCV converts YUYV to BGR. OpenCV throws away the camera's first
    # frame on its first read, so the first frame read is the file's first or second.
    sent = [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_BGR2YUV_YUY2), cv2.COLOR_YUV2BGR_YUYV) for f in camera["bgr"]]
    first = [i for i, s in enumerate(sent) if np.array_equal(got[0], s)]
    assert len(got) == 15 and first in ([0], [1])
    for k, frame in enumerate(got):
        assert np.array_equal(frame, sent[(first[0] + k) % len(sent)]), f"frame {k}"
    assert counts["dropped"] == 0 and counts["delivered"] == 15 + first[0]


def test_stand_in_camera_in_use_does_not_open_twice(camera, tmp_path):
    info, _, _ = _probe(camera, tmp_path, fps=0, reads=1)
    assert info["opened"] and not info["second_opened"]


def test_stand_in_camera_holds_a_fast_reader_to_its_frame_rate(camera, tmp_path):
    # 10 frames at 20 frames/s, read as fast as they come: frame k is not there before k / 20 s.
    info, frames, counts = _probe(camera, tmp_path, fps=20, reads=10)
    assert len(frames) == 10 and info["read_seconds"] >= 0.4
    assert counts["delivered"] in (10, 11)


def test_stand_in_camera_drops_frames_a_slow_reader_misses(camera, tmp_path):
    # 100 frames/s for a reader that takes 5 frames 0.1 s apart: the camera keeps its clock, fills the few
    # queued buffers and loses the rest, as a webcam does.
    info, frames, counts = _probe(camera, tmp_path, fps=100, reads=5, pause=0.1)
    assert len(frames) == 5 and info["read_seconds"] >= 0.5
    assert counts["fps"] == 100 and counts["size"] == [320, 240]
    assert counts["captured"] >= 50 and counts["delivered"] in (5, 6)
    assert counts["dropped"] >= counts["captured"] - counts["delivered"] - 8  # at most the queued buffers kept


def test_stand_in_camera_without_its_frames_or_with_a_bad_rate_does_not_open(camera, tmp_path):
    info, _, counts = _probe(camera, tmp_path, fps=0, reads=0, FAKE_V4L2_FRAMES=str(camera["dir"] / "missing.yuyv"))
    assert info["opened"] is False and counts is None and "missing.yuyv" in info["stderr"]
    info, _, _ = _probe(camera, tmp_path, fps=0, reads=0, FAKE_V4L2_FPS="thirty")
    assert info["opened"] is False and "FAKE_V4L2_FPS=thirty" in info["stderr"]


def test_cli_on_camera_index_0_through_opencvs_v4l2_backend(files, camera, tmp_path):
    out = {k: tmp_path / f"cam.{k}" for k in ("json", "csv")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fer_utils.realtime",
            "--source",
            "0",
            "--checkpoint",
            str(files["ckpt"]),
            "--no-window",
            "--max-frames",
            "40",
            "--json",
            str(out["json"]),
            "--csv",
            str(out["csv"]),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**camera["env"](0), "FER_UTILS_CACHE": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(out["json"].read_text())
    assert stats["source"] == "camera 0" and stats["stopped_by"] == "max_frames=40"
    assert stats["frames"] == 40 and stats["corrupt_frames"] == 0 and stats["frames_with_face"] >= 32
    with open(out["csv"], newline="") as f:
        assert len(list(csv.reader(f))) - 1 == stats["faces"]
    assert "40 frames (0 corrupt skipped)" in proc.stdout


def test_cli_without_a_checkpoint_explains_how_to_get_one(tmp_path, monkeypatch, capsys, files):
    monkeypatch.setattr(ck, "SHIPPED_MODEL", tmp_path / "shipped.pt")
    monkeypatch.setattr(ck, "DEFAULT_RUN_CHECKPOINT", tmp_path / "best.pt")
    assert main(["--source", str(files["clip"]), "--no-window"]) == 2
    assert "no model to run" in capsys.readouterr().err


def test_cli_without_a_display_runs_windowless_and_says_so(files, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["--source", str(files["clip"]), "--checkpoint", str(files["ckpt"]), "--max-frames", "3"]) == 0
    assert "continuing as with --no-window" in capsys.readouterr().err


def test_corrupt_frame_is_skipped_and_the_stream_goes_on(files, tmp_path, pipeline):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(sample_frames(4)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    (folder / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    stats, _ = run(str(folder / "*.png"), pipeline, csv_path=tmp_path / "f.csv")
    assert stats.corrupt_frames == 1 and stats.frames == 3 and stats.frames_with_face == 3
    frames_in_csv = [row["frame"] for row in csv.DictReader(open(tmp_path / "f.csv"))]
    assert frames_in_csv == ["0", "2", "3"]


def test_y4m_has_a_header_and_420_frames(tmp_path):
    path = write_y4m(tmp_path / "cam.y4m", sample_frames(3, (64, 48)), fps=30)
    data = path.read_bytes()
    header = b"YUV4MPEG2 W64 H48 F30:1 Ip A1:1 C420jpeg\n"
    assert data.startswith(header)
    assert len(data) == len(header) + 3 * (len(b"FRAME\n") + 64 * 48 * 3 // 2)


# --------------------------------------------------------------------------- widget, kernel side


def test_widget_answers_a_frame_with_faces_and_a_corrupt_frame_with_an_error(pipeline):
    from fer_utils.live.webcam import WebcamWidget

    widget = WebcamWidget(pipeline=pipeline)
    sent = []
    widget.send = lambda content, buffers=None: sent.append(content)
    ok, jpeg = cv2.imencode(".jpg", next(sample_frames(1)))
    widget._on_message(widget, {"type": "start"}, [])
    widget._on_message(widget, {"type": "frame", "id": 7}, [memoryview(jpeg.tobytes())])
    widget._on_message(widget, {"type": "frame", "id": 8}, [b"garbage"])
    assert sent[0]["type"] == "result" and sent[0]["id"] == 7 and sent[0]["faces"][0]["label"] in CLASS_NAMES
    assert sent[1]["type"] == "error" and sent[1]["id"] == 8 and "corrupt frame" in sent[1]["message"]
    assert widget.stats["frames"] == 1 and widget.stats["corrupt_frames"] == 1
    assert widget.class_names == list(CLASS_NAMES)


def test_widget_stop_ends_the_run_its_stats_describe(pipeline):
    from fer_utils.live.webcam import WebcamWidget

    widget = WebcamWidget(pipeline=pipeline)
    widget.send = lambda content, buffers=None: None
    ok, jpeg = cv2.imencode(".jpg", next(sample_frames(1)))
    widget._on_message(widget, {"type": "start"}, [])
    widget._on_message(widget, {"type": "frame", "id": 0}, [memoryview(jpeg.tobytes())])
    widget._on_message(widget, {"type": "stop"}, [])
    seconds = widget.stats["seconds"]
    time.sleep(0.05)
    assert widget.stats["seconds"] == seconds and widget.stats["frames"] == 1


# --------------------------------------------------------------------------- notebook 05, headless


def test_notebook_05_headless_writes_montage_csv_and_stats(files, tmp_path):
    import papermill

    report_dir = tmp_path / "report"
    papermill.execute_notebook(
        str(paths.NOTEBOOKS_DIR / "05_webcam.ipynb"),
        str(tmp_path / "05.ipynb"),
        kernel_name="python3",
        parameters={
            "SOURCE": "sample",
            "checkpoint_path": str(files["ckpt"]),
            "report_dir": str(report_dir),
            "sample_frames": 20,
            "montage_frames": 4,
        },
        cwd=str(paths.REPO_ROOT),
        progress_bar=False,
    )
    stats = json.loads((report_dir / "realtime_stats.json").read_text())
    assert stats["frames"] == 20 and stats["frames_with_face"] >= 16
    montage = cv2.imread(str(report_dir / "realtime_montage.png"))
    assert montage is not None and montage.shape[1] == 4 * 240
    assert len((report_dir / "realtime_frames.csv").read_text().splitlines()) == stats["faces"] + 1
