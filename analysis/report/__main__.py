"""``python -m analysis.report``: see :mod:`analysis.report.cli`."""

import sys

from analysis.report.cli import main

sys.exit(main())
