"""``python -m fastmlp`` runs the same command-line interface as ``fastmlp``."""

import sys

from fastmlp.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
