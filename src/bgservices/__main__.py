"""``python -m bgservices``: the same as the ``bgservices`` command."""

import sys

from .cli import main

sys.exit(main())
