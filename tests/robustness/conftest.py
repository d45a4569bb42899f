"""The robustness suite imports its battery (``battery.py``) and the thread-test scripts by module name."""

import sys
from pathlib import Path

HERE = Path(__file__).parent
for path in (HERE, HERE.parent / "rag"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
