"""Issue 24.2: identifiers in adverse-event data never reach the harms table or a message."""

import pandas as pd
import pytest

import peerstats
from peerstats.describe.harms import harms_table
from peerstats.exceptions import DataValidationError

PNR = "19811218-9876"  # Skatteverket's documentation example
EMAIL = "anna.svensson@example.se"


@pytest.fixture(scope="module")
def trial_and_events():
    trial = peerstats.datasets.load("peer_recovery")
    events = pd.read_csv(peerstats.datasets.path("peer_recovery").parent / "adverse_events.csv",
                         dtype=str)
    return trial, events


def _cols(events):
    return {"subject": events.columns[0], "event": events.columns[1], "serious": events.columns[2]}


@pytest.mark.parametrize("planted", [f"fall, pnr {PNR}", f"contact {EMAIL}"])
def test_an_identifier_in_an_event_description_is_a_privacy_failure(trial_and_events, planted):
    trial, events = trial_and_events
    c = _cols(events)
    ev = events.copy()
    ev.loc[0, c["event"]] = planted
    with pytest.raises(DataValidationError) as err:
        harms_table(trial, ev, **c)
    text = str(err.value) + err.value.failures.to_csv()
    assert "privacy" in text and PNR not in text and "svensson" not in text


@pytest.mark.parametrize("column", ["subject", "serious"])
def test_an_identifier_typed_into_subject_or_serious_is_not_echoed(trial_and_events, column):
    trial, events = trial_and_events
    c = _cols(events)
    ev = events.copy()
    ev.loc[0, c[column]] = PNR
    with pytest.raises(DataValidationError) as err:
        harms_table(trial, ev, **c)
    text = str(err.value) + err.value.failures.to_csv()
    assert PNR not in text and "811218" not in text
