"""Model stage: the network, the one preprocessing path, and self-describing checkpoints.

===============  ======================================================================
module           job
===============  ======================================================================
``network``      :func:`create_model`: EfficientNet-B3 (any timm model) for 1-channel faces
``transforms``   :class:`Preprocess` (the one preprocessing path), test-time views,
                 batched grayscale augmentation
``checkpoint``   atomic save, load, rebuild the model; :func:`resolve_checkpoint` (which
                 model to use when none is given); export of a release checkpoint
``averaging``    weight averaging over a run's last epochs (SWA), BatchNorm recomputed
``cli``          ``python -m fer_utils.model {describe,export,average}``
===============  ======================================================================

``python -m fer_utils.model describe CHECKPOINT`` prints a checkpoint's metadata;
``python -m fer_utils.model export SRC DST`` writes a release checkpoint;
``python -m fer_utils.model average FILES --template LAST --data FILE --out DST`` averages epochs.
"""

from fer_utils.model.averaging import average_checkpoint, average_weights, keep_epoch_weights, update_batchnorm
from fer_utils.model.checkpoint import (
    SHIPPED_MODEL,
    CheckpointError,
    describe,
    describe_file,
    export_model,
    float_state_dict,
    load_checkpoint,
    load_model,
    model_from_checkpoint,
    resolve_checkpoint,
    run_history,
    save_checkpoint,
)
from fer_utils.model.network import ModelConfig, channels_last, count_parameters, create_model, pretrained_stats
from fer_utils.model.transforms import (
    TTA_MODES,
    AugmentConfig,
    GrayAugment,
    Preprocess,
    center_crop,
    pixel_stats,
    to_float_batch,
    tta_views,
)

__all__ = [
    "SHIPPED_MODEL",
    "TTA_MODES",
    "AugmentConfig",
    "CheckpointError",
    "GrayAugment",
    "ModelConfig",
    "Preprocess",
    "center_crop",
    "channels_last",
    "count_parameters",
    "create_model",
    "average_checkpoint",
    "average_weights",
    "describe",
    "describe_file",
    "export_model",
    "float_state_dict",
    "keep_epoch_weights",
    "load_checkpoint",
    "load_model",
    "model_from_checkpoint",
    "pixel_stats",
    "pretrained_stats",
    "resolve_checkpoint",
    "run_history",
    "save_checkpoint",
    "to_float_batch",
    "tta_views",
    "update_batchnorm",
]
