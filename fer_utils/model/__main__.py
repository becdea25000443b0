"""``python -m fer_utils.model {describe,export,average}``: inspect, release or average checkpoints."""

import sys

from fer_utils.model.cli import main

if __name__ == "__main__":
    sys.exit(main())
