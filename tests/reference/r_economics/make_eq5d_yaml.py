"""Write the EQ-5D value-set YAML files (src/peerstats/data_schemas/eq5d/) from the coefficient
tables the R package `eq5d` carries (github fragla/eq5d, data-raw/TTO.csv, VT.csv, CW.csv at
commit bfdc7ca014bda447b38e5f4e68823b9ba4638a02). Run once by hand:

    python tests/reference/r_economics/make_eq5d_yaml.py /path/to/eq5d/source

The coefficients are then checked against the package's own output for every level combination
(tests/economics/test_eq5d.py with eq5d_value_sets.json), so a transcription error fails a test.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[3] / "src" / "peerstats" / "data_schemas" / "eq5d"
COMMIT = "bfdc7ca014bda447b38e5f4e68823b9ba4638a02"
DIMS = ["MO", "SC", "UA", "PD", "AD"]

SETS = {
    "uk-3l-dolan1997": dict(
        file="TTO.csv",
        column="UK",
        instrument="EQ-5D-3L",
        levels=3,
        country="United Kingdom",
        method="time trade-off (MVH study, general population)",
        citation="Dolan P. Modeling valuations for EuroQol health states. Med Care. "
        "1997;35(11):1095-1108.",
        doi="10.1097/00005650-199711000-00002",
        pmid="9366889",
    ),
    "se-3l-burstrom2014": dict(
        file="TTO.csv",
        column="Sweden",
        instrument="EQ-5D-3L",
        levels=3,
        country="Sweden",
        method="experience-based time trade-off",
        citation="Burström K, Sun S, Gerdtham UG, Henriksson M, Johannesson M, Levin LÅ, "
        "Zethraeus N. Swedish experience-based value sets for EQ-5D health states. Qual Life "
        "Res. 2014;23(2):431-442.",
        doi="10.1007/s11136-013-0496-4",
        pmid="23975375",
    ),
    "dk-5l-jensen2021": dict(
        file="VT.csv",
        column="Denmark",
        instrument="EQ-5D-5L",
        levels=5,
        country="Denmark",
        method="EQ-VT, hybrid model of composite TTO and DCE data",
        citation="Jensen CE, Sørensen SS, Gudex C, Jensen MB, Pedersen KM, Ehlers LH. The Danish "
        "EQ-5D-5L value set: a hybrid model using cTTO and DCE data. Appl Health Econ Health "
        "Policy. 2021;19(4):579-591.",
        doi="10.1007/s40258-021-00639-3",
        pmid="33527304",
    ),
    "se-5l-burstrom2020": dict(
        file="VT.csv",
        column="Sweden_2020",
        instrument="EQ-5D-5L",
        levels=5,
        country="Sweden",
        method="experience-based time trade-off (patients' own health states)",
        citation="Burström K, Teni FS, Gerdtham UG, Leidl R, Helgesson G, Rolfson O, Henriksson M. "
        "Experience-based Swedish TTO and VAS value sets for EQ-5D-5L health states. "
        "PharmacoEconomics. 2020;38(8):839-856.",
        doi="10.1007/s40273-020-00905-7",
        pmid="32307663",
    ),
    "se-5l-sun2022": dict(
        file="VT.csv",
        column="Sweden_2022",
        instrument="EQ-5D-5L",
        levels=5,
        country="Sweden",
        method="EQ-VT composite TTO and DCE (social value set)",
        citation="Sun S, Chuang LH, Sahlén KG, Lindholm L, Norström F. Estimating a social value "
        "set for EQ-5D-5L in Sweden. Health Qual Life Outcomes. 2022;20:167.",
        doi="10.1186/s12955-022-02083-w",
        pmid="36564844",
    ),
    "uk-5l-devlin2018": dict(
        file="VT.csv",
        column="England",
        instrument="EQ-5D-5L",
        levels=5,
        country="England",
        method="EQ-VT, hybrid model of composite TTO and DCE data",
        citation="Devlin NJ, Shah KK, Feng Y, Mulhern B, van Hout B. Valuing health-related "
        "quality of life: an EQ-5D-5L value set for England. Health Econ. 2018;27(1):7-22.",
        doi="10.1002/hec.3564",
        pmid="28833869",
    ),
    "uk-crosswalk-vanhout2012": dict(
        file="CW.csv",
        column="UK",
        instrument="EQ-5D-5L",
        levels=5,
        country="United Kingdom",
        method="crosswalk: EQ-5D-5L responses mapped to the UK EQ-5D-3L (Dolan 1997) values",
        citation="van Hout B, Janssen MF, Feng YS, Kohlmann T, Busschbach J, Golicki D, Lloyd A, "
        "Scalone L, Kind P, Pickard AS. Interim scoring for the EQ-5D-5L: mapping the EQ-5D-5L "
        "to EQ-5D-3L value sets. Value Health. 2012;15(5):708-715.",
        doi="10.1016/j.jval.2012.02.008",
        pmid="22867780",
    ),
}

# eq5d's row names -> our term names (the only terms the shipped sets use)
TERMS = {
    "AtLeastOne2Or3": "any_above_1",
    "Intercept": "any_above_1",
    "AtLeastOne3": "any_level_3",
    "N4": "any_level_4_or_5",
    "N5": "any_level_5",
}


def _column(path: Path, column: str) -> dict[str, str]:
    rows = list(csv.reader(path.open(encoding="utf-8")))
    j = rows[0].index(column)
    return {r[0]: r[j] for r in rows[1:] if r[j] not in ("NA", "")}


def _num(x: str) -> str:
    return repr(float(x))


def _yaml(set_id: str, s: dict, values: dict[str, str]) -> str:
    head = [
        "# yaml-language-server: $schema=../eq5d-value-set.schema.json",
        f"id: {set_id}",
        f"instrument: {s['instrument']}",
        f"levels: {s['levels']}",
        f"country: {s['country']}",
        f'method: "{s["method"]}"',
        "source:",
        f'  citation: "{s["citation"]}"',
        f'  doi: "{s["doi"]}"',
        f'  pmid: "{s["pmid"]}"',
        f'  transcribed_from: "R package eq5d 0.16.3.9000, data-raw/{s["file"]} column '
        f'{s["column"]} (github fragla/eq5d {COMMIT})"',
    ]
    if s["file"] == "CW.csv":
        body = ["model: lookup", "table:"]
        body += [f'  "{k}": {_num(v)}' for k, v in values.items()]
        return "\n".join(head + body) + "\n"
    const = values.pop("FullHealth", None) or values.pop("StartValue")
    body = ["model: additive", f"constant: {_num(const)}", "decrements:"]
    for d in DIMS:
        levels = [_num(values.pop(f"{d}{k}", "0")) for k in range(1, s["levels"] + 1)]
        body.append(f"  {d}: [{', '.join(levels)}]")
    terms = {TERMS[k]: values.pop(k) for k in list(values) if k in TERMS}
    if terms:
        body.append("terms:")
        body += [f"  {k}: {_num(v)}" for k, v in terms.items()]
    if values:
        raise SystemExit(f"{set_id}: terms not handled: {values}")
    return "\n".join(head + body) + "\n"


def main(src: str) -> None:
    raw = Path(src) / "data-raw"
    for set_id, s in SETS.items():
        values = _column(raw / s["file"], s["column"])
        (OUT / f"{set_id}.yaml").write_text(_yaml(set_id, s, values), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
