"""``python -m desktop``: start Tune Studio."""

import sys

from desktop.app import main

if __name__ == "__main__":
    sys.exit(main())
