"""``python -m sd`` is the ``sd`` command."""
import sys

from .cli import main

if __name__ == "__main__":   # the run layer's worker processes may import this module
    sys.exit(main())
