# Jupyter Server settings for this repository: `make lab` starts JupyterLab with this folder on
# JUPYTER_CONFIG_PATH. To use them with a `jupyter lab` you start yourself (its Python must be able to
# import fer_utils, e.g. the project's environment):
#     JUPYTER_CONFIG_PATH=/path/to/this/folder jupyter lab
# They keep the webcam widget of notebook 05 fast: fer_utils/live/lab_server.py says what they change, why, and
# what they cost; README's "Measured so far" table what they measured.
import sys

try:
    from fer_utils.live.lab_server import configure
except ModuleNotFoundError as err:
    if err.name != "fer_utils":
        raise
    print(
        f"{__file__}: fer_utils is not importable by this Jupyter's Python ({sys.executable}); "
        "starting without the repository's server settings",
        file=sys.stderr,
    )
else:
    configure(c)  # noqa: F821 (c is the config object Jupyter passes to this file)
