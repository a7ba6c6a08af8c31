"""The data layer: the trial spec, loading, validation and the validated :class:`Trial`.

Where your data are checked, in one place:

``trial_spec.py``
    :class:`TrialSpec` and :func:`read_spec`: the trial spec (what was collected, where it is,
    which values are valid), read from YAML and checked against
    ``data_schemas/trial-spec.schema.json``. Not the analysis spec (the SAP), which is
    :mod:`peerstats.pipeline.analysis_spec`.
``load.py``
    :func:`load_trial`: spec + files -> validated :class:`Trial` (raises
    :class:`~peerstats.exceptions.DataValidationError` listing every problem).
``validation.py``
    :func:`validate`: reads the files (:mod:`peerstats.io`), runs every check table by table
    and collects every failure into a :class:`ValidationReport`.
``checks/``
    the checks, by what they check: ``structure`` (tables, columns, keys), ``values``
    (numbers, ranges, yes/no, labels, covariates), ``identifiers`` (privacy) and
    ``consistency`` (across tables).
``trial.py``
    the :class:`Trial` class and its assembly from checked frames.

Readers (:mod:`peerstats.io`) and instrument definitions and scoring
(:mod:`peerstats.instruments`) are sibling packages of the same layer; the privacy helpers
(:mod:`peerstats._identifiers`) sit below every layer. The data layer never imports models,
missing-data, design, describe, figures or the pipeline (``tests/test_import_cycles.py``).

This package imports nothing on import; use the public names from :mod:`peerstats`
(``peerstats.load_trial``, ``peerstats.validate``, ``peerstats.read_spec``, ...).
"""
