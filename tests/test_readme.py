"""The README's Python example runs as written (so the first thing a user copies works)."""

from pathlib import Path

import matplotlib
import pytest

import peerstats

matplotlib.use("Agg")

README = Path(__file__).parents[1] / "README.md"


def test_readme_python_example_runs():
    text = README.read_text()
    start = text.index("```python") + len("```python")
    code = text[start : text.index("```", start)]
    namespace: dict = {}
    # analyze() says which rows it leaves out (2 participants have no baseline QPR-15)
    with pytest.warns(peerstats.DataWarning, match="without a baseline 'qpr15' were excluded"):
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    fit, flow, result = namespace["fit"], namespace["flow"], namespace["result"]
    contrasts = fit.contrasts(arm="arm", by="visit")
    assert list(contrasts["visit"].astype(str)) == ["post", "fu3"]
    # CONSORT reconciled with the model: analysed n per arm equals the subjects the model used
    analysed = flow.counts.query("box == 'analysed'").set_index("arm")["n"]
    assert int(analysed.sum()) == result.fit.n_subjects
