"""The effect record (issue 23.1): the one shape every outcome type returns."""

import math

import pytest

from peerstats.effects import SCALES, EffectRecord, records_frame


def test_ratio_and_difference_scales_know_their_null():
    r = EffectRecord("readmitted", "odds_ratio", 0.66, 0.43, 0.99, 0.04)
    d = EffectRecord("qpr15", "mean_difference", 5.1, 2.4, 7.8, 0.001)
    assert (r.null, r.is_ratio, r.scale_label) == (1.0, True, "odds ratio")
    assert (d.null, d.is_ratio) == (0.0, False)


def test_unknown_scale_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="is not an effect scale; scales are"):
        EffectRecord("x", "log odds", 0.1, 0.0, 0.2)


def test_level_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="level"):
        EffectRecord("x", "odds_ratio", 1.0, 0.5, 2.0, level=95)


def test_records_frame_has_one_row_per_record_and_every_field():
    recs = [
        EffectRecord("a", "hazard_ratio", 0.72, 0.51, 1.02, 0.06, n_analysed=280, n_randomised=296),
        EffectRecord("b", "mean_difference", 1.0, -1.0, 3.0),
    ]
    df = records_frame(recs)
    assert list(df["outcome"]) == ["a", "b"]
    assert set(SCALES["hazard_ratio"][:1]) <= set(df["scale_label"])
    assert df.loc[0, "n_analysed"] == 280 and math.isnan(df.loc[1, "p_value"])
    assert {"estimand", "model", "direction", "population", "null"} <= set(df.columns)
