"""A FER+ votes file made to measure for the tests' small FER2013 files."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_votes(
    path: Path,
    usage: np.ndarray,
    labels: np.ndarray,
    public_kinds: list[str],
    training_kinds: tuple[str, ...] = ("label",),
) -> Path:
    """A FER+ votes file for the rows of a FER2013 file: each face's FER2013 label wins 8 of 10 votes, except the
    faces whose kind (cycled over PublicTest from ``public_kinds``, over Training from ``training_kinds``) is
    "contempt", "tie" or "not_a_face"."""
    from fer_utils.data import FERPLUS_COLUMNS
    from fer_utils.data.ferplus import FERPLUS_TO_FER

    column_of = {v: c for c, v in FERPLUS_TO_FER.items() if v is not None}
    lines, seen = ["Usage,Image name," + ",".join(FERPLUS_COLUMNS)], {"PublicTest": 0, "Training": 0}
    cycles = {"PublicTest": public_kinds, "Training": list(training_kinds)}
    for split, label in zip(usage, labels, strict=True):
        votes = dict.fromkeys(FERPLUS_COLUMNS, 0)
        kind = cycles[split][seen[split] % len(cycles[split])] if split in cycles else "label"
        seen[split] = seen.get(split, 0) + 1
        if kind == "tie":
            votes["anger"], votes["fear"] = 5, 5
        else:
            votes[{"contempt": "contempt", "not_a_face": "NF"}.get(kind, column_of[int(label)])] = 8
            votes["unknown"] = 2
        lines.append(f"{split},," + ",".join(str(votes[c]) for c in FERPLUS_COLUMNS))
    path.write_text("\n".join(lines) + "\n")
    return path
