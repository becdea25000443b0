"""``python -m fer_utils.evaluate``: score a checkpoint on one split and print the metrics as JSON."""

import sys

from fer_utils.evaluate.predictions import main

if __name__ == "__main__":
    sys.exit(main())
