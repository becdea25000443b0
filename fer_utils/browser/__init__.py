"""The error browser of notebook 04: :class:`MisclassificationBrowser`.

===============  ======================================================================
module           job
===============  ======================================================================
``selection``    the browser's table logic: filters, sort orders, pages, jumps, export
``widgets``      the front end (anywidgets; JavaScript and CSS in ``static/``)
``view``         the controls wired to the browser's state; the status line
``app``          :class:`MisclassificationBrowser`: predictions once, then the widget
===============  ======================================================================

Needs the ``notebooks`` extra (ipywidgets, anywidget) when a widget is built.
"""

from fer_utils.extras import require_extra

require_extra("notebooks", "ipywidgets", "anywidget", "traitlets")

from fer_utils.browser.app import MisclassificationBrowser  # noqa: E402
from fer_utils.browser.selection import FaceNotFound, Selection, export_selection, select  # noqa: E402

__all__ = ["FaceNotFound", "MisclassificationBrowser", "Selection", "export_selection", "select"]
