"""Entry script of the PyInstaller bundle (``build.spec``): start Tune Studio.

``desktop.app.main`` parses the command line (``--self-test``, ``--screenshot DIR``)
and runs the GUI.  ``freeze_support`` lets a frozen executable act as a
multiprocessing child.  ``--child`` makes the app a job child of ``backend.jobs``
(training, export, the index store probe, the model host of the Chat and
Evaluate pages; from source it is ``python -m backend.child``): no Qt is loaded then.
"""

import multiprocessing
import sys


def _main() -> int:
    multiprocessing.freeze_support()
    if sys.argv[1:2] == ["--child"]:  # backend.jobs.CHILD_FLAG
        from backend.child import main as child_main

        return child_main()
    from desktop.app import main

    return main() or 0


if __name__ == "__main__":
    sys.exit(_main())
