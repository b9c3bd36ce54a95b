"""`python -m experiments.load ...`: see experiments.load.cli."""

import sys

from experiments.load.cli import main

if __name__ == "__main__":  # spawned workers import this module too; only the CLI runs it
    sys.exit(main())
