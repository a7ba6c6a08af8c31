"""Issue 24: the round-2 hostile corpus through ``validate`` and ``run``, in process."""

from __future__ import annotations

import pytest
from hostile_corpus import Case, copy_trial
from hostile_corpus2 import CASES2
from test_corpus import _call, _everything_written


@pytest.mark.parametrize("case", CASES2, ids=[c.name for c in CASES2])
def test_case(case: Case, tmp_path, capsys):
    trial = copy_trial(tmp_path / "trial")
    case.edit(trial)
    out = tmp_path / "outputs"
    out.mkdir()
    code, printed = _call(["validate", str(trial.spec), "--failures", str(out / "f.csv")], capsys)
    assert code == case.codes["validate"], printed[-3000:]
    code, text = _call(["run", str(trial.analysis), "--out", str(out / "result"), "-q"], capsys)
    assert code == case.codes["run"], text[-3000:]
    printed += text
    if code != 0:
        assert not (out / "result").exists()
        for s in case.must_say:
            assert s in text, (s, text[-3000:])
    assert "Traceback" not in printed
    everything = printed + _everything_written(out)
    for s in case.forbidden:
        assert s not in everything, s
