"""Large temporaries without transparent-huge-page stalls (issue 22.4).

numpy asks Linux for transparent huge pages on every array of 4 MiB or more
(``madvise(MADV_HUGEPAGE)``; see numpy's ``NUMPY_MADVISE_HUGEPAGE``). Where the kernel's
``/sys/kernel/mm/transparent_hugepage/defrag`` is ``madvise`` (the Debian and Ubuntu default),
a page fault in such an array compacts memory synchronously when no free 2 MiB page is at hand.
A 1,000,000-subject MMRM allocates about 1 GiB of short-lived temporaries per fit, so repeated
fits stalled in the kernel: on this machine 1.1-3.3 s wall per fit with 0.06-0.91 s of system
time, against 0.80-0.85 s and 0.15 s with the advice off (benchmarks/README.md, "1,000,000 x 4").
The advice is switched off only while a model is prepared and fitted and restored afterwards,
so the user's own arrays keep numpy's default. The results are bit-identical either way: the
advice changes where pages come from, not any value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["steady_pages"]


def _toggle():
    try:
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy < 2
        return None
    return getattr(multiarray, "_set_madvise_hugepage", None)


@contextlib.contextmanager
def steady_pages() -> Iterator[None]:
    """Within the block numpy does not advise huge pages; the previous setting is restored.

    A no-op where numpy offers no switch (other platforms or versions).
    """
    toggle = _toggle()
    if toggle is None:  # pragma: no cover - depends on the numpy build
        yield
        return
    before = toggle(False)
    try:
        yield
    finally:
        toggle(before)
