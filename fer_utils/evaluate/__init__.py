"""Evaluation and analysis stage: predictions, metrics, calibration, Grad-CAM and label noise.

=================  ====================================================================
module             job
=================  ====================================================================
``predictions``    predictions with test-time views; a checkpoint scored on a split; calibration
``metrics``        accuracy, F1 per class, confusions; the per-face table
``calibration``    reliability, expected calibration error, temperature scaling
``gradcam``        Grad-CAM heat maps over 48x48 faces, and the layer they come from
``label_noise``    FER+ on the mistakes; confident-learning ranking of likely label errors
``priors``         post-hoc logit adjustment for class priors, its ``tau`` chosen on PublicTest
=================  ====================================================================

``python -m fer_utils.evaluate --checkpoint FILE --data FILE --split PublicTest --tta`` prints
the metrics as JSON.
"""

from fer_utils.evaluate.calibration import (
    apply_temperature,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    load_temperature,
    reliability_table,
    save_temperature,
    softmax,
)
from fer_utils.evaluate.gradcam import (
    checkpoint_grad_cam,
    choose_layer,
    compare_layers,
    grad_cam,
    overlay,
    resolve_layer,
)
from fer_utils.evaluate.label_noise import (
    label_issue_precision,
    label_issue_scores,
    label_noise_table,
)
from fer_utils.evaluate.metrics import (
    compute_metrics,
    fer2013_probs,
    ferplus_metrics,
    misclassified,
    most_confused_pairs,
    sample_table,
)
from fer_utils.evaluate.predictions import (
    Calibrated,
    SplitPredictions,
    calibrate,
    evaluate_checkpoint,
    predict,
    predict_split,
    save_metrics,
)
from fer_utils.evaluate.priors import adjustment_table, choose_tau, class_prior, logit_adjust

__all__ = [
    "Calibrated",
    "SplitPredictions",
    "calibrate",
    "adjustment_table",
    "apply_temperature",
    "calibration_summary",
    "checkpoint_grad_cam",
    "choose_tau",
    "class_prior",
    "choose_layer",
    "compare_layers",
    "compute_metrics",
    "evaluate_checkpoint",
    "expected_calibration_error",
    "fer2013_probs",
    "ferplus_metrics",
    "fit_temperature",
    "grad_cam",
    "label_issue_precision",
    "label_issue_scores",
    "label_noise_table",
    "load_temperature",
    "logit_adjust",
    "misclassified",
    "most_confused_pairs",
    "overlay",
    "predict",
    "predict_split",
    "reliability_table",
    "resolve_layer",
    "sample_table",
    "save_metrics",
    "save_temperature",
    "softmax",
]
