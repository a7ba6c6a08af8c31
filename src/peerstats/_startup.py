"""What the ``peerstats`` console script does to start a run faster (issue 22), kept apart from
:mod:`peerstats.cli`: the collector paused while a run's modules are imported, and scipy.stats
and matplotlib imported without the docstrings they write at import. Nothing here changes a
number, a signature or an output file; only docstrings seen by ``help()`` in the console
script's own process differ. ``tests/test_cli_exit.py`` and ``tests/test_cli_heap.py`` check
it; ``benchmarks/bench_startup.py`` measures it."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

__all__ = ["collector_paused", "import_for_run", "import_scipy_stats_lean", "import_matplotlib_lean"]


@contextlib.contextmanager
def collector_paused():
    """No garbage collection while the modules of a run are imported.

    Importing pandas, scipy.stats, statsmodels and matplotlib allocates a few million
    objects, almost none of them garbage, and with the default thresholds the collector
    runs about 380 times over the growing heap meanwhile (0.1-0.3 s, issue 22). The
    collector is switched off for the imports; what they made is then moved to the permanent
    generation (:func:`gc.freeze`; else the first collection after would scan it all) and the
    collector is put back as it was. ``peerstats.cli._long_lived_heap`` unfreezes it when the run ends.
    No number changes."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    except BaseException:
        if enabled:
            gc.enable()
        raise
    gc.freeze()
    if enabled:
        gc.enable()


class _DocAsIs:
    """Stands in for scipy's ``FunctionDoc`` while :func:`import_scipy_stats_lean` imports
    ``scipy.stats``: the decorators that rewrite docstrings at import (array-API notes, the
    ``axis``/``nan_policy`` parameters) find no sections and leave each docstring as it is."""

    def __init__(self, func: Any, *args: Any, **kwargs: Any) -> None:
        self._doc = getattr(func, "__doc__", None) or ""
        self._sections: dict[str, list] = {}

    def __getitem__(self, key: str) -> list:
        return self._sections.setdefault(key, [])

    def __setitem__(self, key: str, value: list) -> None:
        self._sections[key] = value

    def __str__(self) -> str:
        return "\n" + self._doc  # the callers drop the first line (a signature)


def import_scipy_stats_lean() -> None:
    """Import ``scipy.stats`` (every run needs it before the figures fork: statsmodels' GLM,
    the p-value adjustment) without the docstring rewriting its decorators do at import:
    scipy parses and re-renders about 350 numpydoc docstrings then, about 0.1 s of CPU, 40%
    of the import (issue 22). Only the docstrings differ (seen by ``help()`` in this process);
    no function, signature or number changes. Done only in the console script, only when
    ``scipy.stats`` is not imported yet; any surprise in scipy's internals (other names in
    another version) leaves the ordinary import. scipy's ``FunctionDoc`` is put back
    everywhere afterwards."""
    if "scipy.stats" in sys.modules:
        return
    try:
        from scipy._lib import _array_api, _docscrape, _util
    except ImportError:  # pragma: no cover - another scipy layout
        return
    original = getattr(_docscrape, "FunctionDoc", None)
    holders = [m for m in (_docscrape, _array_api, _util) if getattr(m, "FunctionDoc", None) is original]
    if original is None or len(holders) != 3:  # pragma: no cover - another scipy layout
        return
    try:
        for module in holders:
            module.FunctionDoc = _DocAsIs
        import scipy.stats  # noqa: F401
    except Exception:  # noqa: BLE001 - the ordinary import below says what is wrong
        pass
    finally:
        for module in list(sys.modules.values()):  # also those that imported the name
            if getattr(module, "__dict__", {}).get("FunctionDoc") is _DocAsIs:
                module.FunctionDoc = original
    import scipy.stats  # noqa: F401,F811 - a no-op unless the import above failed


#: what a run imports of matplotlib before it forks (pipeline/_parallel.py PRELOAD)
_MATPLOTLIB = (
    "matplotlib.pyplot",
    "matplotlib.backends.backend_agg",
    "matplotlib.backends.backend_svg",
)


def import_matplotlib_lean() -> None:
    """Import what a run draws with of matplotlib without the property lists matplotlib
    writes into the docstrings of every artist class's ``set()`` at import
    (:func:`matplotlib.artist.kwdoc`, called for about 100 classes: 0.07 s of CPU, a third of
    the import; issue 22). Only those docstrings (seen by ``help()`` in this process) differ;
    the signatures matplotlib builds for them and everything drawn are unchanged. Console
    script only, only when no artist class exists yet; ``kwdoc`` is put back afterwards."""
    if "matplotlib.artist" in sys.modules:
        return
    try:
        from matplotlib import artist
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return
    original = getattr(artist, "kwdoc", None)
    if original is None:  # pragma: no cover - another matplotlib
        return
    artist.kwdoc = lambda *args, **kwargs: ""
    try:
        for name in _MATPLOTLIB:
            __import__(name)
    except Exception:  # noqa: BLE001 - the run imports it again and reports what is wrong
        pass
    finally:
        artist.kwdoc = original


def import_for_run() -> None:
    """What a run needs before its fork, imported lean with the collector paused: scipy.stats
    (statsmodels' GLM, the p-value adjustment) and matplotlib (both processes draw)."""
    with collector_paused():
        import_scipy_stats_lean()
        import_matplotlib_lean()
