"""Prose for a generated manuscript: lists, capitals, plurals, decimals, and the check that a text has no
digit outside its placeholders."""

from __future__ import annotations

import math
import re

from analysis.paper import CONVENTIONS
from analysis.text import PLACEHOLDER

# a number in a declared text, not part of a word or of a longer number
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w]|\.\d)")
WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")


def placeholder(name: str, style: str) -> str:
    return f"{{{{ {name} | {style} }}}}"


def join(items) -> str:
    items = [item for item in items if item]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def lower_first(text: str) -> str:
    """The first letter in lower case, for a label inside a sentence; not for an acronym ("MAI change")
    or a name in title case ("Clinical Frailty Scale")."""
    words = text.split()
    if not words or not words[0][:1].isupper() or words[0][1:2].isupper():
        return text
    return text if any(w[:1].isupper() for w in words[1:]) else text[:1].lower() + text[1:]


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def singular(unit: str) -> str:
    if unit.endswith("ies"):
        return unit[:-3] + "y"
    return unit[:-1] if unit.endswith("s") and not unit.endswith("ss") else unit


def in_words(n: int) -> str:
    return WORDS[n] if n < len(WORDS) else "many"


def sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def prompt(text: str) -> str:
    return f"> *For the authors:* {text}"


def typed(text: str) -> bool:
    """Whether a text holds a digit outside its placeholders and the conventions ("95%")."""
    text = PLACEHOLDER.sub("", text)
    for convention in CONVENTIONS:
        text = text.replace(convention, "")
    return bool(re.search(r"\d", text))


def decimals(values) -> int:
    """Decimals that show these values as they are (none for whole numbers), at most two (three for
    small values)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    for digits in (0, 1, 2):
        if all(abs(v - round(v, digits)) < 1e-9 for v in values):
            return digits
    return 2 if max(abs(v) for v in values) >= 1 else 3
