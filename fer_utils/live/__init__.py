"""The live group: faces from a camera, a video, the browser or a photo, classified as they come.

One job per module:

================  ==================================================================
module            job
================  ==================================================================
``detect``        face detectors behind one interface (Haar cascade, MTCNN, YuNet), tracking
                  between full-frame searches, the shrunk search of large photos, and the
                  crop to a FER2013-framed 48x48 face
``classify``      ``FaceClassifier``: 48x48 faces -> probabilities (ONNX Runtime, checked
                  against PyTorch, else PyTorch); the ONNX export
``pipeline``      ``Pipeline``: one frame -> faces, labels, probabilities smoothed per
                  tracked face (``FaceSmoother``); ``PipelineConfig``, ``FrameResult``
``photo``         ``classify_image``: a photo (file or array) -> one ``FaceResult`` per
                  face, through the same detection, crop and preprocessing, unsmoothed
``sources``       cameras, video files and images as frame sources; image files read
                  (truncated ones refused); the annotated-video writer; sample clips
                  of a public-domain face (a camera stand-in)
``draw``          boxes and labels drawn on frames; montages
``runner``        ``run`` over a source (video, CSV, window), notebook 05's ``run_headless``,
                  ``run_photos`` (annotated copies), the command line ``python -m fer_utils.realtime``
``webcam``        ``WebcamWidget``: the browser's camera, this pipeline in the kernel
                  (anywidget; browser side in ``static/``)
``lab_server``    Jupyter Server settings for the widget's speed (``jupyter_config/``, ``make lab``)
================  ==================================================================

Importing this package imports nothing heavy (Jupyter Server loads ``lab_server`` through it at start-up);
the names below are re-exported on first use, and cv2, torch, onnxruntime and anywidget come with the
modules that need them.
"""

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "FaceClassifier": "classify",
    "FaceResult": "photo",
    "Pipeline": "pipeline",
    "PipelineConfig": "pipeline",
    "WebcamWidget": "webcam",
    "classify_image": "photo",
    "make_detector": "detect",
    "run": "runner",
    "run_headless": "runner",
    "run_photos": "runner",
}
"""Public name -> the module of this package that defines it."""

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
