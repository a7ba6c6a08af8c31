"""Issue 24.10: an --out that cannot be created is a spec error before any model runs."""

from hostile_corpus import copy_trial

from peerstats.cli import main


def test_out_under_a_file_fails_before_the_analysis_with_exit_2(tmp_path, capsys, monkeypatch):
    import importlib

    run_module = importlib.import_module("peerstats.pipeline.run")

    def must_not_run(*args, **kwargs):
        raise AssertionError("the analysis ran before --out was checked")

    monkeypatch.setattr(run_module, "run_analysis", must_not_run)
    trial = copy_trial(tmp_path / "trial")
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    code = main(["run", str(trial.analysis), "--out", str(blocker / "sub" / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "is a file, not a folder" in err and "Traceback" not in err
