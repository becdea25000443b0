# Jupyter Server settings for this repository: `make lab` starts JupyterLab with this folder on
# JUPYTER_CONFIG_PATH. To use them with a `jupyter lab` you start yourself:
#     JUPYTER_CONFIG_PATH=/path/to/this/folder jupyter lab
# They keep the webcam widget of notebook 05 fast: fer_utils/lab_server.py says what they change and why,
# README's "Live demo" section what they measured.
try:
    from fer_utils.lab_server import configure
except ImportError:  # a Jupyter installed outside the project's environment: run without them
    pass
else:
    configure(c)  # noqa: F821 (c is the config object Jupyter passes to this file)
