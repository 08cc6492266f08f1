"""``python -m ezctl``."""

import sys

from ezctl.cli import main

sys.exit(main())
