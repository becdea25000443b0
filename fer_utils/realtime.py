"""``python -m fer_utils.realtime``: the live pipeline's command line (:func:`fer_utils.live.runner.main`).

Kept as the documented entry point; the code is in :mod:`fer_utils.live`.
"""

import sys

from fer_utils.live.runner import main

if __name__ == "__main__":
    sys.exit(main())
