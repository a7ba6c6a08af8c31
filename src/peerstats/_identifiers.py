"""What direct identifiers look like, and how to show a value without echoing one.

A bottom layer (standard library only): :mod:`peerstats.data.validation`, the instruments and the
command line all mask values through these functions, so none of them imports another for it.

Recognised identifiers
----------------------
- Swedish personnummer and samordningsnummer (day + 60), with or without century, written
  ``YYMMDD-NNNC``, ``YYMMDD+NNNC``, ``YYMMDDNNNC`` or ``YYMMDD NNNC``, with a valid Luhn digit;
- Danish CPR numbers ``DDMMYY-NNNN`` (valid date; modulus 11 is not required of numbers issued
  since 2007; without the hyphen they are *weak*, as an ordinary 10-digit number may take that
  form);
- Norwegian fødselsnummer and D-nummer (day + 40) and H-nummer (month + 40), 11 digits
  ``DDMMYYIIIKK`` with both modulus-11 check digits (Skatteetaten's algorithm) and a valid date;
- Finnish henkilötunnus ``DDMMYYCZZZQ``: century sign ``+`` (1800s), ``-``/``Y X W V U`` (1900s),
  ``A``/``B C D E F`` (2000s), the check character ``DDMMYYZZZ mod 31`` from
  ``0123456789ABCDEFHJKLMNPRSTUVWXY`` (Digital and Population Data Services Agency);
- Icelandic kennitala ``DDMMYY-RRCM`` (day + 40 for companies), the modulus-11 check digit C
  (weights 3 2 7 6 5 4 3 2) and the century digit M (8, 9 or 0), a valid date;
- e-mail addresses (non-ASCII local parts and domains too: ``anna@förening.se``);
- phone numbers: international ``+46 70 123 45 67`` (strong), domestic ``070-123 45 67`` and
  Danish ``12 34 56 78`` (weak).

Each may stand alone or inside free text (``moved away, new phone 070-123 45 67``).
Masking replaces every digit of a personnummer or CPR number (the date of birth too), all but
the first three characters of a phone number, and the local part of an e-mail address but its
first character.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "looks_identifying",
    "birth_date_column",
    "find_identifiers",
    "mask_identifiers",
    "mask_value",
    "escape_controls",
    "CONTROL_CHARS",
    "spec_identifier_problems",
]

_PNR = re.compile(r"^(\d{2})?(\d{2})(\d{2})(\d{2})([-+ ]?)(\d{4})$")
_CPR = re.compile(r"^(\d{2})(\d{2})(\d{2})(-?)(\d{4})$")
_EMAIL = re.compile(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}")
_PHONE_CHARS = re.compile(r"^[\d\s\-()+/]+$")
_DATE_LIKE = re.compile(r"^(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})$")
_DK_PHONE = re.compile(r"^\d{2}( \d{2}){3}$")
_CANDIDATE = re.compile(r"@|\d(?:\D{0,2}\d){7}")
_FNR = re.compile(r"^(\d{2})(\d{2})(\d{2})(\d{3})(\d)(\d)$")
_HETU = re.compile(r"(?<![\w+-])(\d{2})(\d{2})(\d{2})([-+ABCDEFUVWXY])(\d{3})([0-9A-Y])(?!\w)")
_HETU_CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"
_HETU_CENTURY = {"+": 1800, "-": 1900, "U": 1900, "V": 1900, "W": 1900, "X": 1900, "Y": 1900,
                 "A": 2000, "B": 2000, "C": 2000, "D": 2000, "E": 2000, "F": 2000}
_TOKEN = re.compile(r"\+?\(?\d[\d ()/-]{6,}\d")

#: control characters refused in text cells (C0 but tab, LF, CR; DEL; C1; bidirectional
#: overrides and isolates, which make a text display differently from what it holds)
CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _valid_date(years: Iterable[int], month: int, day: int) -> bool:
    for y in years:
        try:
            _dt.date(y, month, day)
            return True
        except ValueError:
            continue
    return False


def _is_personnummer(s: str) -> bool:
    """Swedish personnummer or samordningsnummer (day + 60) with a valid Luhn check digit."""
    m = _PNR.match(s)
    if not m:
        return False
    century, yy, mm, dd, _sep, last4 = m.groups()
    day = int(dd) - 60 if int(dd) > 60 else int(dd)
    years = [int(century + yy)] if century else [1900 + int(yy), 2000 + int(yy)]
    if not _valid_date(years, int(mm), day):
        return False
    return _luhn_ok(yy + mm + dd + last4)


def _is_cpr(s: str) -> tuple[bool, bool]:
    """(matches, has_hyphen) for a Danish CPR number DDMMYY-XXXX with a valid date."""
    m = _CPR.match(s)
    if not m:
        return False, False
    dd, mm, yy, hyphen, _ = m.groups()
    ok = _valid_date([1900 + int(yy), 2000 + int(yy)], int(mm), int(dd))
    return ok, bool(hyphen)


def _is_fodselsnummer(s: str) -> bool:
    """Norwegian fødselsnummer, D-nummer (day + 40) or H-nummer (month + 40): 11 digits, a
    valid date and both modulus-11 check digits."""
    m = _FNR.match(s)
    if not m:
        return False
    dd, mm, yy = int(m.group(1)), int(m.group(2)), int(m.group(3))
    day = dd - 40 if dd > 40 else dd
    month = mm - 40 if mm > 40 else mm
    if not _valid_date([1900 + yy, 2000 + yy, 1800 + yy], month, day):
        return False
    d = [int(c) for c in s]
    k1 = 11 - sum(w * x for w, x in zip((3, 7, 6, 1, 8, 9, 4, 5, 2), d[:9], strict=True)) % 11
    k1 = 0 if k1 == 11 else k1
    k2 = 11 - sum(w * x for w, x in zip((5, 4, 3, 2, 7, 6, 5, 4, 3, 2), d[:10], strict=True)) % 11
    k2 = 0 if k2 == 11 else k2
    return k1 == d[9] and k2 == d[10]


def _is_kennitala(s: str) -> bool:
    """Icelandic kennitala DDMMYY(-)RRCM: a valid date (day + 40 for companies), the
    modulus-11 check digit C and the century digit M in 8, 9, 0."""
    m = _CPR.match(s)
    if not m:
        return False
    digits = re.sub(r"\D", "", s)
    dd, mm, yy = int(digits[:2]), int(digits[2:4]), int(digits[4:6])
    century = {"8": 1800, "9": 1900, "0": 2000}.get(digits[9])
    if century is None or not _valid_date([century + yy], mm, dd - 40 if dd > 40 else dd):
        return False
    rest = 11 - sum(w * int(x) for w, x in zip((3, 2, 7, 6, 5, 4, 3, 2), digits[:8], strict=True)) % 11
    return (0 if rest == 11 else rest) == int(digits[8])


def is_henkilotunnus(s: str) -> bool:
    """Finnish henkilötunnus DDMMYYCZZZQ: century sign, valid date, mod-31 check character."""
    m = _HETU.fullmatch(s.strip())
    if not m:
        return False
    dd, mm, yy, sign, zzz, check = m.groups()
    year = _HETU_CENTURY[sign] + int(yy)
    if not _valid_date([year], int(mm), int(dd)):
        return False
    return _HETU_CHECK[int(dd + mm + yy + zzz) % 31] == check


def _phone(s: str) -> str | None:
    """'strong', 'weak' or None for a phone-number-like value."""
    if not _PHONE_CHARS.match(s) or any(_DATE_LIKE.match(p) for p in (s, *s.split())):
        return None  # a date, or a date and time ('01-02-2020 08:30')
    digits = re.sub(r"\D", "", s)
    if not 8 <= len(digits) <= 15:
        return None
    if s.startswith("+"):
        return "strong"
    if s.startswith("0") or s.startswith("(0") or _DK_PHONE.match(s):
        return "weak"
    return None


def _classify(tok: str) -> tuple[str, bool] | None:
    """Kind and strength of one number-like token standing alone."""
    if _is_personnummer(tok):
        return "personnummer", True
    if _is_fodselsnummer(tok):
        return "fødselsnummer", True
    if _is_kennitala(tok):
        return "kennitala", "-" in tok
    cpr, hyphen = _is_cpr(tok)
    if cpr:
        return "CPR number", hyphen
    ph = _phone(tok)
    if ph:
        return "phone number", ph == "strong"
    return None


def find_identifiers(value: str) -> list[tuple[int, int, str, bool]]:
    """Spans ``(start, end, kind, strong)`` of the identifiers in ``value``, left to right."""
    s = value
    if not _CANDIDATE.search(s):  # fast path: no '@' and fewer than 8 digits close together
        return []
    found: list[tuple[int, int, str, bool]] = []
    stripped = s.strip()
    whole = _classify(stripped)
    if whole is not None:
        a = s.index(stripped)
        return [(a, a + len(stripped), *whole)]
    for m in _EMAIL.finditer(s):
        found.append((m.start(), m.end(), "e-mail address", True))
    for m in _HETU.finditer(s):
        if is_henkilotunnus(m.group(0)):
            found.append((m.start(), m.end(), "henkilötunnus", True))
    for m in _TOKEN.finditer(s):
        if any(a < m.end() and m.start() < b for a, b, _, _ in found):
            continue
        tok = m.group(0)
        # a token may run two numbers together ('score 3 070 123 45 67'): try the whole
        # token, then shorter runs of its space-separated parts, longest first
        parts = [(p.start(), p.end()) for p in re.finditer(r"\S+", tok)]
        hit = None
        for width in range(len(parts), 0, -1):
            for i in range(len(parts) - width + 1):
                a, b = parts[i][0], parts[i + width - 1][1]
                sub = tok[a:b].strip("()/-")
                if len(re.sub(r"\D", "", sub)) < 8:
                    continue
                kind = _classify(sub)
                if kind is not None:
                    off = tok.index(sub, a)
                    hit = (m.start() + off, m.start() + off + len(sub), *kind)
                    break
            if hit:
                break
        if hit:
            found.append(hit)
    return sorted(found)


def looks_identifying(value: str) -> tuple[str, bool] | None:
    """Classify a cell: ``(kind, strong)`` when it holds an identifier, else ``None``.

    Kinds: ``personnummer`` (Swedish personnummer/samordningsnummer with valid Luhn digit),
    ``CPR number`` (Danish, valid date), ``fødselsnummer`` (Norwegian, with D- and H-numbers),
    ``henkilötunnus`` (Finnish), ``kennitala`` (Icelandic), ``e-mail address``,
    ``phone number``, alone or inside
    a text. ``strong`` is False when every identifier found has a form that ordinary numbers
    may take by chance (a CPR number without hyphen, a domestic phone number); the first
    strong one is reported when there is one.
    """
    spans = find_identifiers(value)
    if not spans:
        return None
    strong = [sp for sp in spans if sp[3]]
    first = strong[0] if strong else spans[0]
    return first[2], first[3]


def _mask_span(text: str, kind: str) -> str:
    if kind == "e-mail address":
        local, _, domain = text.partition("@")
        return local[:1] + "***@" + domain
    if kind == "phone number":
        return text[:3] + re.sub(r"\d", "*", text[3:])
    if kind == "henkilötunnus":
        return re.sub(r"[0-9A-Y+-]", "*", text)  # the century sign and check character too
    return re.sub(r"\d", "*", text)  # national ids: the date of birth too


def escape_controls(text: str) -> str:
    """``text`` with control characters written as escapes (``\\x00``, ``\\u202e``)."""
    return CONTROL_CHARS.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def mask_identifiers(text: str) -> str:
    """``text`` with every identifier in it masked (nothing else changed, nothing cut)."""
    spans = find_identifiers(text)
    for a, b, kind, _strong in reversed(spans):
        text = text[:a] + _mask_span(text[a:b], kind) + text[b:]
    return text


def mask_value(value: Any, limit: int = 40) -> Any:
    """Return ``value`` safe to show: identifiers masked (``'********-****'``,
    ``'a***@example.org'``), control characters escaped, long texts shortened to ``limit``
    characters; other values unchanged."""
    if value is None or not isinstance(value, str):
        return value
    s = escape_controls(mask_identifiers(value.strip()))
    if limit and len(s) > limit:
        s = s[: limit - 3] + "..."
    return s


#: headers that name a date of birth (English, Swedish, Danish/Norwegian, Finnish, German)
_BIRTH_HEADER = re.compile(
    r"f[öo]delse(datum|dag)|f[øo]dsels(dato|dag)|syntym[äa](aika|p[äa]iv[äa])|"
    r"geburts(datum|tag)|date[\s_.-]*of[\s_.-]*birth|birth[\s_.-]*(date|day)|(^|[\W_])dob($|[\W_])",
    re.IGNORECASE,
)


def birth_date_column(header: str, values: Iterable[Any]) -> bool:
    """True when a column is a date of birth: its header names one (``födelsedatum``,
    ``fødselsdato``, ``date_of_birth``, ``dob``, ...) and at least half its values are dates.
    With a personal number it identifies a person; only age (or an age band) may be shown."""
    if not _BIRTH_HEADER.search(str(header)):
        return False
    present = [str(v).strip() for v in values if v is not None and str(v).strip()]
    dates = sum(bool(_DATE_LIKE.match(v[:10])) for v in present)
    return bool(present) and dates >= 0.5 * len(present)


def cap_text(text: str, limit: int = 2000) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f" ... [{len(text) - limit} more characters not shown]"


#: trial registration numbers (NCT04639167, ISRCTN26008944, ...) are not personal identifiers
_REGISTRATION = re.compile(
    r"\b(?:NCT|ISRCTN|ACTRN|ChiCTR|CTRI|DRKS|EUCTR|EudraCT|ISRCTN|JPRN|KCT|NTR|PACTR|"
    r"SLCTR|TCTR|IRCT|RBR|UMIN)[\s:-]?[\d-]{6,}\b",
    re.IGNORECASE,
)
#: spec keys whose values are file paths: masked where they are shown, not refused
_PATH_KEYS = frozenset({"path", "trial", "records", "dictionary", "spec", "data"})


def spec_identifier_problems(raw: Any, where: str = "") -> list[str]:
    """Spec problems for every string (value or key) of a spec that holds an identifier.

    A spec's texts (title, description, labels, names) are written into every output, so an
    identifier typed there would reach the report, results.json, figures and messages. Each
    problem names the field and the kind of identifier, never the value (issue 24.1). Control
    characters (bidirectional overrides included) are problems too (issue 24.12). File
    paths are left to the output layer, which masks them. Trial registration numbers are not
    identifiers.
    """
    out: list[str] = []
    field = where or "(top level)"

    def check(text: str, what: str) -> None:
        ctrl = CONTROL_CHARS.search(text)
        if ctrl is not None:  # issue 24.12: a right-to-left override would reach every figure
            out.append(
                f"{what}: holds the control character U+{ord(ctrl.group(0)):04X}, which makes "
                "a text display differently from what it holds: remove it"
            )
        hit = looks_identifying(_REGISTRATION.sub(" ", text))
        if hit is not None:
            out.append(
                f"{what}: holds what looks like {'an' if hit[0][0] in 'aeiou' else 'a'} "
                f"{hit[0]} (not shown); a spec's texts are "
                "written into every output: remove it"
            )

    if isinstance(raw, str):
        check(raw, field)
    elif isinstance(raw, dict):
        for k, v in raw.items():
            key = str(k)
            sub = f"{where}.{key}" if where else key
            check(key, f"{field} (a key)")
            if key in _PATH_KEYS and (isinstance(v, str) or key == "data"):
                continue
            out += spec_identifier_problems(v, sub)
    elif isinstance(raw, list | tuple):
        for i, v in enumerate(raw):
            out += spec_identifier_problems(v, f"{where}[{i}]")
    return out
