"""The robustness suite imports its battery (``battery.py``) and the thread-test scripts by module name.

Appended, not prepended: ``tests/`` must stay first so ``from conftest import ...`` elsewhere finds
the top-level conftest, not this one.
"""

import sys
from pathlib import Path

HERE = Path(__file__).parent
for path in (HERE, HERE.parent / "rag"):
    if str(path) not in sys.path:
        sys.path.append(str(path))
