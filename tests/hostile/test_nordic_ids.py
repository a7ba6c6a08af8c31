"""Issue 24.4: national identity numbers of all five Nordic countries, with check digits.

Valid numbers are the published examples of the issuing authorities or reference works:
- FI henkilötunnus 131052-308T: the Digital and Population Data Services Agency's example;
  010594Y9032 / 010594Y9021: its examples of the 2023 century signs.
- NO fødselsnummer 15076500565: the example in Norwegian Wikipedia's "Fødselsnummer" article.
- IS kennitala 120174-3399: Registers Iceland's example.
Near misses change one check character; dates, phone numbers and ordinary ids must stay clean.
"""

import pytest

from peerstats._identifiers import looks_identifying, mask_identifiers


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("131052-308T", "henkilötunnus"),
        ("010594Y9032", "henkilötunnus"),
        ("010594Y9021", "henkilötunnus"),
        ("15076500565", "fødselsnummer"),
        ("120174-3399", "kennitala"),
        ("hetu 131052-308T, ny adress", "henkilötunnus"),
        ("fnr 15076500565 i journalen", "fødselsnummer"),
        ("kennitala: 120174-3399.", "kennitala"),
    ],
)
def test_nordic_ids_are_recognised_alone_and_in_text(value, kind):
    found = looks_identifying(value)
    assert found is not None and found[0] == kind and found[1] is True


@pytest.mark.parametrize(
    "value",
    [
        "131052-308U",  # wrong check character
        "131352-308T",  # month 13
        "15076500566",  # second check digit off by one
        "15076500575",  # first check digit off by one
        "12345678901",
        "2020-01-31 12:00",
        "visit 3 at 10:30",
        "ID-00123456",
        "1234567",
    ],
)
def test_near_misses_dates_and_ordinary_numbers_are_not_flagged_strongly(value):
    found = looks_identifying(value)
    assert found is None or found[1] is False


def test_masking_hides_every_character_of_a_henkilotunnus_and_the_birth_date():
    assert mask_identifiers("hetu 131052-308T tack") == "hetu *********** tack"
    assert mask_identifiers("fnr 15076500565") == "fnr ***********"
    assert "120174" not in mask_identifiers("kt 120174-3399")
