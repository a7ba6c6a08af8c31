"""Effects: the one record every analysis returns, and analyses that work on effects.

:class:`EffectRecord` is the tidy shape of one treatment effect, whatever the outcome type
(continuous, binary, count, time to event, economic). Tables, the forest plot, the headline and
``results.json`` read records only. See ``docs/ARCHITECTURE.md``.
"""

from peerstats.effects.record import SCALES, EffectRecord, records_frame

__all__ = ["EffectRecord", "records_frame", "SCALES"]
