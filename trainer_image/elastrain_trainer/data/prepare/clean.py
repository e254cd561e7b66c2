"""Cleaning of one document: Unicode normalisation, quality filters and the exact-duplicate digest.

All pure functions of the text and the thresholds. The filters follow the spirit of the Gopher
rules (Rae et al. 2021), with thresholds as ``elastrain data prepare`` flags:

- too_short / too_long: fewer than ``min_chars`` or more than ``max_chars`` characters after
  normalisation;
- repeated_lines: more than ``max_dup_line_fraction`` of the document's characters are in lines
  that repeat an earlier line of the same document (boilerplate, scraped menus);
- repeated_ngrams: the most frequent word 2-gram covers more than ``max_top_ngram_fraction`` of
  the document's word characters (spam, "buy now buy now"); only for documents of at least
  ``NGRAM_MIN_WORDS`` words.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Literal

FilterReason = Literal["too_short", "too_long", "repeated_lines", "repeated_ngrams"]
FILTER_REASONS: tuple[FilterReason, ...] = ("too_short", "too_long", "repeated_lines", "repeated_ngrams")
#: The 2-gram filter needs this many words to say anything.
NGRAM_MIN_WORDS = 10

_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUNS = re.compile(r"\n{3,}")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class FilterOptions:
    """Thresholds of the quality filters (see the module docstring)."""

    min_chars: int = 64
    max_chars: int = 1_000_000
    max_dup_line_fraction: float = 0.3
    max_top_ngram_fraction: float = 0.2


def normalize(text: str) -> str:
    """NFKC, Unix line ends, no trailing spaces on lines, at most one blank line in a row, stripped."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_RUNS.sub("\n\n", text).strip()


def exact_digest(normalized: str) -> bytes:
    """sha256 of a normalised document: equal digests are exact duplicates."""
    return hashlib.sha256(normalized.encode("utf-8")).digest()


def dup_line_fraction(text: str) -> float:
    """Fraction of the characters of non-empty lines that are in lines repeating an earlier line."""
    seen: set[str] = set()
    total = repeated = 0
    for line in (raw.strip() for raw in text.split("\n")):
        if not line:
            continue
        total += len(line)
        if line in seen:
            repeated += len(line)
        seen.add(line)
    return repeated / total if total else 0.0


def top_ngram_fraction(text: str, n: int = 2) -> float:
    """Fraction of word characters covered by the most frequent word n-gram (0 below NGRAM_MIN_WORDS words)."""
    words = _WORD.findall(text.lower())
    if len(words) < NGRAM_MIN_WORDS:
        return 0.0
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    gram, count = grams.most_common(1)[0]
    return count * sum(len(w) for w in gram) / sum(len(w) for w in words)


def decide_filter(normalized: str, options: FilterOptions) -> FilterReason | None:
    """Why a normalised document is dropped, or None to keep it."""
    if len(normalized) < options.min_chars:
        return "too_short"
    if len(normalized) > options.max_chars:
        return "too_long"
    if dup_line_fraction(normalized) > options.max_dup_line_fraction:
        return "repeated_lines"
    if top_ngram_fraction(normalized) > options.max_top_ngram_fraction:
        return "repeated_ngrams"
    return None
