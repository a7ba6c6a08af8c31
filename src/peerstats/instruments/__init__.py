"""Questionnaire definitions (data, in YAML) and their scoring.

Shipped definitions live in ``data_schemas/instruments/*.yaml`` and follow
``data_schemas/instrument.schema.json``. Add your own with :func:`load_instrument_file` and
:func:`register`, or put YAML files in a directory listed in ``PEERSTATS_INSTRUMENT_PATH``.

Examples
--------
>>> from peerstats.instruments import get_instrument, list_instruments
>>> get_instrument("gad7").total_max
21
"""

from peerstats.instruments._definition import (
    Instrument,
    MissingRule,
    Subscale,
    instrument_from_dict,
    load_instrument_file,
)
from peerstats.instruments._registry import (
    ENV_PATH,
    get_instrument,
    list_instruments,
    register,
    unregister,
)
from peerstats.instruments._scoring import (
    ScoreResult,
    cronbach_alpha,
    prepare_items,
    score,
    severity,
)

__all__ = [
    "ENV_PATH",
    "Instrument",
    "MissingRule",
    "ScoreResult",
    "Subscale",
    "cronbach_alpha",
    "get_instrument",
    "instrument_from_dict",
    "list_instruments",
    "load_instrument_file",
    "prepare_items",
    "register",
    "score",
    "severity",
    "unregister",
]
