"""The training recipe (fer_utils.train.recipe): defaults, checks on construction, config files and the command line."""

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from fer_utils import paths
from fer_utils.model import ModelConfig
from fer_utils.train import TrainConfig, config_from_args
from fer_utils.train.recipe import RUN_FIELDS

RUN_IN_PROGRESS = Path(__file__).parent / "data" / "effnet_b3_long_train_config.json"
"""``train_config`` of the long run of ``make train`` (models/runs/effnet_b3_long/config.json), started before the
defaults became the recipe: it must keep resuming with the same command."""


def recipe(cfg: TrainConfig) -> dict:
    return {k: v for k, v in asdict(cfg).items() if k not in RUN_FIELDS}


def test_make_train_config_gives_the_recipe_of_the_run_in_progress():
    recorded = json.loads(RUN_IN_PROGRESS.read_text())
    cfg = config_from_args(["--config", "configs/train.yaml"])
    ours = recipe(cfg)
    differs = {k: (recorded[k], ours[k]) for k in ours if k in recorded and recorded[k] != ours[k]}
    assert differs == {}
    assert cfg.out_dir == recorded["out_dir"]  # the same folder, so the same command resumes it


def test_train_yaml_holds_only_what_a_run_changes():
    import yaml

    values = yaml.safe_load((paths.CONFIGS_DIR / "train.yaml").read_text())
    defaults = asdict(TrainConfig())
    assert values and all(values[k] != defaults[k] for k in values if k != "data")


def test_the_network_defaults_are_model_configs():
    cfg = TrainConfig()
    assert cfg.model_config() == ModelConfig(arch=cfg.arch)
    assert ModelConfig().zero_init_last and cfg.zero_init_last


def test_shipped_v1_config_is_the_first_run_of_the_shipped_model():
    cfg = config_from_args(["--config", "configs/shipped_v1.yaml"])
    assert (cfg.epochs, cfg.warmup_epochs, cfg.ema_decay, cfg.lr, cfg.drop_path_rate) == (7, 1.0, 0.0, 0.002, 0.05)


def test_every_profile_says_in_its_first_line_what_it_is_for():
    for path in sorted(paths.CONFIGS_DIR.glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# ") and len(first) > 20, path.name


def test_command_line_paths_resolve_from_the_working_directory_first(tmp_path, monkeypatch):
    (tmp_path / "faces.csv").write_text("emotion,pixels,Usage\n")
    (tmp_path / "run.yaml").write_text("epochs: 3\n")
    monkeypatch.chdir(tmp_path)
    cfg = config_from_args(["--config", "run.yaml", "--data", "faces.csv", "--class_weights", "configs/none.json"])
    assert cfg.epochs == 3
    assert cfg.data == str(tmp_path / "faces.csv")
    assert cfg.class_weights == str(paths.REPO_ROOT / "configs" / "none.json")  # not under the working directory


def test_numeric_strings_from_yaml_become_numbers():
    cfg = TrainConfig(
        lr="1e-3",
        epochs="100",
        batch_size=np.int64(64),
        zero_init_last="true",
        resume=0,
        data=Path("faces.csv"),
        class_weights=None,
    )
    assert cfg.lr == 0.001 and isinstance(cfg.lr, float)
    assert cfg.epochs == 100 and isinstance(cfg.epochs, int) and cfg.batch_size == 64 and type(cfg.batch_size) is int
    assert cfg.zero_init_last is True and cfg.resume is False
    assert cfg.data == "faces.csv" and cfg.class_weights == ""  # an empty YAML value means unset


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", "fast", r"field 'lr' is 'fast', not a float"),
        ("epochs", 2.5, r"field 'epochs' is 2\.5, not a int"),
        ("resume", "maybe", r"field 'resume' is 'maybe', not a bool"),
        ("eval_metric", "acuracy", r"field 'eval_metric' is 'acuracy'; choose one of accuracy, macro_f1, loss"),
        ("arch", "efficientnet_b99", r"field 'arch' is 'efficientnet_b99', which is not a timm model name"),
        ("tta", "five", r"field 'tta' is 'five'; choose one of none, flip, tencrop"),
        ("optimizer", "adam", r"field 'optimizer' is 'adam'; choose one of adamw, sgd"),
        ("stem_stride", 3, r"field 'stem_stride' is 3; choose one of 1, 2"),
        ("resume", 2, r"field 'resume' is 2, not a bool"),
        ("ema_decay", 1.0, r"field 'ema_decay' is 1\.0; it must lie in \[0\.0, 0\.999999\]"),
    ],
)
def test_a_bad_setting_fails_at_construction_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_the_direction_of_better_follows_the_metric_unless_given():
    assert TrainConfig(eval_metric="loss").eval_decreasing is True
    assert TrainConfig(eval_metric="accuracy").eval_decreasing is False
    assert TrainConfig(eval_metric="loss", eval_decreasing=False).eval_decreasing is False


def test_field_comments_are_read_from_the_class_source():
    from fer_utils.train.recipe import field_comments

    comments = field_comments(TrainConfig)
    assert comments["lr"] == "peak learning rate after warm-up"
    assert set(comments) >= {f for f in TrainConfig.__dataclass_fields__}


def test_field_comments_refuse_a_field_without_one_naming_it():
    from dataclasses import dataclass

    from fer_utils.train.recipe import field_comments

    @dataclass
    class Partly:
        said: int = 1  # has a comment
        unsaid: int = 2

    with pytest.raises(ValueError, match="Partly fields without a comment: unsaid"):
        field_comments(Partly)
