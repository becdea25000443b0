"""Run the analysis notebooks 01-05 with papermill and collect the reports.

::

    python -m fer_utils.reproduce --profile synthetic            # make reproduce without FER2013
    python -m fer_utils.reproduce --profile full --data data/fer2013.csv
    python -m fer_utils.reproduce --profile smoke --out /tmp/smoke --only 03,04

A *profile* is ``configs/<name>.yaml``::

    # what the profile is for (first line)
    requires_fer2013: false        # optional; true refuses to run on the synthetic set
    common:                        # injected into every notebook that declares the parameter
      data_path: "{synthetic_data}"
    notebooks:                     # per-notebook parameters (must be declared by that notebook)
      03_train:
        out_dir: "{report_dir}/run"
        epochs: 2
    retrain:                       # optional; with --retrain, per-notebook parameters on top of `notebooks`
      03_train:
        retrain: true

String values may contain the placeholders ``{report_dir}`` (the output folder,
absolute), ``{profile}`` (the profile name), ``{synthetic_data}`` (the default
synthetic data set, generated on first use) and ``{test_split}`` (PrivateTest, or
PublicTest with a warning when the data has no PrivateTest rows). ``--data`` overrides ``data_path``,
and ``report_dir`` is always the output folder. Parameters are passed only to
notebooks that declare them (``papermill.inspect_notebook``); a per-notebook
parameter the notebook does not declare is an error (a typo would otherwise be
ignored silently).

Outputs, in ``reports/<profile>/`` or ``--out``: each executed notebook
(``NN_name.ipynb``, its first cell saying which data it ran on) and its HTML,
the figures and metrics JSON the notebooks write through ``report_dir``, and
``index.md`` / ``index.json`` listing them with the key metrics. Files are
written atomically. A failing notebook stops the run: its partially executed
copy and HTML are kept (the error is in them) and the exit status is 1; a bad
profile, argument or data file gives exit status 2 before any notebook runs.

The notebooks run in the ``python3`` Jupyter kernel with the repository root as
working directory; a kernel spec whose command is ``python`` runs the Python
that runs this module (jupyter_client substitutes ``sys.executable``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import string
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fer_utils import paths
from fer_utils.extras import require_extra
from fer_utils.files import atomic_write, atomic_write_json, atomic_write_text

require_extra("notebooks", "papermill", "nbformat", "nbconvert", "ipykernel")

logger = logging.getLogger(__name__)

NOTEBOOKS: tuple[str, ...] = ("01_eda", "02_class_weights", "03_train", "04_error_analysis", "05_webcam")
"""The notebooks in execution order (``notebooks/<name>.ipynb``)."""

KERNEL_NAME = "python3"

PLACEHOLDERS: tuple[str, ...] = ("report_dir", "profile", "synthetic_data", "test_split")
"""Names allowed in ``{...}`` inside profile string values."""

_TOP_LEVEL_KEYS = ("common", "notebooks", "retrain", "requires_fer2013")

METRIC_FILES: dict[str, tuple[str, ...]] = {
    # file written by a notebook -> keys worth showing in the index
    "eda_summary.json": ("n_uniform",),
    "class_weights.json": ("scheme",),
    "train_metrics.json": ("split", "tta", "accuracy", "macro_f1", "n"),
    "error_metrics.json": ("split", "tta", "accuracy", "macro_f1", "n"),
    "realtime_stats.json": ("frames", "frames_with_face", "face_rate", "fps"),
}


class ProfileError(ValueError):
    """A profile YAML is missing or malformed; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class Profile:
    """A parsed ``configs/<name>.yaml``.

    Attributes:
        name: Profile name (the file's stem).
        path: The YAML file.
        common: Parameters for every notebook that declares them.
        notebooks: Per-notebook parameters, keyed by notebook name (e.g. ``"03_train"``).
        requires_fer2013: Refuse to run on the synthetic data set.
        retrain: Per-notebook parameters applied on top of ``notebooks`` with ``--retrain``.
    """

    name: str
    path: Path
    common: dict[str, Any]
    notebooks: dict[str, dict[str, Any]]
    requires_fer2013: bool = False
    retrain: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class NotebookRun:
    """The outcome of one notebook."""

    name: str
    status: str  # "ok" or "failed"
    seconds: float
    ipynb: Path
    html: Path
    parameters: dict[str, Any]
    banner: str
    error: str | None = None


# --------------------------------------------------------------------------- profiles


def profile_path(profile: str) -> Path:
    """``configs/<profile>.yaml``, or ``profile`` itself when it is a path to a YAML file."""
    if profile.endswith((".yaml", ".yml")) or os.sep in profile:
        return Path(profile).expanduser().resolve()
    return paths.CONFIGS_DIR / f"{profile}.yaml"


def load_profile(profile: str) -> Profile:
    """Read and validate a profile.

    Raises:
        ProfileError: missing file, invalid YAML, unknown keys or notebook names.
    """
    import yaml

    path = profile_path(profile)
    if not path.is_file():
        known = sorted(p.stem for p in paths.CONFIGS_DIR.glob("*.yaml"))
        raise ProfileError(f"{path}: profile not found (profiles in {paths.CONFIGS_DIR}: {known})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ProfileError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_TOP_LEVEL_KEYS))
    if unknown:
        raise ProfileError(f"{path}: unknown top-level keys {unknown}; expected {list(_TOP_LEVEL_KEYS)}")
    common = raw.get("common") or {}
    if not isinstance(common, dict):
        raise ProfileError(f"{path}: key 'common' must be a mapping of parameters")
    sections = {key: raw.get(key) or {} for key in ("notebooks", "retrain")}
    for key, section in sections.items():
        if not isinstance(section, dict):
            raise ProfileError(f"{path}: key '{key}' must map notebook names to parameters")
        for name, params in section.items():
            if name not in NOTEBOOKS:
                raise ProfileError(f"{path}: key '{key}.{name}': unknown notebook; expected one of {list(NOTEBOOKS)}")
            if params is not None and not isinstance(params, dict):
                raise ProfileError(f"{path}: key '{key}.{name}' must be a mapping of parameters")
    requires = raw.get("requires_fer2013", False)
    if not isinstance(requires, bool):
        raise ProfileError(f"{path}: key 'requires_fer2013' must be true or false")
    return Profile(
        name=path.stem,
        path=path,
        common=dict(common),
        notebooks={k: dict(v or {}) for k, v in sections["notebooks"].items()},
        requires_fer2013=requires,
        retrain={k: dict(v or {}) for k, v in sections["retrain"].items()},
    )


class _Placeholders(Mapping[str, str]):
    """Placeholder values, computed on first use (``synthetic_data`` may generate the data set).

    ``data_path`` is the data the notebooks read (``--data`` or the profile's), which
    ``test_split`` inspects.
    """

    def __init__(self, report_dir: Path, profile: str, data_path: str = "") -> None:
        self._values: dict[str, str] = {"report_dir": str(report_dir), "profile": profile}
        self._data_path = data_path

    def __getitem__(self, key: str) -> str:
        if key == "synthetic_data" and key not in self._values:
            from fer_utils.data.synthetic import ensure_default_dataset

            self._values[key] = str(ensure_default_dataset())
        if key == "test_split" and key not in self._values:
            from fer_utils.data import load_dataset

            data_path = expand_placeholders(self._data_path, self, where="data_path")
            splits = load_dataset(data_path or None).splits
            self._values[key] = "PrivateTest" if "PrivateTest" in splits else "PublicTest"
            if self._values[key] != "PrivateTest":
                logger.warning(
                    "the data has no PrivateTest rows: {test_split} is PublicTest, the split that chose the "
                    "model, so its numbers are optimistic (the reports say so)"
                )
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(PLACEHOLDERS)

    def __len__(self) -> int:
        return len(PLACEHOLDERS)


def expand_placeholders(value: Any, values: Mapping[str, str], *, where: str = "") -> Any:
    """Replace ``{report_dir}``, ``{profile}`` and ``{synthetic_data}`` in string values.

    Args:
        value: A parameter value; only strings are changed (lists and mappings recursively).
        values: Placeholder name -> replacement (looked up only when used).
        where: Where the value comes from, for error messages.

    Raises:
        ProfileError: an unknown placeholder or a malformed brace.
    """
    if isinstance(value, str):
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as err:
            raise ProfileError(f"{where}: malformed placeholder in {value!r} ({err})") from err
        bad = [f for f in fields if f not in PLACEHOLDERS]
        if bad:
            raise ProfileError(f"{where}: unknown placeholder {{{bad[0]}}} in {value!r}; allowed: {list(PLACEHOLDERS)}")
        return value.format_map(values) if fields else value
    if isinstance(value, list):
        return [expand_placeholders(v, values, where=where) for v in value]
    if isinstance(value, dict):
        return {k: expand_placeholders(v, values, where=f"{where}.{k}") for k, v in value.items()}
    return value


def notebook_parameters(
    profile: Profile,
    notebook: str,
    declared: Sequence[str],
    placeholders: Mapping[str, str],
    *,
    data: str | None = None,
    retrain: bool = False,
    ferplus: str | None = None,
) -> dict[str, Any]:
    """The parameters to inject into one notebook.

    Order of precedence (last wins): ``common`` (only the parameters the notebook
    declares), the notebook's own section, its ``retrain`` section when ``retrain``,
    ``--data`` (as ``data_path``), ``--ferplus`` (as ``ferplus_path``), and ``report_dir``
    (always the output folder).

    Args:
        profile: The parsed profile.
        notebook: Notebook name, e.g. ``"03_train"``.
        declared: Parameter names the notebook declares in its ``parameters`` cell.
        placeholders: Values for ``{report_dir}``, ``{profile}``, ``{synthetic_data}``.
        data: ``--data`` override, or ``None``.
        retrain: Apply the profile's ``retrain`` section.
        ferplus: ``--ferplus`` override (the FER+ votes file), or ``None``.

    Raises:
        ProfileError: the notebook's section sets a parameter the notebook does not declare, or
            ``retrain`` is asked of a profile without a ``retrain`` section.
    """
    if retrain and not profile.retrain:
        raise ProfileError(f"{profile.path}: --retrain needs a 'retrain' section; profile '{profile.name}' has none")
    declared_set = set(declared)
    own = {**profile.notebooks.get(notebook, {}), **(profile.retrain.get(notebook, {}) if retrain else {})}
    undeclared = sorted(set(own) - declared_set)
    if undeclared:
        raise ProfileError(
            f"{profile.path}: key 'notebooks.{notebook}': notebooks/{notebook}.ipynb declares no parameter(s) "
            f"{undeclared}; it declares {sorted(declared_set)}"
        )
    params: dict[str, Any] = {k: v for k, v in profile.common.items() if k in declared_set}
    params.update(own)
    params = {
        k: expand_placeholders(v, placeholders, where=f"{profile.path}: {notebook}.{k}") for k, v in params.items()
    }
    if data is not None and "data_path" in declared_set:
        params["data_path"] = data
    if ferplus is not None and "ferplus_path" in declared_set:
        params["ferplus_path"] = ferplus
    if "report_dir" in declared_set:
        params["report_dir"] = placeholders["report_dir"]
    return params


def declared_parameters(notebook_path: Path) -> list[str]:
    """Names declared in a notebook's ``parameters`` cell."""
    import papermill

    return list(papermill.inspect_notebook(str(notebook_path)))


def select_notebooks(only: str | None) -> list[str]:
    """Notebook names picked by ``--only`` (comma-separated numbers or names); all when ``None``.

    Raises:
        ValueError: a token that matches no notebook.
    """
    if not only:
        return list(NOTEBOOKS)
    picked = set()
    for token in (t.strip() for t in only.split(",") if t.strip()):
        match = [n for n in NOTEBOOKS if n == token or n.split("_", 1)[0] == token.zfill(2)]
        if not match:
            raise ValueError(f"--only: {token!r} matches no notebook; choose from {list(NOTEBOOKS)}")
        picked.update(match)
    return [n for n in NOTEBOOKS if n in picked]


# --------------------------------------------------------------------------- running


def _banner_for(data_path: str, cache: dict[str, tuple[str, Any]]) -> tuple[str, Any]:
    """(banner text, FERData) for a notebook's ``data_path``; the parsed data is cached on disk by fer_utils.data."""
    if data_path not in cache:
        from fer_utils.data import load_dataset
        from fer_utils.report import data_provenance

        data = load_dataset(data_path or None)
        cache[data_path] = (data_provenance(data), data)
    return cache[data_path]


def _video_banner(params: Mapping[str, Any]) -> str:
    """Banner for a notebook that runs on video input rather than on the data set."""
    source = params.get("SOURCE", "?")
    what = (
        "the generated sample clip (a public-domain face, not FER2013)"
        if source == "sample"
        else f"video input `{source}`"
    )
    return f"Ran on {what} with checkpoint `{params.get('checkpoint_path', '?')}`."


def _html(nb: Any) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    return body


def run_notebook(
    name: str,
    out_dir: Path,
    params: dict[str, Any],
    banner: str,
    *,
    log_output: bool = False,
    progress_bar: bool = False,
) -> NotebookRun:
    """Execute ``notebooks/<name>.ipynb`` into ``out_dir`` (notebook + HTML), never leaving half-written files.

    The executed copy gets a first Markdown cell stating which data it ran on.
    A failure inside the notebook is returned as ``status="failed"``, with the
    partially executed notebook and its HTML kept; other errors propagate.
    """
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    src = paths.NOTEBOOKS_DIR / f"{name}.ipynb"
    final_nb, final_html = out_dir / f"{name}.ipynb", out_dir / f"{name}.html"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".ipynb", dir=out_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    error: str | None = None
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(src),
            str(tmp),
            parameters=params,
            kernel_name=KERNEL_NAME,
            cwd=str(paths.REPO_ROOT),
            progress_bar=progress_bar,
            log_output=log_output,
        )
    except PapermillExecutionError as err:
        error = f"{err.ename}: {err.evalue} (cell {err.exec_count})"
    except (DeadKernelError, CellTimeoutError) as err:
        error = f"{type(err).__name__}: {err}"
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - t0
    try:
        nb = nbformat.read(tmp, as_version=4)
    finally:
        tmp.unlink(missing_ok=True)
    cell = nbformat.v4.new_markdown_cell(f"**{banner}**", metadata={"tags": ["data-banner"]})
    nb.cells.insert(0, cell)
    atomic_write(final_nb, lambda p: nbformat.write(nb, str(p)))
    atomic_write_text(final_html, _html(nb))
    return NotebookRun(name, "failed" if error else "ok", seconds, final_nb, final_html, params, banner, error)


# --------------------------------------------------------------------------- index


def key_metrics(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Selected values from the metrics JSON files present in ``out_dir`` (see :data:`METRIC_FILES`)."""
    found: dict[str, dict[str, Any]] = {}
    for fname, keys in METRIC_FILES.items():
        p = out_dir / fname
        if not p.is_file():
            continue
        record = json.loads(p.read_text(encoding="utf-8"))
        picked = {k: record[k] for k in keys if k in record}
        if fname == "eda_summary.json" and isinstance(record.get("duplicates"), dict):
            picked["duplicate_groups"] = record["duplicates"].get("n_groups")
        if fname == "train_metrics.json" and isinstance(record.get("train"), dict):
            picked.update({k: record["train"].get(k) for k in ("best_epoch", "best_value", "init")})
        found[fname] = picked
    return found


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else f"{v}"


def write_index(out_dir: Path, profile: Profile, runs: list[NotebookRun], argv: Sequence[str]) -> tuple[Path, Path]:
    """Write ``index.json`` and ``index.md``: what ran, on which data, the outputs and key metrics."""
    metrics = key_metrics(out_dir)
    files = sorted(
        str(p.relative_to(out_dir))
        for p in out_dir.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix not in (".pt",)
        and p.name not in ("index.md", "index.json")
    )
    record = {
        "profile": profile.name,
        "config": str(profile.path),
        "command": "python -m fer_utils.reproduce " + " ".join(argv),
        "finished": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "notebooks": [
            {
                "name": r.name,
                "status": r.status,
                "seconds": round(r.seconds, 1),
                "data": r.banner,
                "error": r.error,
                "ipynb": r.ipynb.name,
                "html": r.html.name,
                "parameters": r.parameters,
            }
            for r in runs
        ],
        "metrics": metrics,
        "files": files,
    }
    json_path = atomic_write_json(out_dir / "index.json", record)
    lines = [
        f"# Reproduction report: profile `{profile.name}`",
        "",
        f"Generated {record['finished']} by `{record['command']}` from `{profile.path.name}`.",
        "",
        "| notebook | status | seconds | data | report |",
        "|---|---|---:|---|---|",
    ]
    for r in runs:
        status = r.status if not r.error else f"FAILED: {r.error}".replace("|", "\\|")
        lines.append(f"| {r.name} | {status} | {r.seconds:.1f} | {r.banner} | [{r.html.name}]({r.html.name}) |")
    if metrics:
        lines += ["", "## Key metrics", "", "| file | metric | value |", "|---|---|---|"]
        for fname, picked in metrics.items():
            lines += [f"| {fname} | {k} | {_fmt(v)} |" for k, v in picked.items()]
    lines += ["", "## Files", ""] + [f"- [{f}]({f})" for f in files] + [""]
    md_path = atomic_write_text(out_dir / "index.md", "\n".join(lines))
    return md_path, json_path


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m fer_utils.reproduce",
        description="Run notebooks 01-05 with papermill using configs/<profile>.yaml; "
        "executed notebooks, HTML, figures and metrics go to reports/<profile>/.",
    )
    ap.add_argument("--profile", required=True, help="profile name (configs/NAME.yaml) or a YAML path")
    ap.add_argument(
        "--data",
        help="FER2013 CSV/CSV.gz/folder, overrides the profile's data_path "
        "(relative to the current directory if it exists there, else to the repository root)",
    )
    ap.add_argument(
        "--ferplus",
        help="FER+ votes file (fer2013new.csv) for the same data: adds the label-noise "
        "sections of notebooks 01 and 04 (overrides the profile's ferplus_path)",
    )
    ap.add_argument("--out", help="output folder (default: reports/<profile>; relative to the current directory)")
    ap.add_argument("--only", help="comma-separated notebooks to run, e.g. 01,02 or 03_train (default: all)")
    ap.add_argument(
        "--retrain",
        action="store_true",
        help="apply the profile's retrain section "
        "(full: train the shipped recipe from scratch, resumably, and analyse that run)",
    )
    ap.add_argument("--log-output", action="store_true", help="stream the notebooks' outputs to the log")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0 (all notebooks ran), 1 (a notebook failed) or 2 (bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.log_output:
        logging.getLogger("papermill").setLevel(logging.WARNING)  # one line per notebook is ours
    logging.getLogger("traitlets").setLevel(logging.ERROR)  # nbconvert's "alternative text is missing"
    from fer_utils.data import FERDataError

    try:
        profile = load_profile(args.profile)
        selected = select_notebooks(args.only)
        out_dir = Path(args.out).expanduser().resolve() if args.out else paths.REPORTS_DIR / profile.name
        data = str(paths.resolve_cli(args.data)) if args.data else None
        placeholders = _Placeholders(
            out_dir, profile.name, data if data is not None else profile.common.get("data_path", "")
        )
        plan: list[tuple[str, dict[str, Any], str]] = []
        banners: dict[str, tuple[str, Any]] = {}
        for name in selected:
            params = notebook_parameters(
                profile,
                name,
                declared_parameters(paths.NOTEBOOKS_DIR / f"{name}.ipynb"),
                placeholders,
                data=data,
                retrain=args.retrain,
                ferplus=str(paths.resolve_cli(args.ferplus)) if args.ferplus else None,
            )
            if "data_path" not in params:  # the webcam demo reads video, not the data set
                plan.append((name, params, _video_banner(params)))
                continue
            banner, ferdata = _banner_for(str(params.get("data_path", "")), banners)
            if profile.requires_fer2013 and ferdata.is_synthetic:
                raise ProfileError(
                    f"{profile.path}: profile '{profile.name}' needs FER2013 data but found none "
                    f"(pass --data FILE, set ${paths.DATA_ENV_VAR} or put fer2013.csv in {paths.DATA_DIR})"
                )
            plan.append((name, params, banner))
    except (ProfileError, FERDataError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    out_dir.mkdir(parents=True, exist_ok=True)  # only now: a refused run leaves no empty report folder
    logger.info("profile %s (%s): %d notebook(s) -> %s", profile.name, profile.path, len(plan), out_dir)
    runs: list[NotebookRun] = []
    for i, (name, params, banner) in enumerate(plan, 1):
        logger.info("[%d/%d] %s: running (%s)", i, len(plan), name, banner)
        logger.debug("%s parameters: %s", name, params)
        run = run_notebook(name, out_dir, params, banner, log_output=args.log_output, progress_bar=sys.stderr.isatty())
        runs.append(run)
        if run.error:
            write_index(out_dir, profile, runs, argv)
            print(
                f"error: notebook {name}.ipynb failed after {run.seconds:.0f} s: {run.error}\n"
                f"  partially executed copy: {run.ipynb}\n  HTML: {run.html}",
                file=sys.stderr,
            )
            return 1
        logger.info("[%d/%d] %s: done in %.1f s -> %s", i, len(plan), name, run.seconds, run.html)
    md_path, _ = write_index(out_dir, profile, runs, argv)
    logger.info("all %d notebook(s) ran in %.0f s; index: %s", len(runs), sum(r.seconds for r in runs), md_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
