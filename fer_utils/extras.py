"""The optional dependency groups (extras) of ``pyproject.toml``, and the error that names one when it is missing."""

EXTRAS: dict[str, str] = {
    "notebooks": "JupyterLab, ipywidgets, anywidget, papermill, nbconvert, nbstripout",
    "live": "ONNX Runtime and the face detectors' packages",
}
"""Optional dependency groups of ``pyproject.toml`` beyond the core install, and what each brings."""


def require_extra(extra: str, *modules: str) -> None:
    """Raise, naming the extra that installs them, when any of ``modules`` is not installed.

    Only looks the modules up (nothing is imported), so a module can call it at import time and
    still import its heavy dependencies lazily::

        require_extra("notebooks", "anywidget", "ipywidgets")

    Raises:
        ImportError: naming the first missing module and the ``pip install`` that brings it.
    """
    import importlib.util

    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ValueError:  # None in sys.modules: the import is blocked
            found = False
        if not found:
            raise ImportError(
                f"{module} is not installed; it comes with fer_utils's '{extra}' extra ({EXTRAS[extra]}): "
                f"pip install -e '.[{extra}]' (make setup installs every extra)",
                name=module,
            )
