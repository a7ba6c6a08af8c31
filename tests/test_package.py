import tomllib
from pathlib import Path

import peerstats


def test_version_matches_pyproject():
    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert peerstats.__version__ == meta["project"]["version"]


def test_unknown_attribute_raises():
    import pytest

    with pytest.raises(AttributeError):
        peerstats.no_such_thing  # noqa: B018


def test_validation_error_is_value_error_and_lists_problems():
    import pandas as pd

    err = peerstats.DataValidationError(
        pd.DataFrame([{"table": "participants", "row": 3, "column": "arm", "value": "peeer",
                       "check": "unknown_label", "message": "'peeer' is not an arm; did you mean 'peer'?"}])
    )
    assert isinstance(err, ValueError)
    assert "participants row 3" in str(err) and "did you mean 'peer'" in str(err)
    assert list(err.failures.columns) == ["table", "row", "column", "value", "check", "message"]


def test_validation_error_message_survives_missing_row_and_column_markers():
    """Failure rows may carry pd.NA / NaN / None for row or column (whole-table problems)."""
    import numpy as np
    import pandas as pd

    failures = pd.DataFrame({
        "table": ["assessments", "participants", "sessions"],
        "row": pd.array([pd.NA, 4, pd.NA], dtype="Int64"),
        "column": [pd.NA, np.nan, None],
        "value": [None, "x", None],
        "check": ["empty_file", "bad", "missing_column"],
        "message": ["no rows", "bad value", "no column 'attended'"],
    })
    text = str(peerstats.DataValidationError(failures))
    assert "3 problems" in text
    assert "[empty_file] assessments: no rows" in text
    assert "[bad] participants row 4: bad value" in text
