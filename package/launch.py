"""Entry script of the PyInstaller bundle (``build.spec``): start Tune Studio.

``desktop.app.main`` parses the command line (``--self-test``, ``--screenshot DIR``)
and runs the GUI.  ``freeze_support`` lets a frozen executable act as a
multiprocessing child.  ``--train-child`` makes the app the training child
process that the Train page supervises (``desktop.train_process``; from source
it is ``python -m backend.child``): no Qt is loaded then.
"""

import multiprocessing
import sys


def _main() -> int:
    multiprocessing.freeze_support()
    if sys.argv[1:2] == ["--train-child"]:  # desktop.train_process.CHILD_FLAG
        from backend.child import main as child_main

        return child_main()
    if sys.argv[1:2] == ["--store-probe"]:  # backend.rag.storecheck.PROBE_FLAG: open a Chroma store, no Qt
        from backend.rag.storecheck import _probe_main

        return _probe_main(sys.argv[2])
    from desktop.app import main

    return main() or 0


if __name__ == "__main__":
    sys.exit(_main())
