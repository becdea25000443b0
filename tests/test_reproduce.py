"""`python -m fer_utils.reproduce`: profiles, parameter injection, and the smoke run of notebooks 01-04."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from fer_utils import paths
from fer_utils.report import SYNTHETIC_BANNER
from fer_utils.reproduce import (
    NOTEBOOKS,
    Profile,
    ProfileError,
    declared_parameters,
    expand_placeholders,
    load_profile,
    notebook_parameters,
    select_notebooks,
)

ACCURACY_MARGIN = 0.15
"""How far above the majority-class rate the smoke model must score.

On the synthetic test splits the most frequent class (Happy) is about a quarter of the faces, so
"always Happy" already beats 1/7 chance; the bar is that rate plus this margin. The smoke training
measured 0.60-0.64 on PublicTest and 0.63 on PrivateTest (majority rate 0.25, so the bar is 0.40).
"""


# --------------------------------------------------------------------------- fast: profiles and parameters


def _profile(common: dict | None = None, notebooks: dict | None = None) -> Profile:
    return Profile(name="p", path=Path("/x/p.yaml"), common=common or {}, notebooks=notebooks or {})


PLACEHOLDERS = {
    "report_dir": "/out/p",
    "profile": "p",
    "synthetic_data": "/data/synthetic.csv",
    "test_split": "PrivateTest",
}


def test_placeholders_are_replaced_in_strings_only():
    value = {"a": "{report_dir}/run", "b": ["{profile}.json", 3], "c": 0.5, "d": "plain"}
    assert expand_placeholders(value, PLACEHOLDERS) == {"a": "/out/p/run", "b": ["p.json", 3], "c": 0.5, "d": "plain"}


def test_unknown_placeholder_is_an_error_naming_it():
    with pytest.raises(ProfileError, match="unknown placeholder {reportdir}"):
        expand_placeholders("{reportdir}/x", PLACEHOLDERS, where="p.yaml: 03_train.out_dir")


def test_common_parameters_go_only_to_notebooks_declaring_them():
    profile = _profile(common={"data_path": "{synthetic_data}", "seed": 3})
    assert notebook_parameters(profile, "02_class_weights", ["data_path", "scheme"], PLACEHOLDERS) == {
        "data_path": "/data/synthetic.csv"
    }


def test_notebook_section_overrides_common_and_data_flag_overrides_both():
    profile = _profile(
        common={"data_path": "a.csv", "seed": 1}, notebooks={"03_train": {"seed": 2, "data_path": "b.csv"}}
    )
    params = notebook_parameters(profile, "03_train", ["data_path", "seed"], PLACEHOLDERS)
    assert params == {"data_path": "b.csv", "seed": 2}
    params = notebook_parameters(profile, "03_train", ["data_path", "seed"], PLACEHOLDERS, data="/real/fer2013.csv")
    assert params["data_path"] == "/real/fer2013.csv"


def test_report_dir_is_always_the_output_folder():
    profile = _profile(common={"report_dir": "elsewhere"})
    assert notebook_parameters(profile, "01_eda", ["report_dir"], PLACEHOLDERS) == {"report_dir": "/out/p"}


def test_undeclared_notebook_parameter_is_an_error():
    profile = _profile(notebooks={"03_train": {"epochz": 2}})
    with pytest.raises(ProfileError, match=r"03_train.*epochz"):
        notebook_parameters(profile, "03_train", ["epochs"], PLACEHOLDERS)


def test_profile_with_unknown_notebook_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("notebooks:\n  06_unknown:\n    x: 1\n")
    with pytest.raises(ProfileError, match="06_unknown"):
        load_profile(str(path))


def test_missing_profile_lists_the_known_ones():
    with pytest.raises(ProfileError, match="profile not found"):
        load_profile("no_such_profile")


def test_only_selects_by_number_or_name_in_run_order():
    assert select_notebooks("04,1") == ["01_eda", "04_error_analysis"]
    assert select_notebooks("03_train") == ["03_train"]
    assert select_notebooks(None) == list(NOTEBOOKS)
    with pytest.raises(ValueError, match="matches no notebook"):
        select_notebooks("07")


@pytest.mark.parametrize("name", ["smoke", "synthetic", "full"])
def test_shipped_profiles_only_set_parameters_the_notebooks_declare(name):
    profile = load_profile(name)
    assert profile.path.read_text().startswith("#"), "a profile starts with a comment saying what it is for"
    for nb in NOTEBOOKS:
        for retrain in (False, True) if profile.retrain else (False,):
            notebook_parameters(
                profile, nb, declared_parameters(paths.NOTEBOOKS_DIR / f"{nb}.ipynb"), PLACEHOLDERS, retrain=retrain
            )


def test_full_profile_analyses_the_shipped_model_unless_asked_to_retrain():
    profile = load_profile("full")
    declared = declared_parameters(paths.NOTEBOOKS_DIR / "03_train.ipynb")
    assert notebook_parameters(profile, "03_train", declared, PLACEHOLDERS)["retrain"] is False
    retrained = notebook_parameters(profile, "03_train", declared, PLACEHOLDERS, retrain=True)
    assert retrained["retrain"] is True and retrained["config_path"] == "configs/train.yaml"
    declared = declared_parameters(paths.NOTEBOOKS_DIR / "04_error_analysis.ipynb")
    shipped = notebook_parameters(profile, "04_error_analysis", declared, PLACEHOLDERS)
    assert shipped["checkpoint_path"] == "models/fer2013_efficientnet_b3.pt" and shipped["split"] == "PrivateTest"
    run = notebook_parameters(profile, "04_error_analysis", declared, PLACEHOLDERS, retrain=True)["checkpoint_path"]
    from fer_utils.train import load_config

    assert Path(run).parent == Path(load_config("configs/train.yaml").out_dir)  # the run that --retrain trains


def test_ferplus_option_reaches_the_notebooks_that_read_votes():
    profile = _profile(notebooks={"04_error_analysis": {"ferplus_path": ""}})
    params = notebook_parameters(
        profile, "04_error_analysis", ["ferplus_path"], PLACEHOLDERS, ferplus="/v/fer2013new.csv"
    )
    assert params["ferplus_path"] == "/v/fer2013new.csv"
    assert "ferplus_path" not in notebook_parameters(profile, "03_train", ["epochs"], PLACEHOLDERS, ferplus="/v.csv")


def test_retrain_needs_a_retrain_section():
    with pytest.raises(ProfileError, match="--retrain needs a 'retrain' section"):
        notebook_parameters(
            _profile(notebooks={"03_train": {"epochs": 2}}), "03_train", ["epochs"], PLACEHOLDERS, retrain=True
        )


def test_test_split_is_public_test_where_the_data_has_no_private_test(tmp_path, caplog):
    from fer_utils.reproduce import _Placeholders

    rows = ["emotion,pixels,Usage"] + [
        f"{i % 7},{' '.join(['128'] * 2304)},{u}" for i, u in enumerate(["Training"] * 7 + ["PublicTest"] * 7)
    ]
    (tmp_path / "dev.csv").write_text("\n".join(rows) + "\n")
    assert _Placeholders(tmp_path, "full", str(tmp_path / "dev.csv"))["test_split"] == "PublicTest"
    assert "no PrivateTest rows" in caplog.text


# --------------------------------------------------------------------------- fast: banners (fer_utils.report)


def _data(**kw):  # the FERData attributes the banners read
    from types import SimpleNamespace

    base = dict(
        source=Path("/d/fer2013.csv"),
        content_md5="abc",
        is_canonical=True,
        is_synthetic=False,
        splits=("Training", "PublicTest", "PrivateTest"),
    )
    base.update(kw)
    return SimpleNamespace(**base)


def test_provenance_names_synthetic_data():
    from fer_utils.report import data_provenance

    assert data_provenance(_data(is_synthetic=True, is_canonical=False)) == SYNTHETIC_BANNER


def test_provenance_names_the_fer2013_file_its_md5_and_whether_it_is_canonical():
    from fer_utils.report import data_provenance

    assert data_provenance(_data()) == "Ran on FER2013 file fer2013.csv (MD5 abc, canonical original: yes)"
    assert data_provenance(_data(is_canonical=False)).endswith("canonical original: no)")


def test_init_banner_warns_when_pretrained_weights_were_not_used():
    from fer_utils.report import init_banner

    assert "WARNING" in init_banner("random (pretrained weights unavailable: OSError: offline)", True)
    assert "WARNING" not in init_banner("imagenet (hub)", True)
    assert "WARNING" not in init_banner("random", False)


def test_checkpoint_banner_warns_about_model_selection_split_of_the_same_file():
    from fer_utils.report import checkpoint_banner

    meta = {"data": {"content_md5": "abc", "train_split": "Training", "val_split": "PublicTest"}}
    assert "PublicTest was used" in checkpoint_banner(meta, data=_data(), split="PublicTest")
    assert "was used" not in checkpoint_banner(meta, data=_data(), split="PrivateTest")
    other = checkpoint_banner(meta, data=_data(content_md5="def"), split="PublicTest")
    assert "different file" in other and "was used" not in other


# --------------------------------------------------------------------------- fast: source notebooks


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_source_notebook_is_stripped_with_one_parameters_cell(name):
    nb = nbformat.read(paths.NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_parameter_is_a_typed_commented_literal_papermill_can_read(name):
    # papermill skips a line with a second "=" (e.g. in its comment) silently, so count assignments ourselves.
    nb = nbformat.read(paths.NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    import papermill

    inferred = papermill.inspect_notebook(str(paths.NOTEBOOKS_DIR / f"{name}.ipynb"))
    assert len(inferred) == len(lines)
    for p in inferred.values():
        assert p["inferred_type_name"] in ("str", "int", "float", "bool") and p["help"], p


# --------------------------------------------------------------------------- end to end (about 1-2 minutes)


def _clean_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != paths.DATA_ENV_VAR}
    env[paths.CACHE_ENV_VAR] = str(cache)
    return env


DATA_NOTEBOOKS = [n for n in NOTEBOOKS if n != "05_webcam"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """Run the smoke profile once for every test below."""
    out = tmp_path_factory.mktemp("smoke_report")
    proc = subprocess.run(
        [sys.executable, "-m", "fer_utils.reproduce", "--profile", "smoke", "--out", str(out)],
        cwd=paths.REPO_ROOT,
        env=_clean_env(tmp_path_factory.mktemp("smoke_cache")),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return out, proc


def test_smoke_run_succeeds(smoke_run):
    _, proc = smoke_run
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_smoke_run_writes_every_executed_notebook_and_its_html(smoke_run):
    out, _ = smoke_run
    for name in NOTEBOOKS:
        assert (out / f"{name}.ipynb").is_file()
        assert (out / f"{name}.html").stat().st_size > 0
    assert not list(out.glob(".*.ipynb")), "temporary notebooks are left behind"


@pytest.mark.parametrize("name", DATA_NOTEBOOKS)
def test_executed_notebook_first_cell_says_it_ran_on_synthetic_data(smoke_run, name):
    out, _ = smoke_run
    nb = nbformat.read(out / f"{name}.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "markdown"
    assert SYNTHETIC_BANNER in nb.cells[0].source


def test_webcam_report_says_it_ran_on_the_sample_clip_and_found_faces(smoke_run):
    out, _ = smoke_run
    nb = nbformat.read(out / "05_webcam.ipynb", as_version=4)
    assert "sample clip" in nb.cells[0].source and "not FER2013" in nb.cells[0].source
    stats = json.loads((out / "realtime_stats.json").read_text())
    assert stats["frames"] > 0 and stats["frames_with_face"] >= 0.8 * stats["frames"]
    assert (out / "realtime_montage.png").stat().st_size > 0
    assert (out / "realtime_frames.csv").stat().st_size > 0


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_cell_errored(smoke_run, name):
    out, _ = smoke_run
    nb = nbformat.read(out / f"{name}.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("fname", ["train_metrics.json", "error_metrics.json"])
def test_smoke_model_beats_the_majority_class(smoke_run, fname):
    out, _ = smoke_run
    metrics = json.loads((out / fname).read_text())
    support = [v["support"] for v in metrics["per_class"].values()]
    majority = max(support) / sum(support)
    assert metrics["accuracy"] > majority + ACCURACY_MARGIN > 1 / len(support)


def test_error_analysis_ran_on_the_held_out_split(smoke_run):
    out, _ = smoke_run
    assert json.loads((out / "error_metrics.json").read_text())["split"] == "PrivateTest"
    assert json.loads((out / "train_metrics.json").read_text())["split"] == "PublicTest"


def test_index_lists_the_outputs_and_key_metrics(smoke_run):
    out, _ = smoke_run
    index = json.loads((out / "index.json").read_text())
    assert [n["name"] for n in index["notebooks"]] == list(NOTEBOOKS)
    assert all(n["status"] == "ok" for n in index["notebooks"])
    assert {"eda_summary.json", "class_weights.json", "train_metrics.json", "error_metrics.json"} <= set(index["files"])
    assert "accuracy" in index["metrics"]["error_metrics.json"]
    assert "04_error_analysis.html" in (out / "index.md").read_text()


def test_failing_notebook_stops_the_run_and_keeps_its_partial_copy(tmp_path):
    profile = tmp_path / "broken.yaml"
    profile.write_text(
        "# a profile whose checkpoint does not exist\n"
        "common:\n  data_path: '{synthetic_data}'\n"
        "notebooks:\n  04_error_analysis:\n    checkpoint_path: '{report_dir}/missing.pt'\n"
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "fer_utils.reproduce", "--profile", str(profile), "--out", str(out), "--only", "04"],
        cwd=paths.REPO_ROOT,
        env=_clean_env(tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1
    assert "04_error_analysis" in proc.stderr and "missing.pt" in proc.stderr
    nb = nbformat.read(out / "04_error_analysis.ipynb", as_version=4)
    assert any(o.output_type == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert (out / "04_error_analysis.html").is_file()
