"""Where instruments are found: shipped definitions, the search path, and registered ones."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from peerstats.exceptions import SpecError
from peerstats.instruments._definition import (
    Instrument,
    instrument_from_dict,
    load_instrument_file,
    normalise_name,
)

__all__ = ["get_instrument", "list_instruments", "register", "unregister", "ENV_PATH"]

#: Environment variable with extra directories of instrument YAML files (os.pathsep-separated).
ENV_PATH = "PEERSTATS_INSTRUMENT_PATH"

_registered: dict[str, Instrument] = {}
_builtin: dict[str, Instrument] | None = None


def _load_dir(files) -> dict[str, Instrument]:
    out: dict[str, Instrument] = {}
    for entry in sorted(files, key=lambda f: f.name):
        if entry.name.endswith((".yaml", ".yml")):
            inst = load_instrument_file(entry)
            _add(out, inst)
    return out


def _add(table: dict[str, Instrument], inst: Instrument, *, overwrite: bool = False) -> None:
    keys = {normalise_name(inst.name), *(normalise_name(a) for a in inst.aliases)}
    if not overwrite:
        for key in sorted(keys):
            old = table.get(key)
            if old is None or old is inst:
                continue
            if old.name == inst.name:
                raise SpecError(
                    f"instrument {inst.name!r} is already defined ({old.source or 'registered'}); "
                    "pass overwrite=True to replace it"
                )
            raise SpecError(
                f"name or alias {key!r} of instrument {inst.name!r} is already used by {old.name!r}"
            )
    for key in keys:
        table[key] = inst


def _builtins() -> dict[str, Instrument]:
    global _builtin
    if _builtin is None:
        folder = resources.files("peerstats").joinpath("data_schemas/instruments")
        _builtin = _load_dir(folder.iterdir())
    return _builtin


def _search_path() -> dict[str, Instrument]:
    out: dict[str, Instrument] = {}
    for folder in filter(None, os.environ.get(ENV_PATH, "").split(os.pathsep)):
        path = Path(folder)
        if not path.is_dir():
            raise SpecError(f"{ENV_PATH} lists {folder!r}, which is not a directory")
        for inst in _load_dir(path.iterdir()).values():
            _add(out, inst, overwrite=True)
    return out


def _all() -> dict[str, Instrument]:
    table = dict(_builtins())
    for source in (_search_path(), _registered):
        for inst in {id(i): i for i in source.values()}.values():
            # user definitions shadow shipped ones of the same name
            for key in [k for k, v in table.items() if v.name == inst.name]:
                del table[key]
            _add(table, inst, overwrite=True)
    return table


def get_instrument(name: str | Instrument) -> Instrument:
    """Look up an instrument by name or alias (case, spaces and dashes ignored).

    Parameters
    ----------
    name
        E.g. ``"GAD-7"``, ``"gad7"``, ``"QPR-15"``; an :class:`Instrument` is returned as is.

    Returns
    -------
    Instrument

    Raises
    ------
    SpecError
        If no instrument has that name; the message lists the known instruments.
    """
    if isinstance(name, Instrument):
        return name
    if not isinstance(name, str):
        raise SpecError(f"instrument must be a name or an Instrument, got {type(name).__name__}")
    table = _all()
    inst = table.get(normalise_name(name))
    if inst is None:
        known = ", ".join(list_instruments())
        raise SpecError(f"{name!r} is not a known instrument; instruments are {known}")
    return inst


def list_instruments() -> list[str]:
    """Names of all available instruments (shipped, on the search path, registered), sorted."""
    return sorted({inst.name for inst in _all().values()}, key=str.casefold)


def register(instrument: Instrument | str | Path | dict, *, overwrite: bool = False) -> Instrument:
    """Make a user-defined instrument available to :func:`get_instrument` and trial specs.

    Parameters
    ----------
    instrument
        An :class:`Instrument`, a path to a YAML definition, or a definition mapping.
    overwrite
        Replace an already registered instrument with the same name or alias. A registered
        instrument always shadows a shipped one of the same name.

    Returns
    -------
    Instrument
        The registered instrument.

    Raises
    ------
    SpecError
        If the definition is invalid or its name/alias is taken (and ``overwrite`` is False).
    """
    if isinstance(instrument, dict):
        instrument = instrument_from_dict(instrument)
    elif isinstance(instrument, str | Path):
        instrument = load_instrument_file(instrument)
    elif not isinstance(instrument, Instrument):
        raise SpecError(
            "register() takes an Instrument, a YAML path or a definition mapping, "
            f"got {type(instrument).__name__}"
        )
    staged = dict(_registered)
    if overwrite:
        for key in [k for k, v in staged.items() if v.name == instrument.name]:
            del staged[key]
    _add(staged, instrument, overwrite=overwrite)
    _registered.clear()
    _registered.update(staged)
    return instrument


def unregister(name: str) -> None:
    """Remove a registered instrument (shipped definitions cannot be removed).

    Raises
    ------
    SpecError
        If no registered instrument has that name or alias.
    """
    inst = _registered.get(normalise_name(name))
    if inst is None:
        raise SpecError(
            f"{name!r} is not a registered instrument; registered are "
            f"{sorted({i.name for i in _registered.values()})}"
        )
    for key in [k for k, v in _registered.items() if v is inst]:
        del _registered[key]
