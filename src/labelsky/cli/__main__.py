"""``python -m labelsky.cli``: the same as the ``labelsky`` command."""

import sys

from labelsky.cli import main

if __name__ == "__main__":
    sys.exit(main())
