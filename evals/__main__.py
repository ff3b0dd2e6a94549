"""`python -m evals`: the eval command (evals.cli)."""

import sys

from evals.cli import main

sys.exit(main())
