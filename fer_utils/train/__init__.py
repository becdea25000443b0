"""Training stage: the recipe, the engine, and what a run needs around them.

================  ===================================================================
module            job
================  ===================================================================
``recipe``        :class:`TrainConfig`: the recipe as defaults, checked on construction;
                  config files and the command line's flags
``targets``       training targets (smoothing, mixup, FER+ shares, corrections), loss
``warm_start``    a run started from a checkpoint, or continued from an exported one
``distributed``   DistributedDataParallel under ``torchrun`` (gloo on CPU, NCCL on GPU)
``monitor``       CPU taken by other processes and peak memory, per training epoch
``engine``        :func:`fit`: setup, one epoch, evaluate and checkpoint; resumable
``folds``         :func:`crossfit`: out-of-sample probabilities for every Training face,
                  one run per fold (k-fold cross-fitting), cached; :func:`load_crossfit`
================  ===================================================================

``python -m fer_utils.train --config configs/train.yaml`` runs (or resumes) a run;
``python -m fer_utils.train crossfit --config configs/crossfit.yaml`` cross-fits the Training split.
"""

from fer_utils.train.engine import fit, train
from fer_utils.train.folds import CrossFit, crossfit, load_crossfit
from fer_utils.train.recipe import TrainConfig, config_from_args, load_config

__all__ = ["CrossFit", "TrainConfig", "config_from_args", "crossfit", "fit", "load_config", "load_crossfit", "train"]
