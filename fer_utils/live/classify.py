"""Fast classification of 48x48 faces for live use: ONNX Runtime when available, else PyTorch on one thread.

:class:`FaceClassifier` takes uint8 faces (N, 48, 48), the output of
:func:`fer_utils.live.detect.crop_face`, prepares them with the checkpoint's own
:class:`~fer_utils.model.transforms.Preprocess` (the same code as training and
evaluation) and returns class probabilities.

Why ONNX Runtime: for one 48-px face at a time, PyTorch's per-operator overhead
dominates. On the 2-core development machine EfficientNet-B3 at 48 px took about
11 ms per face in ONNX Runtime and about 54 ms in eager PyTorch, both on one
thread. The ONNX file is exported from the checkpoint on first use, **verified
against PyTorch's outputs** on random inputs before it is used, and cached (by
the checkpoint's SHA-256) under ``fer_utils.paths.cache_dir() / "onnx"``.
If ``onnxruntime`` is missing or the export fails, it falls back to PyTorch
with a warning saying why.

One thread, because the browser (video capture and JPEG encoding), the face
detector and the classifier share two cores in the target setting: a second
intra-op thread mostly contends with them.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fer_utils import paths
from fer_utils.constants import FACE_SIZE
from fer_utils.evaluate.calibration import softmax
from fer_utils.extras import require_extra
from fer_utils.files import atomic_write, atomic_write_json, sha256_file
from fer_utils.model.checkpoint import load_model, resolve_checkpoint
from fer_utils.model.transforms import Preprocess, tta_views

logger = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("auto", "onnx", "torch")

ONNX_ATOL = 1e-4
"""Largest accepted |ONNX - PyTorch| difference of any logit during verification."""

ONNX_INPUT = "faces"
"""Name of the exported model's input: preprocessed faces, float32 (N, 1, img_size, img_size)."""


class ExportError(RuntimeError):
    """The ONNX export failed, or its outputs differ from PyTorch's."""


def export_onnx(
    model: nn.Module, preprocess: Preprocess, path: str | os.PathLike[str], *, atol: float = ONNX_ATOL, seed: int = 0
) -> dict[str, Any]:
    """Export ``model`` to ONNX (dynamic batch) and check it against PyTorch.

    Args:
        model: The network, in eval mode; its input is ``preprocess``'s output.
        preprocess: Gives the input size (N, 1, img_size, img_size).
        path: Destination ``.onnx`` file (written atomically).
        atol: Largest accepted absolute logit difference.
        seed: Seed of the random verification inputs.

    Returns:
        ``{"max_abs_diff": float, "atol": float, "opset": int, "torch": version}``.

    Raises:
        ExportError: export failed, or ONNX Runtime's logits differ by more than ``atol``.
    """
    require_extra("live", "onnxruntime", "onnx")
    import onnxruntime as ort

    s = preprocess.img_size
    example = torch.zeros(1, 1, s, s)
    opset = 17
    model = model.eval()

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            # The TorchScript-based exporter is deprecated in favour of the dynamo one, which needs the extra
            # package onnxscript; it is still the exporter that works with only torch and onnx installed.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                input_names=[ONNX_INPUT],
                output_names=["logits"],
                dynamic_axes={ONNX_INPUT: {0: "batch"}, "logits": {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            )

    try:
        atomic_write(path, write)
    except Exception as err:  # the exporter raises many types (unsupported op, tracing errors)
        raise ExportError(f"{path}: ONNX export failed ({type(err).__name__}: {err})") from err

    gen = torch.Generator().manual_seed(seed)
    # Faces, not noise: random uint8 images through the real preprocessing give realistic input statistics.
    faces = torch.randint(0, 256, (4, FACE_SIZE, FACE_SIZE), dtype=torch.uint8, generator=gen)
    x = preprocess(faces)
    with torch.inference_mode():
        expected = model(x).float().numpy()
    session = _session(Path(path), threads=1)
    got = session.run(None, {ONNX_INPUT: x.numpy()})[0]
    diff = float(np.abs(got - expected).max())
    if not np.isfinite(diff) or diff > atol:
        Path(path).unlink(missing_ok=True)
        raise ExportError(f"{path}: ONNX Runtime's logits differ from PyTorch's by {diff:.2e} (> {atol:.0e})")
    return {
        "max_abs_diff": diff,
        "atol": atol,
        "opset": opset,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
    }


def _session(path: Path, threads: int) -> Any:
    require_extra("live", "onnxruntime", "onnx")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # warnings about unused initialisers are noise here
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_for_checkpoint(checkpoint: Path, model: nn.Module, preprocess: Preprocess) -> tuple[Path, dict[str, Any]]:
    """The verified ONNX export of ``checkpoint``, exported on first use and cached by the checkpoint's SHA-256.

    Returns:
        ``(onnx_path, verification)`` with the record written next to it at export time.
    """
    digest = sha256_file(checkpoint)[:20]
    folder = paths.cache_dir() / "onnx"
    onnx_path, record_path = folder / f"{digest}.onnx", folder / f"{digest}.json"
    if onnx_path.is_file() and record_path.is_file():
        return onnx_path, json.loads(record_path.read_text(encoding="utf-8"))
    logger.info("exporting %s to ONNX (%s), once per checkpoint", checkpoint.name, onnx_path)
    record = {"checkpoint": str(checkpoint), **export_onnx(model, preprocess, onnx_path)}
    atomic_write_json(record_path, record)
    return onnx_path, record


class FaceClassifier:
    """Class probabilities for 48x48 faces from a checkpoint.

    Args:
        checkpoint: A checkpoint file; ``None`` or ``""``: see :func:`fer_utils.model.checkpoint.resolve_checkpoint`.
        backend: ``"onnx"`` (ONNX Runtime; an error if unavailable), ``"torch"``,
            or ``"auto"`` (ONNX Runtime if it can be used, else PyTorch with a warning).
        threads: CPU threads for the classifier (ONNX Runtime intra-op threads, or
            ``torch.set_num_threads``, which is process-wide).
        tta: Test-time views averaged per face (``"none"``, ``"flip"``, ``"tencrop"``);
            ``"none"`` by default because each view costs a forward pass per frame.

    Attributes:
        checkpoint: The checkpoint file used.
        class_names: Names of the output classes, in order.
        preprocess: The checkpoint's :class:`Preprocess`.
        meta: The checkpoint's metadata (``fer_utils.model.checkpoint.load_model``).
        backend: The backend actually used, ``"onnx"`` or ``"torch"``.
        backend_note: Why that backend (e.g. the reason ONNX Runtime was not used).
        verification: The ONNX export's check against PyTorch (empty for PyTorch).

    Raises:
        CheckpointError: no such checkpoint, or an unreadable one.
        ValueError: unknown backend or TTA mode.
        ExportError: ``backend="onnx"`` and the export or its verification failed.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        *,
        backend: str = "auto",
        threads: int = 1,
        tta: str = "none",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        tta_views(np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8), Preprocess(), tta)  # validates the mode early
        self.checkpoint = resolve_checkpoint(checkpoint)
        self.threads = threads
        self.tta = tta
        model, meta = load_model(self.checkpoint)
        self.meta = meta
        self.class_names: tuple[str, ...] = tuple(meta["class_names"])
        self.preprocess: Preprocess = meta["preprocess"]
        self.verification: dict[str, Any] = {}
        self._model: nn.Module | None = None
        self._session: Any = None
        self.backend_note = ""
        if backend in ("auto", "onnx"):
            try:
                onnx_path, self.verification = onnx_for_checkpoint(self.checkpoint, model, self.preprocess)
                self._session = _session(onnx_path, threads)
                self.backend = "onnx"
                diff = self.verification["max_abs_diff"]
                self.backend_note = f"ONNX Runtime, verified against PyTorch (max |diff| {diff:.1e})"
            except (ImportError, ExportError, OSError) as err:
                if backend == "onnx":
                    raise
                self.backend_note = f"PyTorch: ONNX Runtime unavailable ({type(err).__name__}: {err})"
                logger.warning("using PyTorch for classification: %s", self.backend_note)
        if self._session is None:
            torch.set_num_threads(threads)
            self._model = model
            self.backend = "torch"
            self.backend_note = self.backend_note or "PyTorch (requested)"

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Class probabilities.

        Args:
            faces: uint8 faces (N, 48, 48) or one face (48, 48), values 0-255,
                framed like FER2013 (:func:`fer_utils.live.detect.crop_face`).

        Returns:
            float32 (N, len(class_names)), rows summing to 1 (N may be 0).

        Raises:
            ValueError: ``faces`` is not uint8 48x48 face crops (a whole image, say),
                with a pointer to :func:`fer_utils.classify_image`, which takes photos.
        """
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        if faces.ndim != 3 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE) or faces.dtype != np.uint8:
            raise ValueError(
                f"FaceClassifier.predict takes uint8 face crops of {FACE_SIZE}x{FACE_SIZE} pixels, shaped "
                f"(N, {FACE_SIZE}, {FACE_SIZE}) or ({FACE_SIZE}, {FACE_SIZE}); got {faces.dtype} {faces.shape}. "
                "For a whole image use fer_utils.classify_image(image): it finds the faces, crops and classifies them"
            )
        if len(faces) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        views = tta_views(faces, self.preprocess, self.tta)
        probs = np.zeros((len(faces), len(self.class_names)), np.float64)
        for v in views:
            probs += softmax(self._logits(v))
        return (probs / len(views)).astype(np.float32)

    def _logits(self, x: torch.Tensor) -> np.ndarray:
        if self._session is not None:
            return self._session.run(None, {ONNX_INPUT: x.numpy()})[0]
        assert self._model is not None
        with torch.inference_mode():
            return self._model(x).float().numpy()

    def describe(self) -> dict[str, Any]:
        """What is classifying: checkpoint, architecture, backend, threads, TTA (JSON-ready)."""
        return {
            "checkpoint": str(self.checkpoint),
            "arch": getattr(self.meta.get("model_config"), "arch", "?"),
            "backend": self.backend,
            "backend_note": self.backend_note,
            "threads": self.threads,
            "tta": self.tta,
            "class_names": list(self.class_names),
            "preprocess": self.preprocess.to_dict(),
        }
