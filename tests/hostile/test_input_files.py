"""Issue 24.9-11: what an input file is, how big, and which encoding, checked before reading."""

import codecs
import os

import pytest

from peerstats.data.trial_spec import DataSource
from peerstats.io.readers import ReadError, read_table

TEXT = "subject,arm,note\nP1,peer,ångest och ämne\nP2,usual,öga\n"


def _src(path, encoding=None):
    return DataSource(path=path, encoding=encoding)


def test_utf16_with_bom_names_utf16_not_cp1252(tmp_path):
    f = tmp_path / "p.csv"
    f.write_bytes(codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"))
    with pytest.raises(ReadError, match="UTF-16 text") as err:
        read_table(_src(f), "participants")
    assert "cp1252" not in str(err.value) and "encoding: utf-16" in str(err.value)


def test_utf16_declared_as_such_is_read(tmp_path):
    f = tmp_path / "p.csv"
    f.write_bytes(codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"))
    t = read_table(_src(f, "utf-16"), "participants")
    assert list(t.data["note"]) == ["ångest och ämne", "öga"]


def test_utf8_declared_cp1252_is_refused_as_mojibake(tmp_path):
    f = tmp_path / "p.csv"
    f.write_bytes(TEXT.encode("utf-8"))
    with pytest.raises(ReadError, match="UTF-8 text .* encoding: cp1252"):
        read_table(_src(f, "cp1252"), "participants")


def test_real_cp1252_file_declared_cp1252_is_read(tmp_path):
    f = tmp_path / "p.csv"
    f.write_bytes(TEXT.encode("cp1252"))
    t = read_table(_src(f, "cp1252"), "participants")
    assert t.data.loc[0, "note"] == "ångest och ämne"


def test_ascii_file_declared_cp1252_is_fine(tmp_path):
    f = tmp_path / "p.csv"
    f.write_bytes(b"subject,arm\nP1,peer\n")
    assert len(read_table(_src(f, "cp1252"), "participants").data) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_named_pipe_is_not_a_regular_file(tmp_path):
    f = tmp_path / "p.csv"
    os.mkfifo(f)
    with pytest.raises(ReadError, match="not a regular file .*named pipe"):
        read_table(_src(f), "participants")


def test_a_named_pipe_in_the_spec_is_not_file_not_found(tmp_path):
    from peerstats.data.trial_spec import read_spec
    from peerstats.exceptions import SpecError

    (tmp_path / "assessments.csv").write_text("id,visit,y\n1,baseline,3\n")
    os.mkfifo(tmp_path / "participants.csv")
    spec = {
        "trial": {"name": "pipe (synthetic)", "design": "parallel", "synthetic": True},
        "data": {"participants": "participants.csv", "assessments": "assessments.csv"},
        "columns": {"subject": "id", "arm": "arm", "visit": "visit"},
        "arms": {"reference": "usual", "levels": ["usual", "peer"]},
        "visits": ["baseline", "post"],
        "outcomes": {"y": {"column": "y", "min": 0, "max": 60, "higher_is_better": True}},
    }
    with pytest.raises(SpecError) as err:
        read_spec(spec, base_dir=tmp_path)
    msg = str(err.value)
    assert "participants.csv is not a regular file" in msg and "file not found" not in msg
    assert str(tmp_path) not in msg  # the path as the spec wrote it (issue 24.3)


def test_a_file_over_the_size_guard_is_refused_before_reading(tmp_path, monkeypatch):
    f = tmp_path / "big.csv"
    with f.open("wb") as fh:  # sparse: 3 MiB on paper, nothing written
        fh.truncate(3 * 2**20)
    monkeypatch.setenv("PEERSTATS_MAX_INPUT_MB", "2")
    with pytest.raises(ReadError, match="3 MiB, more than the 2 MiB .*PEERSTATS_MAX_INPUT_MB"):
        read_table(_src(f), "participants")
