"""Instrument definitions: shipped YAML, schema checks, user files, registry."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import yaml

from peerstats.exceptions import SpecError
from peerstats.instruments import (
    ENV_PATH,
    Instrument,
    _registry,
    get_instrument,
    instrument_from_dict,
    list_instruments,
    load_instrument_file,
    register,
    score,
    unregister,
)

SHIPPED = {
    # name: (n_items, item_min, item_max, scoring, total_min, total_max, higher_is_better)
    "GAD-7": (7, 0, 3, "sum", 0, 21, False),
    "PHQ-9": (9, 0, 3, "sum", 0, 27, False),
    "BAI": (21, 0, 3, "sum", 0, 63, False),
    "QPR-15": (15, 0, 4, "sum", 0, 60, True),
    "Empowerment Scale": (28, 1, 4, "mean", 1, 4, True),
    "Social Inclusion Scale": (22, 1, 4, "sum", 22, 88, True),
    "MANSA": (12, 1, 7, "mean", 1, 7, True),
    "WSAS": (5, 0, 8, "sum", 0, 40, False),
    "SWEMWBS": (7, 1, 5, "sum", 7, 35, True),
    "Herth Hope Index": (12, 1, 4, "sum", 12, 48, True),
}

MINIMAL = {
    "name": "My Scale",
    "aliases": ["MS-4", "myscale"],
    "reference": "Doe J. A scale. 2020.",
    "item_prefix": "ms",
    "n_items": 4,
    "item_min": 0,
    "item_max": 2,
    "reverse": [2],
    "scoring": "sum",
    "total": {"min": 0, "max": 8},
    "higher_is_better": True,
    "missing": {"method": "prorate", "min_answered": 0.75},
}


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    monkeypatch.delenv(ENV_PATH, raising=False)
    saved = dict(_registry._registered)
    yield
    _registry._registered.clear()
    _registry._registered.update(saved)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_definitions(name):
    inst = get_instrument(name)
    n, lo, hi, scoring, tmin, tmax, better = SHIPPED[name]
    assert (inst.n_items, inst.item_min, inst.item_max, inst.scoring) == (n, lo, hi, scoring)
    assert (inst.total_min, inst.total_max, inst.higher_is_better) == (tmin, tmax, better)
    assert inst.reference
    for kind in ("alpha", "test_retest"):
        rel = inst.reliability.get(kind)
        if rel is not None:
            assert rel["source"]  # every reliability value names its source


def test_list_and_aliases():
    assert set(SHIPPED) <= set(list_instruments())
    assert get_instrument("qpr15").name == "QPR-15"
    assert get_instrument("QPR 15").name == "QPR-15"
    assert get_instrument("sis").name == "Social Inclusion Scale"
    assert get_instrument("hhi").reverse == ("hhi_3", "hhi_6")
    inst = get_instrument("GAD-7")
    assert get_instrument(inst) is inst
    with pytest.raises(SpecError):
        get_instrument(7)


def test_unverified_details_are_marked_in_the_yaml():
    folder = resources.files("peerstats").joinpath("data_schemas/instruments")
    es = yaml.safe_load(folder.joinpath("empowerment.yaml").read_text())
    assert es["reverse_verified"] is False and "licensed manual" in es["notes"]
    sis = yaml.safe_load(folder.joinpath("sis.yaml").read_text())
    assert "UNVERIFIED" in sis["notes"]
    assert all(s["verified"] is False for s in sis["subscales"].values())


def test_schema_file_is_valid_json_schema():
    import jsonschema

    text = resources.files("peerstats").joinpath("data_schemas/instrument.schema.json").read_text()
    jsonschema.Draft202012Validator.check_schema(json.loads(text))


def test_published_swemwbs_table_endpoints():
    table = get_instrument("SWEMWBS").conversions["metric"]["table"]
    assert len(table) == 29  # raw 7..35
    assert table[7.0] == 7.00 and table[8.0] == 9.51 and table[35.0] == 35.00


# ---------------------------------------------------------------- user files


def test_user_file_round_trip(tmp_path: Path):
    path = tmp_path / "my_scale.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    inst = load_instrument_file(path)
    assert inst.items == ("ms_1", "ms_2", "ms_3", "ms_4")
    assert inst.reverse == ("ms_2",)
    assert inst.short_name == "myscale"
    # round trip: to_dict -> YAML -> load gives the same instrument
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(inst.to_dict()))
    assert load_instrument_file(again) == inst
    register(inst)
    assert get_instrument("ms-4") is inst
    data = pd.DataFrame({"ms_1": [2, 1], "ms_2": [0, 2], "ms_3": [1, None], "ms_4": [2, 2]})
    res = score(data, "My Scale")
    # row 1: item 2 reversed 0 + 2 - 0 = 2: 2 + 2 + 1 + 2 = 7
    # row 2: item 2 reversed to 0; 3 of 4 answered (>= 0.75 * 4 = 3): (1 + 0 + 2) / 3 * 4 = 4
    assert res.total.tolist() == pytest.approx([7, 4])
    unregister("My Scale")
    with pytest.raises(SpecError, match="not a known instrument"):
        get_instrument("My Scale")


def test_register_conflicts_and_overwrite():
    register(dict(MINIMAL))
    with pytest.raises(SpecError, match="already defined"):
        register(dict(MINIMAL, total={"min": 0, "max": 8}, description="again"))
    clash = dict(MINIMAL, name="Other", aliases=["myscale"])
    with pytest.raises(SpecError, match="already used by 'My Scale'"):
        register(clash)
    newer = register(dict(MINIMAL, description="v2"), overwrite=True)
    assert get_instrument("myscale") is newer
    with pytest.raises(SpecError, match="not a registered instrument"):
        unregister("GAD-7")
    with pytest.raises(SpecError, match="register\\(\\) takes"):
        register(42)


def test_registered_definition_shadows_shipped_one():
    gad = get_instrument("GAD-7").to_dict()
    gad["missing"] = {"method": "complete"}
    register(gad)
    assert get_instrument("gad7").missing.method == "complete"
    unregister("GAD-7")
    assert get_instrument("gad7").missing.method == "prorate"


def test_search_path(tmp_path: Path, monkeypatch):
    (tmp_path / "mine.yml").write_text(yaml.safe_dump(MINIMAL))
    monkeypatch.setenv(ENV_PATH, str(tmp_path))
    assert "My Scale" in list_instruments()
    monkeypatch.setenv(ENV_PATH, str(tmp_path / "nope"))
    with pytest.raises(SpecError, match="not a directory"):
        list_instruments()


def test_replace_revalidates():
    gad = get_instrument("GAD-7")
    assert isinstance(gad.replace(description="x"), Instrument)
    with pytest.raises(SpecError, match="reverse refers to item number 8"):
        gad.replace(reverse=[8])


# ---------------------------------------------------------------- bad definitions -> SpecError


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scoring": "median"}, "scoring: 'median' is not one of"),
        ({"n_items": 0}, "n_items"),
        ({"colour": "blue"}, "Additional properties"),
        ({"total": {"min": 0, "max": 9}}, "does not match 4 items 0-2 scored by sum"),
        ({"item_min": 2, "item_max": 2, "total": {"min": 8, "max": 8}}, "item_min"),
        ({"reverse": ["ms_9"]}, "unknown item 'ms_9'"),
        ({"reverse": [5]}, "numbered 1 to 4"),
        ({"items": ["a", "b", "c"]}, "n_items is 4 but 3 item names"),
        ({"missing": {"method": "prorate", "min_answered": 1.5}}, "min_answered"),
        ({"missing": {"method": "impute"}}, "method"),
        ({"cutoffs": {"bands": {"low": 0, "high": 0}}}, "increasing"),
        ({"cutoffs": {"bands": {"low": 1, "high": 4}}}, "start at the total minimum"),
        ({"subscales": {"a": {"items": [1, 7]}}}, "subscale 'a'"),
        ({"flags": {"risk": {"item": "x", "at_least": 1}}}, "flag 'risk'"),
        ({"conversions": {"t": {"table": {"a": 1, "b": 2}, "source": "s"}}}, "non-numeric raw"),
    ],
)
def test_bad_definition_raises_spec_error(change, message):
    spec = dict(MINIMAL, **change)
    with pytest.raises(SpecError, match=message):
        instrument_from_dict(spec)


def test_missing_required_field_and_prefix():
    spec = {k: v for k, v in MINIMAL.items() if k != "reference"}
    with pytest.raises(SpecError, match="'reference' is a required property"):
        instrument_from_dict(spec)
    spec = {k: v for k, v in MINIMAL.items() if k != "item_prefix"}
    with pytest.raises(SpecError, match="item_prefix"):
        instrument_from_dict(spec)


def test_bad_files(tmp_path: Path):
    with pytest.raises(SpecError, match="cannot read"):
        load_instrument_file(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_instrument_file(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(SpecError, match="must hold a mapping"):
        load_instrument_file(scalar)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(dict(MINIMAL, scoring="median")))
    with pytest.raises(SpecError, match="bad.yaml"):
        load_instrument_file(bad)
