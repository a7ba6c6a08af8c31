"""linearmodels without xarray (issue 22): a private helper of :mod:`.cace` and
:mod:`peerstats.economics.cea`.

linearmodels imports xarray when it is installed (``linearmodels.typing.data``, and at call
time in its input checks) only to accept ``xarray.DataArray`` inputs; importing xarray costs
0.2-0.4 s, more than a whole complier-average analysis. peerstats passes pandas objects, so
:func:`hidden_xarray` hides xarray while linearmodels is imported and run: with
``sys.modules["xarray"] = None``, ``import xarray`` raises ImportError, which linearmodels
handles as "xarray is not installed" (its documented optional dependency; the numbers do not
depend on it). Where xarray is already imported nothing changes, and it is importable again
as soon as the block ends. ``sys.modules`` is shared by all threads: another thread importing
xarray for the first time during the block would get ImportError (peerstats' analyses run the
block in one thread; the parallel run forks processes, not threads).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

__all__ = ["hidden_xarray"]


@contextlib.contextmanager
def hidden_xarray() -> Iterator[None]:
    """A block in which ``import xarray`` raises ImportError unless xarray is already
    imported (then the block changes nothing)."""
    if "xarray" in sys.modules:
        yield
        return
    sys.modules["xarray"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if "xarray" in sys.modules and sys.modules["xarray"] is None:
            del sys.modules["xarray"]
