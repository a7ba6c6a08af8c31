"""peerstats.figures: CONSORT diagram, trajectories, forest plot, distributions.

matplotlib is imported lazily inside the plotting functions; every function takes ``ax=None``
and returns the Axes (the CONSORT diagram returns its Figure).
"""

from peerstats.figures.consort import ConsortFlow, consort
from peerstats.figures.distributions import change_from_baseline, plot_attendance, plot_change
from peerstats.figures.forest import plot_forest
from peerstats.figures.palette import OKABE_ITO, arm_colors, arm_markers
from peerstats.figures.trajectories import observed_means, plot_trajectories

__all__ = [
    "OKABE_ITO",
    "ConsortFlow",
    "arm_colors",
    "arm_markers",
    "change_from_baseline",
    "consort",
    "observed_means",
    "plot_attendance",
    "plot_change",
    "plot_forest",
    "plot_trajectories",
]
