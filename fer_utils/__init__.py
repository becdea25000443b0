"""fer_utils: the small library behind the FER2013 notebooks, one subpackage per pipeline stage.

Each stage imports only from the stages above it (``tests/test_layers.py`` checks this), and each
subpackage's ``__init__`` re-exports its public names, so a notebook writes
``from fer_utils.data import load_dataset``; this package itself re-exports the constants and, on
first use, :func:`classify_image` (a photo in, one record per face out). One job per module, so any
function is one hop away:

=========================  ==================================================================
module                     job
=========================  ==================================================================
``constants``              class names, face size, split names, version
``extras``                 the optional extras and the error that names a missing one
``paths``                  repository-rooted paths and the data-file lookup
``files``                  atomic writes (JSON, text, bytes) and file hashing
**data**                   *FER2013 files in, checked arrays out*
``data.dataset``           ``FERData`` and ``FERDataError`` (file, row, field); split names
``data.csv_reader``        the FER2013 CSV reader (gzip, header, rows, pixels)
``data.loading``           ``load_dataset``: CSV, ``icml_face_data.csv`` or image folder, cached;
                           ``python -m fer_utils.data``
``data.ferplus``           FER+ annotator votes joined to FER2013 rows by position; their labels
``data.synthetic``         procedurally drawn FER2013-format faces (the offline default)
``data.face_drawing``      one synthetic face drawn from its expression and appearance
``data.eda``               duplicate groups, blank images, FER vs FER+ agreement
``data.class_weights``     class weights from the Training split, saved as JSON
``data.review``            the review file: flags and corrected labels per face
**model**                  *the network and everything needed to rebuild it*
``model.network``          ``create_model``: EfficientNet-B3 (any timm model) for 1-channel faces
``model.transforms``       the one preprocessing path, test-time views, batched augmentation
``model.checkpoint``       self-describing checkpoints: atomic save, load, rebuild, export
``model.averaging``        weight averaging over a run's last epochs (SWA), BatchNorm recomputed
``model.cli``              ``python -m fer_utils.model {describe,export,average}``
**evaluate**               *predictions and what they say*
``evaluate.predictions``   predictions with test-time views; ``python -m fer_utils.evaluate``
``evaluate.metrics``       accuracy, F1 per class, confusions; the per-face table
``evaluate.calibration``   reliability, expected calibration error, temperature scaling
``evaluate.gradcam``       Grad-CAM heat maps over 48x48 faces, and the layer they come from
``evaluate.label_noise``   FER+ on the mistakes; confident-learning ranking of label errors
``evaluate.priors``        post-hoc logit adjustment for class priors (optional, recorded)
**train**                  *the recipe and the engine*
``train.recipe``           ``TrainConfig``: the recipe as defaults, checked on construction; CLI
``train.targets``          training targets (smoothing, mixup, FER+ shares, corrections), loss
``train.warm_start``       a run started from a checkpoint, or continued from an exported one
``train.distributed``      DistributedDataParallel under ``torchrun``
``train.monitor``          CPU taken by other processes and peak memory, per training epoch
``train.engine``           ``fit``: setup, one epoch, evaluate and checkpoint; ``python -m fer_utils.train``
``train.folds``            out-of-sample probabilities for every Training face (k-fold cross-fitting), cached
**reports**                *what the notebooks show*
``plots``                  figures used by the notebooks
``report``                 report banners, JSON outputs, notebook logging
**browser**                *notebook 04's error browser*
``browser.selection``      the browser's table logic: filters, sort orders, pages, export
``browser.widgets``        the front end (anywidgets; JavaScript and CSS in ``browser/static/``)
``browser.view``           the controls wired to the browser's state; the status line
``browser.app``            ``MisclassificationBrowser``
**live**                   *faces from a camera, a video or a photo, classified as they come*
``live.detect``            face detectors behind one interface, tracking, the 48x48 face crop
``live.classify``          ``FaceClassifier``: 48x48 faces -> probabilities (ONNX Runtime or PyTorch)
``live.pipeline``          ``Pipeline``: one frame -> faces, labels, smoothed probabilities
``live.photo``             ``classify_image``: a photo in, one record per face out
``live.sources``           cameras, video files and images as frame sources; the video writer
``live.draw``              boxes and labels drawn on frames; montages
``live.runner``            the live command line's loop over a source
``live.webcam``            ``WebcamWidget``: the browser's camera, the pipeline in the kernel
``live.lab_server``        Jupyter Server settings for the widget's speed (``make lab``)
**entry points**
``realtime``               ``python -m fer_utils.realtime``, the live command line
``reproduce``              runs the notebooks with papermill; ``make reproduce``
=========================  ==================================================================

Importing the package is cheap: heavy or optional dependencies (torch, cv2,
ipywidgets) are imported only by the modules that need them. Modules that need an
optional extra (``notebooks``, ``live``) say which one when it is missing.
"""

from typing import Any

from fer_utils.constants import CLASS_NAMES, FACE_SIZE, NUM_CLASSES, SPLITS, __version__
from fer_utils.extras import EXTRAS, require_extra

__all__ = [
    "CLASS_NAMES",
    "EXTRAS",
    "FACE_SIZE",
    "NUM_CLASSES",
    "SPLITS",
    "__version__",
    "classify_image",
    "require_extra",
]


def __getattr__(name: str) -> Any:
    # classify_image needs torch and OpenCV: imported on first use, so ``import fer_utils`` stays light.
    if name == "classify_image":
        from fer_utils.live.photo import classify_image

        return classify_image
    raise AttributeError(f"module 'fer_utils' has no attribute {name!r}")
