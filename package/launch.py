"""Entry script of the PyInstaller bundle (``build.spec``): start Tune Studio.

``desktop.app.main`` parses the command line (``--self-test``, ``--screenshot DIR``)
and runs the GUI.  ``freeze_support`` lets a frozen executable act as a
multiprocessing child (a training job hosted in a child process).
"""

import multiprocessing
import sys


def _main() -> int:
    multiprocessing.freeze_support()
    from desktop.app import main

    return main() or 0


if __name__ == "__main__":
    sys.exit(_main())
