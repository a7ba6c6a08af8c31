"""Readers for trial data files (CSV/TSV, Excel, SPSS, Stata, Parquet) and wide -> long.

Everything is read as text first; :mod:`peerstats.data.validation` coerces and checks.
"""

from peerstats.io.readers import NA_STRINGS, RawTable, ReadError, read_table, to_text
from peerstats.io.wide import split_wide_column, wide_to_long

__all__ = [
    "NA_STRINGS",
    "RawTable",
    "ReadError",
    "read_table",
    "to_text",
    "split_wide_column",
    "wide_to_long",
]
