"""``python -m fer_utils.model {describe,export,average}``: inspect, release or average checkpoints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fer_utils import paths
from fer_utils.constants import CLASS_NAMES
from fer_utils.files import sha256_file
from fer_utils.model.averaging import WEIGHTS, average_checkpoint
from fer_utils.model.checkpoint import CheckpointError, describe_file, export_model, load_checkpoint
from fer_utils.model.transforms import TTA_MODES


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m fer_utils.model", description="Inspect, export or average checkpoints."
    )
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("describe", help="print a checkpoint's metadata and SHA-256 as JSON")
    d.add_argument("checkpoint", help="a checkpoint file")
    e = sub.add_parser("export", help="write a release checkpoint (no optimiser state, float16 weights)")
    e.add_argument("src", help="a training checkpoint (best.pt, last.pt, or an averaged one)")
    e.add_argument("dst", help="the release checkpoint to write")
    e.add_argument("--float32", action="store_true", help="keep float32 weights")
    e.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation to record")
    e.add_argument("--evaluation", help="JSON file of metrics (python -m fer_utils.evaluate --out) to record")
    e.add_argument(
        "--logit-adjust",
        type=float,
        metavar="TAU",
        help="record an optional logit adjustment for class priors (applied only by evaluate --logit-adjust)",
    )
    e.add_argument("--prior-data", help="with --logit-adjust: FER2013 file whose Training split gives the prior")
    a = sub.add_parser("average", help="average the weights of several epochs and recompute BatchNorm (SWA)")
    a.add_argument("files", nargs="+", help="kept epochs (out_dir/epochs/epoch_NNN.pt) or last.pt files of one run")
    a.add_argument("--out", required=True, help="the averaged checkpoint to write")
    a.add_argument("--template", required=True, help="last.pt or best.pt of the same run (its description)")
    a.add_argument("--data", required=True, help="FER2013 file; BatchNorm statistics come from its Training faces")
    a.add_argument("--weights", choices=WEIGHTS, default="raw", help="average the raw weights or their moving average")
    return ap


def _average(args: argparse.Namespace) -> Path:
    """``average``: BatchNorm statistics from the template run's own Training split of its own data."""
    from fer_utils.data import load_dataset

    template = paths.resolve_cli(args.template)
    recorded = load_checkpoint(template)
    data = load_dataset(paths.resolve_cli(args.data))
    md5 = recorded.get("data", {}).get("content_md5")
    if md5 and md5 != data.content_md5:
        raise ValueError(f"{template}: field 'data.content_md5' is {md5!r}, {args.data} has {data.content_md5!r}")
    split = recorded.get("train_config", {}).get("train_split", "Training")
    files = [paths.resolve_cli(f) for f in args.files]
    return average_checkpoint(files, args.out, data.split(split).images, template=template, weights=args.weights)


def _logit_adjustment(src: str, tau: float | None, prior_data: str | None) -> dict[str, Any] | None:
    """The ``logit_adjustment`` record of ``export --logit-adjust TAU --prior-data FILE``, or None.

    The prior is the Training split's FER2013 label frequencies, so a seven-class model only.
    """
    from fer_utils.data import load_dataset

    if tau is None and prior_data is None:
        return None
    if tau is None or prior_data is None:
        raise ValueError("--logit-adjust TAU and --prior-data FILE go together")
    names = list(load_checkpoint(src)["class_names"])
    if names != list(CLASS_NAMES):
        raise ValueError(f"{src}: field 'class_names' is {names}; the FER2013 prior fits the seven FER2013 classes")
    data = load_dataset(paths.resolve_cli(prior_data))
    counts = np.bincount(data.split("Training").labels, minlength=len(CLASS_NAMES)).astype(np.float64)
    return {
        "tau": float(tau),
        "prior": (counts / counts.sum()).tolist(),
        "prior_from": {"file": data.source.name, "content_md5": data.content_md5, "split": "Training"},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    from fer_utils.data import FERDataError

    args = _parser().parse_args(argv)
    try:
        if args.command == "describe":
            print(json.dumps(describe_file(paths.resolve_cli(args.checkpoint)), indent=2, default=str))
        elif args.command == "export":
            evaluation = json.loads(Path(args.evaluation).read_text()) if args.evaluation else None
            adjustment = _logit_adjustment(args.src, args.logit_adjust, args.prior_data)
            sha = export_model(
                args.src,
                args.dst,
                half=not args.float32,
                tta=args.tta,
                evaluation=evaluation,
                logit_adjustment=adjustment,
            )
            print(json.dumps({"file": str(args.dst), "sha256": sha, "bytes": Path(args.dst).stat().st_size}))
        else:
            out = _average(args)
            print(json.dumps({"file": str(out), "sha256": sha256_file(out), "averaged": len(args.files)}))
    except (CheckpointError, FERDataError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
