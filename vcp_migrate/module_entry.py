"""A Python migration's module in ``sys.modules`` while its top-level code runs, and only then.

Code that looks its own module up by ``__name__`` needs the entry: ``@dataclass`` does for every
field whose annotation is a string (all of them under ``from __future__ import annotations``), and
without it failed with "'NoneType' object has no attribute '__dict__'". The entry is taken out
again when the code returns, so loading leaves nothing behind in the process that called it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType


@contextmanager
def registered(module: ModuleType, name: str) -> Iterator[None]:
    """``module`` in ``sys.modules`` as ``name`` (its ``__name__``), or as ``name_2``, ``name_3``...
    when that is taken (the same migration loaded in another thread, a module of that name)."""
    taken, count = name, 1
    # setdefault is one step under the GIL: two threads never both believe they took one name
    while sys.modules.setdefault(taken, module) is not module:
        count += 1
        taken = f"{name}_{count}"
    module.__name__ = taken
    try:
        yield
    finally:
        if sys.modules.get(taken) is module:  # replaced by the code itself: that entry is its own
            del sys.modules[taken]
