"""``python -m fer_utils.data FILE`` checks a FER2013 download; ``python -m fer_utils.data synthetic [PATH]``
writes the synthetic data set."""

import sys

from fer_utils.data import loading, synthetic

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(synthetic.main(args[1:]) if args[:1] == ["synthetic"] else loading.main(args))
