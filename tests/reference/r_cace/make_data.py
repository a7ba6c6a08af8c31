"""Write cace_data.csv: the post-baseline QPR-15 of the bundled peer_recovery trial (SYNTHETIC),
one row per participant and visit, with the receipt indicators the CACE tests use.

Receipt is computed here with plain pandas from the raw sessions file (not with peerstats'
compliance code): received5 = attended at least 5 of the 10 sessions (peer arm; 0 in usual
care); received_col = the participants file's `received` column (peer arm; 0 in usual care).
Run: .venv/bin/python tests/reference/r_cace/make_data.py  (then Rscript cace_reference.R)
"""

from pathlib import Path

import pandas as pd

import peerstats

here = Path(__file__).parent
raw = Path(peerstats.datasets.path("peer_recovery")).parent
sessions = pd.read_csv(raw / "sessions.csv")
attended = sessions.groupby("id")["attended"].sum()
participants = pd.read_csv(raw / "participants.csv")
participants = participants[participants["randomised"] == 1].set_index("id")

trial = peerstats.datasets.load("peer_recovery")
a = trial.assessments
post = a[a["visit"].astype(str) != "baseline"][
    ["subject", "visit", "arm", "site", "qpr15", "qpr15_baseline"]
].copy()
post["visit"] = post["visit"].astype(str)
post["arm"] = post["arm"].astype(str)
peer = post["arm"] == "peer"
post["received5"] = ((attended.reindex(post["subject"]).fillna(0).to_numpy() >= 5) & peer).astype(
    int
)
post["received_col"] = (
    (participants["received"].reindex(post["subject"]).fillna(0).to_numpy() == 1) & peer
).astype(int)
post = post.dropna(subset=["qpr15", "qpr15_baseline"])
post = post.drop(columns="subject")  # no identifier in the reference data
post.to_csv(here / "cace_data.csv", index=False, lineterminator="\n")
print(len(post), "rows")
