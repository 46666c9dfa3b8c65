"""`python -m genlab` is the `genlab` command."""

import sys

from genlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
