"""Split Based On… operators, with Studio's rules.

Every comparison trims surrounding white space and ignores case. Choices where
Studio's documentation is silent (documented here so flows behave predictably):

* ``equal_to`` / ``not_equal_to`` compare text, not numbers (``"03"`` is not
  ``"3"``): Studio documents them as text comparisons, and digit strings such as
  ZIP codes or PINs must keep their leading zeros.
* ``matches_any_of`` takes a comma-separated list; each item is trimmed and
  empty items are ignored.
* ``regex`` must match the whole tested string (Python ``re`` syntax,
  case-insensitive, ``.`` matches newlines); an invalid pattern never matches.
* ``less_than`` / ``greater_than`` compare numbers only: both sides must read as
  a decimal number (``-3``, ``+2.5``, ``.5``); anything else, letters included,
  does not match.
* Times are 24-hour ``HH:MM`` (a one-digit hour is accepted); dates are
  ``YYYY-MM-DD``, and a longer ISO timestamp is compared by its date.
* ``is_blank`` / ``is_not_blank`` ignore the condition's value.
* An unknown operator never matches (flow validation reports it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from functools import lru_cache

import regex

__all__ = ["OPERATORS", "evaluate"]


def _norm(text: str) -> str:
    return text.strip().lower()


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def _number(text: str) -> float | None:
    stripped = text.strip()
    return float(stripped) if _NUMBER.match(stripped) else None


def _equal(a: str, b: str) -> bool:
    return _norm(a) == _norm(b)


def _any_of(a: str, b: str) -> bool:
    tested = _norm(a)
    return any(tested == _norm(option) for option in b.split(",") if option.strip())


#: A flow author's pattern must not be able to stall the processor (catastrophic backtracking):
#: a match that takes longer than this counts as no match.
REGEX_TIMEOUT_SECONDS = 0.05


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> regex.Pattern[str] | None:
    try:
        return regex.compile(pattern.strip(), regex.IGNORECASE | regex.DOTALL | regex.VERSION0)
    except (regex.error, ValueError):
        return None


def _matches(a: str, b: str) -> bool:
    compiled = _regex(b)
    if compiled is None:
        return False
    try:
        return compiled.fullmatch(a.strip(), timeout=REGEX_TIMEOUT_SECONDS) is not None
    except TimeoutError:
        return False


def _compare(a: str, b: str, less: bool) -> bool:
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return False
    return x < y if less else x > y


_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _minutes(text: str) -> int | None:
    m = _TIME.match(text.strip())
    return int(m.group(1)) * 60 + int(m.group(2)) if m else None


def _time(a: str, b: str, before: bool) -> bool:
    x, y = _minutes(a), _minutes(b)
    if x is None or y is None:
        return False
    return x < y if before else x > y


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:$|[T ])")


def _day(text: str) -> date | None:
    stripped = text.strip()
    if not _DATE.match(stripped):
        return None
    try:
        return date.fromisoformat(stripped[:10])
    except ValueError:
        return None


def _date(a: str, b: str, before: bool) -> bool:
    x, y = _day(a), _day(b)
    if x is None or y is None:
        return False
    return x < y if before else x > y


OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "equal_to": _equal,
    "not_equal_to": lambda a, b: not _equal(a, b),
    "matches_any_of": _any_of,
    "does_not_match_any_of": lambda a, b: not _any_of(a, b),
    "is_blank": lambda a, b: not a.strip(),
    "is_not_blank": lambda a, b: bool(a.strip()),
    "regex": _matches,
    "contains": lambda a, b: _norm(b) in _norm(a),
    "does_not_contain": lambda a, b: _norm(b) not in _norm(a),
    "starts_with": lambda a, b: _norm(a).startswith(_norm(b)),
    "does_not_start_with": lambda a, b: not _norm(a).startswith(_norm(b)),
    "less_than": lambda a, b: _compare(a, b, less=True),
    "greater_than": lambda a, b: _compare(a, b, less=False),
    "is_before_time": lambda a, b: _time(a, b, before=True),
    "is_after_time": lambda a, b: _time(a, b, before=False),
    "is_before_date": lambda a, b: _date(a, b, before=True),
    "is_after_date": lambda a, b: _date(a, b, before=False),
}


def evaluate(operator: str, tested: str, value: str) -> bool:
    """Apply ``operator`` to the tested input and the condition's value; unknown operators never match."""
    fn = OPERATORS.get(operator)
    return bool(fn and fn(tested, value))
