"""Same as ``python -m benchmarks``, for those who run files: ``python benchmarks/run.py``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.__main__ import main

main()
