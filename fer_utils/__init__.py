"""fer_utils: the small library behind the FER2013 notebooks.

One job per module, so any function is one hop away:

=====================  ==========================================================
module                 job
=====================  ==========================================================
``paths``              repository-rooted paths and the data-file lookup
``files``              atomic writes (JSON, text, bytes) and file hashing
``data``               FER2013 loading, validation, caching; ``python -m fer_utils.data``
``csv_reader``         the FER2013 CSV reader (gzip, header, rows, pixels) behind ``data``
``ferplus``            FER+ annotator votes joined to FER2013 rows by position
``synthetic``          procedurally drawn FER2013-format faces (the offline default)
``eda``                duplicate groups, blank images, FER vs FER+ agreement
``class_weights``      class weights from the Training split, saved as JSON
``transforms``         the one preprocessing path and batched grayscale augmentation
``model``              ``create_model``: EfficientNet-B3 (any timm model) for 1-channel faces
``checkpoint``         self-describing checkpoints: atomic save, load, rebuild the model;
                       ``resolve_checkpoint`` (which model to use when none is given)
``recipe``             ``TrainConfig``: the recipe as defaults, checked on construction; CLI
``targets``            training targets (smoothing, mixup, FER+ shares, corrections), loss
``train``              the training engine; ``python -m fer_utils.train``
``monitor``            CPU taken by other processes and peak memory, per training epoch
``evaluate``           predictions with TTA, metrics; ``python -m fer_utils.evaluate``
``plots``              figures used by the notebooks
``gradcam``            Grad-CAM heat maps over 48x48 faces
``calibration``        reliability, expected calibration error, temperature scaling
``selection``          the error browser's table: filters, sort orders, pages, export
``label_noise``        FER+ on the mistakes; confident-learning ranking of likely label errors
``review``             the review file: flags and corrected labels per face
``browser_widgets``    the error browser's front end (anywidgets; JS and CSS in ``static/``)
``browser_view``       the error browser's controls wired to its state, status line
``browser``            ``MisclassificationBrowser``: the interactive error browser of notebook 04
``report``             report banners, JSON outputs, notebook logging
``live``               the live group: face detection, fast classification, the frame
                       pipeline, sources, the command line and notebook 05's webcam
                       widget (its own module table is in ``fer_utils.live``)
``realtime``           ``python -m fer_utils.realtime``, the live command line's entry point
``reproduce``          runs the notebooks with papermill; ``make reproduce``
=====================  ==========================================================

Importing the package is cheap: heavy or optional dependencies (torch, cv2,
ipywidgets) are imported only by the modules that need them.
"""

__version__ = "0.1.0"

CLASS_NAMES: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
"""FER2013 emotion names, indexed by the CSV's ``emotion`` label (0-6)."""

NUM_CLASSES: int = len(CLASS_NAMES)

FACE_SIZE: int = 48
"""Side of a FER2013 face in pixels (48x48 grayscale)."""

SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
"""FER2013 ``Usage`` values: train, validation (model selection) and held-out test."""
