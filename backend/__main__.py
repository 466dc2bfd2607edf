"""``python -m backend`` is the ``tune`` command."""

import sys

from backend.cli import main

sys.exit(main())
