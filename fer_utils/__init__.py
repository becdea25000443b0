"""fer_utils: the small library behind the FER2013 notebooks.

One job per module, so any function is one hop away:

=====================  ==========================================================
module                 job
=====================  ==========================================================
``paths``              repository-rooted paths and the data-file lookup
``files``              atomic writes (JSON, text, bytes) and file hashing
``data``               FER2013 loading, validation, caching; ``python -m fer_utils.data``
``ferplus``            FER+ annotator votes joined to FER2013 rows by position
``synthetic``          procedurally drawn FER2013-format faces (the offline default)
``eda``                duplicate groups, blank images, FER vs FER+ agreement
``class_weights``      class weights from the Training split, saved as JSON
``transforms``         the one preprocessing path and batched grayscale augmentation
``model``              ``create_model``: EfficientNet-B3 (any timm model) for 1-channel faces
``checkpoint``         self-describing checkpoints: atomic save, load, rebuild the model
``train``              the training engine; ``python -m fer_utils.train``
``monitor``            CPU taken by other processes and peak memory, per training epoch
``evaluate``           predictions with TTA, metrics; ``python -m fer_utils.evaluate``
``plots``              figures used by the notebooks
``gradcam``            Grad-CAM heat maps over 48x48 faces
``calibration``        reliability, expected calibration error, temperature scaling
``browser``            ``MisclassificationBrowser``: the interactive error browser of notebook 04
``report``             report banners (which data a notebook ran on) and JSON outputs
``faces``              face detection (Haar cascade, YuNet) and the crop to a 48x48 face
``inference``          fast single-face classification (ONNX Runtime, else PyTorch)
``realtime``           the live pipeline; ``python -m fer_utils.realtime``
``webcam``             the in-browser webcam widget (anywidget) of notebook 05
``lab_server``         Jupyter Server settings for the widget's speed (``jupyter_config/``)
``reproduce``          runs the notebooks with papermill; ``make reproduce``
=====================  ==========================================================

Importing the package is cheap: heavy or optional dependencies (torch, cv2,
ipywidgets) are imported only by the modules that need them.
"""

__version__ = "0.1.0"

CLASS_NAMES: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
"""FER2013 emotion names, indexed by the CSV's ``emotion`` label (0-6)."""

NUM_CLASSES: int = len(CLASS_NAMES)

SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
"""FER2013 ``Usage`` values: train, validation (model selection) and held-out test."""
