"""``python -m fer_utils.train``: train, or resume, a run (``--help`` lists the recipe's fields);
``python -m fer_utils.train crossfit``: out-of-sample probabilities for every Training face, one run per fold."""

import sys

from fer_utils.train.engine import main
from fer_utils.train.folds import main as crossfit_main

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(crossfit_main(args[1:]) if args[:1] == ["crossfit"] else main(args))
