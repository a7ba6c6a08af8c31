"""EQ-5D value sets against the R package eq5d (every level combination of every set).

Source of the numbers: tests/reference/r_economics/eq5d_value_sets.R (R eq5d 0.16.3.9000,
github fragla/eq5d) wrote eq5d_value_sets.json: unrounded utilities (digits = 10) and the
package's default 3-decimal output for all 243 (3L) or 3,125 (5L) profiles.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import DataValidationError, SpecError

REF = json.loads(
    (Path(__file__).parents[1] / "reference" / "r_economics" / "eq5d_value_sets.json").read_text()
)
REQUIRED = ["uk-3l-dolan1997", "se-3l-burstrom2014", "dk-5l-jensen2021", "se-5l-burstrom2020",
            "se-5l-sun2022"]  # fmt: skip


def test_every_required_set_is_shipped_and_cited():
    from peerstats.economics import value_sets

    sets = value_sets()
    for name in [*REQUIRED, "uk-5l-devlin2018", "uk-crosswalk-vanhout2012"]:
        assert name in sets.index
        assert sets.loc[name, "doi"].startswith("10.")


@pytest.mark.parametrize("set_id", sorted(REF["sets"]))
def test_every_profile_matches_r_eq5d(set_id):
    ref = REF["sets"][set_id]
    ours = peerstats.eq5d(ref["profiles"], value_set=set_id)
    # unrounded: identical arithmetic on the same published coefficients
    np.testing.assert_allclose(ours, ref["utility"], rtol=0, atol=1e-9)
    # published precision: 3 decimals (R rounds half-even-ish on binary values; allow the tie)
    assert np.max(np.abs(ours - np.array(ref["utility_3dp"]))) <= 0.0005 + 1e-9


def test_frame_input_with_common_names_keeps_the_index():
    ref = REF["sets"]["dk-5l-jensen2021"]
    profiles = ref["profiles"][:50]
    frame = pd.DataFrame(
        [[int(c) for c in p] for p in profiles],
        columns=["mobility", "self_care", "usual_activities", "pain_discomfort",
                 "anxiety_depression"],
        index=pd.RangeIndex(100, 150),
    )  # fmt: skip
    u = peerstats.eq5d(frame, value_set="dk-5l-jensen2021")
    assert isinstance(u, pd.Series) and list(u.index) == list(frame.index)
    np.testing.assert_allclose(u.to_numpy(), ref["utility"][:50], atol=1e-9)
    coded = frame.set_axis(["eq5d_mo", "EQ5D_SC", "eq5d-ua", "PD", "ad"], axis=1)
    np.testing.assert_allclose(peerstats.eq5d(coded, value_set="dk-5l-jensen2021"), u)


def test_single_string_and_integer_profile():
    # Dolan 1997: 11112 = 1 - 0.081 - 0.071
    assert peerstats.eq5d("11112", value_set="uk-3l-dolan1997") == pytest.approx(0.848)
    assert peerstats.eq5d(11112, value_set="uk-3l-dolan1997") == pytest.approx(0.848)


def test_invalid_profiles_are_listed_not_scored():
    bad = ["11111", "11161", "1112", None, "1a111", "33333"]
    with pytest.raises(DataValidationError) as err:
        peerstats.eq5d(bad, value_set="uk-3l-dolan1997")
    f = err.value.failures
    assert list(f["row"]) == [1, 2, 4]  # level 6, four digits, a letter; None is missing
    u = peerstats.eq5d(bad, value_set="uk-3l-dolan1997", invalid="nan")
    assert np.isnan(u[[1, 2, 3, 4]]).all() and u[0] == 1.0
    assert u[5] == pytest.approx(-0.594)


def test_a_5l_level_under_a_3l_set_is_invalid():
    with pytest.raises(DataValidationError, match="EQ-5D-3L profile"):
        peerstats.eq5d(["11114"], value_set="se-3l-burstrom2014")


def test_frame_with_one_missing_dimension_is_invalid_all_missing_is_missing():
    frame = pd.DataFrame({"MO": [1, 1, None], "SC": [1, None, None], "UA": [1, 1, None],
                          "PD": [1, 1, None], "AD": [2, 1, None]})  # fmt: skip
    with pytest.raises(DataValidationError) as err:
        peerstats.eq5d(frame, value_set="se-5l-sun2022")
    assert list(err.value.failures["row"]) == [1]
    u = peerstats.eq5d(frame, value_set="se-5l-sun2022", invalid="nan")
    assert u.iloc[0] == pytest.approx(1 - 0.031) and u.iloc[1:].isna().all()


def test_unknown_value_set_lists_the_choices():
    with pytest.raises(SpecError, match="dk-5l-jensen2021"):
        peerstats.eq5d(["11111"], value_set="de-5l-ludwig2018")


def test_unrecognised_columns_say_how_to_name_them():
    with pytest.raises(SpecError, match="columns="):
        peerstats.eq5d(pd.DataFrame({"a": [1], "b": [1]}), value_set="uk-3l-dolan1997")


def test_a_user_value_set_file_is_checked_against_the_schema(tmp_path):
    from peerstats.economics import load_value_set

    good = tmp_path / "xx-3l-test.yaml"
    good.write_text(
        "id: xx-3l-test\ninstrument: EQ-5D-3L\nlevels: 3\nsource: {citation: made up for a test}\n"
        "model: additive\nconstant: 1\ndecrements:\n"
        + "".join(f"  {d}: [0, -0.1, -0.2]\n" for d in ["MO", "SC", "UA", "PD", "AD"])
    )
    vs = load_value_set(good)
    assert peerstats.eq5d("12111", value_set=vs) == pytest.approx(0.9)
    assert peerstats.eq5d("33333", value_set=good) == pytest.approx(0.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("  AD: [0, -0.1, -0.2]\n", ""))
    with pytest.raises(SpecError, match="not a valid EQ-5D value set"):
        load_value_set(bad)
