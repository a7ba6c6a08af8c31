"""Scoring of every shipped instrument against totals computed by hand in the test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from peerstats.exceptions import DataValidationError, DataWarning, SpecError
from peerstats.instruments import cronbach_alpha, get_instrument, score, severity

NA = np.nan


def frame(prefix: str, rows: list[list[float]], index=None) -> pd.DataFrame:
    k = len(rows[0])
    return pd.DataFrame(rows, columns=[f"{prefix}_{i}" for i in range(1, k + 1)], index=index)


# ---------------------------------------------------------------- GAD-7 (sum, proration)


def test_gad7_complete_prorated_and_missing():
    data = frame(
        "gad",
        [
            [0, 1, 2, 3, 0, 1, 2],  # 0+1+2+3+0+1+2 = 9
            [3, 3, 2, NA, 1, 1, 2],  # 6 answered, sum 12 -> 12 / 6 * 7 = 14
            [1, 1, NA, NA, 1, 1, 1],  # 5 of 7 answered < ceil(0.8 * 7) = 6 -> missing
            [NA] * 7,  # nothing answered -> missing
        ],
        index=["s1", "s2", "s3", "s4"],
    )
    res = score(data, "GAD-7")
    assert res.total.index.tolist() == ["s1", "s2", "s3", "s4"]
    assert res.total["s1"] == 9
    assert res.total["s2"] == pytest.approx(12 / 6 * 7)
    assert math.isnan(res.total["s3"]) and math.isnan(res.total["s4"])
    assert res.prorated.tolist() == [False, True, False, False]
    assert res.n_answered.tolist() == [7, 6, 5, 0]
    assert (res.n_complete, res.n_prorated, res.n_missing) == (1, 1, 2)
    assert res.report["n_no_items"] == 1
    assert res.report["rule"]["required"] == 6
    assert "1 prorated" in res.summary()


def test_gad7_min_answered_override():
    data = frame("gad", [[3, 3, 2, NA, 1, 1, 2], [1, 1, NA, NA, 1, 1, 1]])
    strict = score(data, "gad7", min_answered=1.0)
    assert strict.total.isna().all()
    loose = score(data, "gad7", min_answered=0.5)
    # row 2: 5 answered, sum 5 -> 5 / 5 * 7 = 7
    assert loose.total.tolist() == pytest.approx([12 / 6 * 7, 5 / 5 * 7])


@pytest.mark.parametrize("bad", [0, 1.5, -0.2, True, "0.8"])
def test_min_answered_must_be_a_fraction(bad):
    data = frame("gad", [[0] * 7])
    with pytest.raises(SpecError, match="min_answered"):
        score(data, "GAD-7", min_answered=bad)


def test_gad7_severity_bands_and_aliases():
    totals = pd.Series([0, 4, 5, 9, 10, 14, 15, 21, NA], index=list("abcdefghi"))
    bands = severity(totals, "gad7")
    assert bands.index.tolist() == list("abcdefghi")
    assert bands.astype(object).tolist()[:8] == [
        "minimal",
        "minimal",
        "mild",
        "mild",
        "moderate",
        "moderate",
        "severe",
        "severe",
    ]
    assert pd.isna(bands["i"])
    assert severity(12.5, "GAD-7") == "moderate"  # a prorated total
    inst = get_instrument("gad-7")
    assert inst.caseness == 10


def test_severity_errors():
    with pytest.raises(SpecError, match="no cutoff bands.*GAD-7"):
        severity(10, "QPR-15")
    with pytest.raises(DataValidationError) as err:
        severity(pd.Series([3, 22]), "GAD-7")
    assert err.value.failures["row"].tolist() == [2]


# ---------------------------------------------------------------- PHQ-9 (risk flag)


def test_phq9_totals_bands_and_item9_flag():
    data = frame(
        "phq",
        [
            [1, 1, 1, 1, 1, 1, 1, 1, 2],  # 8 * 1 + 2 = 10, item 9 = 2 -> flag
            [0, 0, 0, 0, 0, 0, 0, 0, 0],  # 0, no flag
            [2, 2, 2, 2, 2, 2, 2, 2, NA],  # 8 of 9 >= ceil(7.2) = 8: 16 / 8 * 9 = 18, flag unknown
        ],
    )
    res = score(data, "PHQ-9")
    assert res.total.tolist() == pytest.approx([10, 0, 18])
    flag = res.flags["phq9_self_harm"]
    assert flag.iloc[0] is True or flag.iloc[0] == True  # noqa: E712
    assert not flag.iloc[1]
    assert pd.isna(flag.iloc[2])
    assert res.report["flags"] == {"self_harm": 1}
    assert severity(res.total, "PHQ-9").astype(object).tolist() == [
        "moderate",
        "minimal",
        "moderately severe",
    ]


# ---------------------------------------------------------------- BAI


def test_bai_sum():
    row = [1, 2, 3, 0] * 5 + [1]  # 21 items: 5 * (1 + 2 + 3 + 0) + 1 = 31
    res = score(frame("bai", [row, [3] * 21]), "BAI")
    assert res.total.tolist() == [31, 63]
    assert severity(res.total, "BAI").astype(object).tolist() == ["severe", "severe"]


# ---------------------------------------------------------------- QPR-15


def test_qpr15_totals_and_proration():
    data = frame(
        "qpr",
        [
            [4] * 15,  # 60
            [0, 1, 2, 3, 4] * 3,  # 3 * (0 + 1 + 2 + 3 + 4) = 30
            [3] * 12 + [NA] * 3,  # 12 of 15 >= ceil(12) = 12: 36 / 12 * 15 = 45
            [3] * 11 + [NA] * 4,  # 11 of 15 -> missing
        ],
    )
    res = score(data, "QPR-15")
    assert res.total.iloc[:3].tolist() == pytest.approx([60, 30, 45])
    assert math.isnan(res.total.iloc[3])
    assert res.total.name == "qpr15"


def test_items_as_list_and_mapping():
    cols = [f"Q{i}" for i in range(1, 16)]
    data = pd.DataFrame([[2] * 15], columns=cols)
    assert score(data, "qpr15", items=cols).total.iloc[0] == 30  # 15 * 2
    renamed = frame("qpr", [[2] * 15]).rename(columns={"qpr_1": "first"})
    assert score(renamed, "qpr15", items={"qpr_1": "first"}).total.iloc[0] == 30
    with pytest.raises(SpecError, match="15 items, but 3 columns"):
        score(data, "qpr15", items=cols[:3])
    with pytest.raises(SpecError, match="unknown QPR-15 items"):
        score(data, "qpr15", items={"qpr_99": "Q1"})


# ---------------------------------------------------------------- Empowerment Scale (mean, key)


def test_empowerment_default_key_and_configurable_key():
    data = frame("es", [[4] * 28, [1] * 28])
    res = score(data, "Empowerment Scale")
    # provisional key reverses 9 items (4 -> 1): (9 * 1 + 19 * 4) / 28 = 85 / 28
    # all 1s: (9 * 4 + 19 * 1) / 28 = 55 / 28
    assert res.total.tolist() == pytest.approx([85 / 28, 55 / 28])
    assert res.report["reverse_verified"] is False
    mine = get_instrument("ES").replace(reverse=[1, "es_2"], reverse_verified=True)
    assert mine.reverse == ("es_1", "es_2")
    # (2 * 1 + 26 * 4) / 28 = 106 / 28
    assert score(data.iloc[:1], mine).total.iloc[0] == pytest.approx(106 / 28)
    assert get_instrument("ES").reverse != mine.reverse  # the shipped definition is unchanged


def test_empowerment_mean_with_missing_items():
    row = [3] * 20 + [2] * 3 + [NA] * 5  # 23 of 28 >= ceil(22.4) = 23
    res = score(frame("es", [row]), get_instrument("ES").replace(reverse=[]))
    # mean of answered items: (20 * 3 + 3 * 2) / 23 = 66 / 23
    assert res.total.iloc[0] == pytest.approx(66 / 23)
    assert bool(res.prorated.iloc[0])


# ---------------------------------------------------------------- Social Inclusion Scale


def test_sis_subscales():
    row = [2] * 7 + [3] * 5 + [4] * 10
    res = score(frame("sis", [row]), "SIS")
    # placeholder allocation: isolation 1-7 = 7 * 2 = 14, relations 8-12 = 5 * 3 = 15,
    # acceptance 13-22 = 10 * 4 = 40; total 14 + 15 + 40 = 69
    assert res.subscales.iloc[0].to_dict() == {
        "sis_social_isolation": 14,
        "sis_social_relations": 15,
        "sis_social_acceptance": 40,
    }
    assert res.total.iloc[0] == 69
    assert all(not s["verified"] for s in res.report["subscales"].values())


def test_sis_subscale_proration_uses_its_own_items():
    row = [2] * 6 + [NA] + [3] * 5 + [4] * 10
    res = score(frame("sis", [row]), "SIS")
    # isolation: 6 of 7 >= ceil(5.6) = 6 -> 12 / 6 * 7 = 14; total: 21 of 22, 67 / 21 * 22
    assert res.subscales["sis_social_isolation"].iloc[0] == pytest.approx(14)
    assert res.total.iloc[0] == pytest.approx(67 / 21 * 22)


# ---------------------------------------------------------------- MANSA


def test_mansa_mean_ignores_yes_no_items():
    data = frame("mansa", [[1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5]])
    data["mansa_friend"] = "yes"  # yes/no items may sit beside the rated items
    res = score(data, "MANSA")
    # (1+2+3+4+5+6+7 + 1+2+3+4+5) / 12 = (28 + 15) / 12 = 43 / 12
    assert res.total.iloc[0] == pytest.approx(43 / 12)


# ---------------------------------------------------------------- WSAS


def test_wsas_sum_and_bands():
    res = score(frame("wsas", [[8, 0, 4, 2, 6], [8] * 5, [1, 2, 3, 1, 2]]), "WSAS")
    # 8+0+4+2+6 = 20; 5 * 8 = 40; 1+2+3+1+2 = 9
    assert res.total.tolist() == [20, 40, 9]
    assert severity(res.total, "WSAS").astype(object).tolist() == [
        "significant impairment",
        "moderately severe or worse",
        "subclinical",
    ]


# ---------------------------------------------------------------- SWEMWBS (conversion table)


def test_swemwbs_raw_and_metric():
    data = frame("swemwbs", [[3] * 7, [1] * 7, [5] * 7, [5, 5, 5, 5, 5, 5, NA]])
    raw = score(data, "SWEMWBS")
    # 7 * 3 = 21; 7; 35; 30 / 6 * 7 = 35
    assert raw.total.tolist() == pytest.approx([21, 7, 35, 35])
    metric = score(data, "SWEMWBS", conversion="metric")
    # published table: 21 -> 19.25, 7 -> 7.00, 35 -> 35.00
    assert metric.total.tolist() == pytest.approx([19.25, 7.00, 35.00, 35.00])
    assert metric.raw_total.tolist() == pytest.approx([21, 7, 35, 35])
    assert metric.report["n_interpolated"] == 0


def test_swemwbs_non_integer_prorated_total_is_interpolated_with_warning():
    data = frame("swemwbs", [[4, 4, 4, 4, 4, 3, NA]])
    # raw = 23 / 6 * 7 = 26.8333; table 26 -> 23.21, 27 -> 24.11
    raw = 23 / 6 * 7
    expected = 23.21 + (raw - 26) * (24.11 - 23.21)
    with pytest.warns(DataWarning, match="interpolation"):
        res = score(data, "SWEMWBS", conversion="metric")
    assert res.total.iloc[0] == pytest.approx(expected)


def test_unknown_conversion():
    with pytest.raises(SpecError, match="conversions are \\['metric'\\]"):
        score(frame("swemwbs", [[3] * 7]), "SWEMWBS", conversion="tscore")
    with pytest.raises(SpecError, match="conversions are none"):
        score(frame("gad", [[3] * 7]), "GAD-7", conversion="metric")


# ---------------------------------------------------------------- Herth Hope Index (reverse)


def test_hhi_reverse_items_3_and_6():
    data = frame("hhi", [[4] * 12, [1, 1, 4, 1, 1, 4, 1, 1, 1, 1, 1, 1], [2] * 11 + [NA]])
    res = score(data, "HHI")
    # row 1: items 3 and 6 recoded 1 + 4 - 4 = 1: 10 * 4 + 2 * 1 = 42
    # row 2: items 3 and 6 recoded to 1: 12 * 1 = 12
    # row 3: reversed 2 -> 3 for items 3, 6: (9 * 2 + 2 * 3) = 24 over 11 items -> 24 / 11 * 12
    assert res.total.tolist() == pytest.approx([42, 12, 24 / 11 * 12])


# ---------------------------------------------------------------- invalid item data


def test_bad_cells_are_all_listed():
    data = frame(
        "gad",
        [[0, 1, 2, 3, 0, 1, 2], [4, 1, 2, 3, 0, 1, 2], [0, 1, 2, 3, 0, 1, 2]],
        index=[10, 20, 30],
    )
    data = data.astype(object)
    data.loc[30, "gad_5"] = "often"
    data.loc[10, "gad_7"] = 1.5
    data.loc[20, "gad_2"] = -1
    with pytest.raises(DataValidationError) as err:
        score(data, "GAD-7")
    f = err.value.failures
    got = set(zip(f["row"], f["column"], f["check"], strict=True))
    assert got == {
        (2, "gad_1", "out_of_range"),  # 4 > 3, second row
        (2, "gad_2", "out_of_range"),
        (3, "gad_5", "non_numeric"),
        (1, "gad_7", "non_integer"),
    }
    assert set(f["table"]) == {"items"}
    assert "often" in f["value"].tolist()
    assert isinstance(err.value, ValueError)


def test_missing_columns_are_listed():
    data = frame("gad", [[0] * 7]).drop(columns=["gad_2", "gad_6"])
    with pytest.raises(DataValidationError) as err:
        score(data, "GAD-7")
    f = err.value.failures
    assert f["column"].tolist() == ["gad_2", "gad_6"]
    assert set(f["check"]) == {"missing_column"}
    assert f["row"].isna().all()


def test_numeric_strings_are_accepted_but_blank_is_not():
    data = frame("wsas", [["1", "2", "3", "4", "5"]])
    assert score(data, "WSAS").total.iloc[0] == 15  # 1+2+3+4+5
    data.iloc[0, 0] = " "
    with pytest.raises(DataValidationError, match="non_numeric"):
        score(data, "WSAS")


def test_unknown_instrument_lists_choices():
    with pytest.raises(SpecError, match="not a known instrument.*GAD-7.*QPR-15"):
        score(frame("gad", [[0] * 7]), "GAD-8")


def test_data_must_be_a_frame():
    with pytest.raises(SpecError, match="DataFrame"):
        score([[0] * 7], "GAD-7")


# ---------------------------------------------------------------- Cronbach's alpha


def _alpha_by_hand(x: np.ndarray) -> float:
    k = x.shape[1]
    item_var = x.var(axis=0, ddof=1).sum()
    total_var = x.sum(axis=1).var(ddof=1)
    return k / (k - 1) * (1 - item_var / total_var)


def test_cronbach_alpha_matches_formula_with_reverse_keys_and_complete_cases():
    rng = np.random.default_rng(20261123)
    latent = rng.normal(size=40)
    x = np.clip(np.round(2.5 + latent[:, None] + rng.normal(scale=0.8, size=(40, 12))), 1, 4)
    data = frame("hhi", x.tolist())
    data.iloc[5, 2] = NA  # one incomplete row is dropped
    keyed = x.copy()
    keyed[:, [2, 5]] = 5 - keyed[:, [2, 5]]  # items 3 and 6 reversed: 1 + 4 - x
    keyed = np.delete(keyed, 5, axis=0)
    expected = _alpha_by_hand(keyed)
    res = cronbach_alpha(data, "HHI")
    assert res["n"] == 39
    assert res["alpha"] == pytest.approx(expected, rel=1e-10)
    # Feldt interval: 1 - (1 - alpha) * F quantiles with df (n - 1, (n - 1)(k - 1))
    from scipy.stats import f

    lo = 1 - (1 - expected) * f.ppf(0.975, 38, 38 * 11)
    hi = 1 - (1 - expected) * f.ppf(0.025, 38, 38 * 11)
    assert res["ci_lower"] == pytest.approx(lo, rel=1e-8)
    assert res["ci_upper"] == pytest.approx(hi, rel=1e-8)


def test_cronbach_alpha_too_few_cases_and_bad_data():
    res = cronbach_alpha(frame("gad", [[0] * 7, [1] * 7]), "GAD-7")
    assert res["n"] == 2 and math.isnan(res["alpha"])
    with pytest.raises(DataValidationError):
        cronbach_alpha(frame("gad", [[9] * 7, [1] * 7, [2] * 7]), "GAD-7")
    with pytest.raises(SpecError, match="ci"):
        cronbach_alpha(frame("gad", [[0] * 7]), "GAD-7", ci=95)


def test_to_frame_is_tidy_and_aligned():
    data = frame("sis", [[2] * 22, [3] * 22], index=["a", "b"])
    out = score(data, "SIS").to_frame()
    assert out.index.tolist() == ["a", "b"]
    assert list(out.columns[:4]) == [
        "sis",
        "sis_social_isolation",
        "sis_social_relations",
        "sis_social_acceptance",
    ]
    assert out["sis"].tolist() == [44, 66]  # 22 * 2, 22 * 3


def test_failures_can_carry_file_rows():
    data = frame("wsas", [[1, 2, 3, 4, 5], [1, 2, 3, 4, 9]])
    with pytest.raises(DataValidationError) as err:
        score(data, "WSAS", table="assessments", row_numbers=[7, 8])
    f = err.value.failures
    assert f[["table", "row", "column"]].values.tolist() == [["assessments", 8, "wsas_5"]]
    with pytest.raises(SpecError, match="row_numbers"):
        score(data, "WSAS", row_numbers=[1])


def test_booleans_are_not_responses():
    data = frame("wsas", [[1, 2, 3, 4, 5]]).astype(object)
    data.iloc[0, 1] = True
    with pytest.raises(DataValidationError) as err:
        score(data, "WSAS")
    assert err.value.failures["check"].tolist() == ["non_numeric"]


def test_identifier_typed_into_an_item_is_not_echoed():
    """A personnummer pasted into an item cell (valid Luhn digit, built here) is reported masked."""
    import pandas as pd
    import pytest

    from peerstats import DataValidationError, score

    digits = "811218987"
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    pnr = f"19811218-987{(10 - total % 10) % 10}"
    items = pd.DataFrame({f"gad_{k}": [1] for k in range(1, 8)}).astype(object)
    items.loc[0, "gad_3"] = pnr
    with pytest.raises(DataValidationError) as info:
        score(items, "GAD-7")
    text = str(info.value) + info.value.failures.to_string()
    # issue 13: the birth-date part is masked too
    assert pnr not in text and "19811218" not in text and "********-****" in text
