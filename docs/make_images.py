"""Render the example CONSORT diagrams and trajectory plots shown in docs/images/.

Run: .venv/bin/python docs/make_images.py  (synthetic bundled data only).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import peerstats  # noqa: E402

OUT = Path(__file__).parent / "images"
PRIMARY = {"peer_recovery": "qpr15", "icbt_peer": "gad7", "icbt_feasibility": "gad7",
           "social_inclusion": "sis"}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, outcome in PRIMARY.items():
        trial = peerstats.datasets.load(name)
        result = peerstats.analyze(trial, outcome=outcome)
        flow = peerstats.consort(trial, fit=result.fit if trial.spec.design == "parallel" else None)
        flow.save(OUT / f"consort_{name}.png", dpi=110)
        ax = peerstats.plot_trajectories(trial, outcome, fit=result.fit)
        ax.figure.savefig(OUT / f"trajectories_{name}.png", dpi=110, bbox_inches="tight")
        plt.close("all")
        print(f"{name}: consort + trajectories written")


if __name__ == "__main__":
    main()
