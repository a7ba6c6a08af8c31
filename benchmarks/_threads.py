"""``--blas-threads N``: set the BLAS thread variables before numpy is imported.

Import this module first in a benchmark script (OpenBLAS reads the variables when it loads).
"""

from __future__ import annotations

import os
import sys


def blas_threads_from_argv(argv: list[str]) -> None:
    """Set OPENBLAS/OMP/MKL thread counts from ``--blas-threads N`` in ``argv``."""
    if "--blas-threads" in argv:
        n = argv[argv.index("--blas-threads") + 1]
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = n


blas_threads_from_argv(sys.argv)
