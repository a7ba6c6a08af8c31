"""Write cace_cluster_data.csv: the post-baseline QPR-15 of the bundled peer_recovery trial
(SYNTHETIC), one row per participant and visit, with receipt (attended >= 5 of the sessions,
peer arm; 0 in usual care) and the cluster: the delivery group in the group-delivered peer arm,
an anonymous code of one's own in usual care (partially nested design).

Receipt and clusters are computed here with plain pandas from the raw files (not with
peerstats' compliance or cluster code). No participant identifier is written.
Run: .venv/bin/python tests/reference/r_cace_cluster/make_data.py (then Rscript cace_cluster.R)
"""

from pathlib import Path

import pandas as pd

import peerstats

here = Path(__file__).parent
raw = Path(peerstats.datasets.path("peer_recovery")).parent
sessions = pd.read_csv(raw / "sessions.csv")
attended = sessions.groupby("id")["attended"].sum()

trial = peerstats.datasets.load("peer_recovery")
rand = trial.randomised.set_index(trial.randomised["subject"].astype(str))
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
group = rand["group"].reindex(post["subject"].astype(str)).to_numpy()
own = {s: f"solo{i}" for i, s in enumerate(sorted(post["subject"].astype(str).unique()))}
post["cluster"] = [
    own[s] if pd.isna(g) else f"group{g}" for s, g in zip(post["subject"].astype(str), group)
]
post = post.dropna(subset=["qpr15", "qpr15_baseline"])
post = post.drop(columns="subject")
post.to_csv(here / "cace_cluster_data.csv", index=False, lineterminator="\n")
print(len(post), "rows", post["cluster"].nunique(), "clusters")
