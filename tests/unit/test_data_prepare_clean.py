"""data prepare's pure parts: normalisation, the quality filters, exact digests, MinHash near duplicates."""

from __future__ import annotations

import random

import pytest
from tests.textdata import corpus_documents

from elastrain_trainer.data.prepare import (
    FilterOptions,
    NearDuplicateIndex,
    NearOptions,
    decide_filter,
    exact_digest,
    minhash_signature,
    normalize,
)
from elastrain_trainer.data.prepare.clean import dup_line_fraction, top_ngram_fraction
from elastrain_trainer.data.prepare.near import shingles

DOC = corpus_documents()[0]


def test_normalize_applies_nfkc_and_tidies_whitespace() -> None:
    assert normalize("\ufb01ne \uff21\u2460 caf\u0065\u0301") == "fine A1 caf\u00e9"  # ligature, fullwidth, combining
    assert normalize("  a  \r\nb\t\r\n\n\n\n\nc  ") == "a\nb\n\nc"


def test_exact_digest_sees_through_what_normalisation_removes() -> None:
    assert exact_digest(normalize("caf\u00e9 au lait\r\n")) == exact_digest(normalize("cafe\u0301 au lait"))
    assert exact_digest(normalize("caf\u00e9 au lait")) != exact_digest(normalize("cafe au lait"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("short", "too_short"),
        ("x" * 101, "too_long"),
        ("menu home about\n" * 4 + "one real sentence here", "repeated_lines"),
        ("buy now " * 12, "repeated_ngrams"),
        (DOC, None),
    ],
)
def test_each_filter_names_its_reason(text: str, reason: str | None) -> None:
    options = FilterOptions(min_chars=10, max_chars=100 if reason == "too_long" else 10_000)
    assert decide_filter(normalize(text), options) == reason


def test_filter_thresholds_are_the_flags_values() -> None:
    text = "alpha beta\nalpha beta\ngamma delta epsilon"  # the repeat holds 10 of 39 line characters
    assert dup_line_fraction(text) == pytest.approx(10 / 39)
    assert decide_filter(text, FilterOptions(min_chars=1, max_dup_line_fraction=0.25)) == "repeated_lines"
    assert decide_filter(text, FilterOptions(min_chars=1, max_dup_line_fraction=0.26)) is None
    words = "one two " * 3 + "three four five six"  # 'one two' 3 times: 18 of 34 word characters
    assert top_ngram_fraction(words) == pytest.approx(18 / 34)
    assert top_ngram_fraction("one two " * 4) == 0.0  # fewer than 10 words: not judged


def test_the_corpus_passes_the_default_filters() -> None:
    assert [decide_filter(normalize(d), FilterOptions()) for d in corpus_documents()] == [None] * 60


def near_duplicate_of(text: str) -> str:
    words = text.split()
    words[len(words) // 2] = "CHANGED"
    return " ".join(words) + "!"


def test_minhash_signatures_are_deterministic_and_seeded() -> None:
    options = NearOptions()
    a, b = minhash_signature(DOC, options), minhash_signature(DOC, options)
    assert a.tolist() == b.tolist() and len(a) == options.num_perm
    assert minhash_signature(DOC, NearOptions(seed=2)).tolist() != a.tolist()


def test_the_index_drops_near_duplicates_and_keeps_distinct_documents() -> None:
    options = NearOptions()
    index = NearDuplicateIndex(options)
    docs = corpus_documents()
    assert all(index.admit(minhash_signature(d, options)) for d in docs)  # the corpus has no near duplicates
    assert not index.admit(minhash_signature(near_duplicate_of(docs[7]), options))
    assert not index.admit(minhash_signature(docs[3].upper(), options))  # case and spacing do not count
    assert index.admit(minhash_signature(docs[7][: len(docs[7]) // 2] + docs[8][: len(docs[8]) // 2], options))
    assert index.count == len(docs) + 1


def test_lsh_candidates_below_the_threshold_are_kept_and_close_copies_dropped() -> None:
    """Variants of each corpus document with 3%, 12% or 20% of the words replaced, each against its original."""
    options = NearOptions()
    cases: list[tuple[float, bool, bool]] = []  # (true Jaccard, LSH candidate, dropped)
    for n, base in enumerate(corpus_documents()):
        words, rng = base.split(), random.Random(n)
        for fraction in (0.03, 0.12, 0.2):
            replaced = set(rng.sample(range(len(words)), max(1, int(len(words) * fraction))))
            variant = " ".join("zz" if i in replaced else w for i, w in enumerate(words))
            index = NearDuplicateIndex(options)
            assert index.admit(minhash_signature(base, options))
            signature = minhash_signature(variant, options)
            probe = index._probe
            probe.hashvalues = signature
            candidate = bool(index.lsh.query(probe))
            a, b = shingles(base, options.shingle), shingles(variant, options.shingle)
            cases.append((len(a & b) / len(a | b), candidate, not index.admit(signature)))
    assert all(j >= 0.7 for j, _, dropped in cases if dropped), "a document well below the threshold was dropped"
    assert any(candidate and not dropped and j < 0.7 for j, candidate, dropped in cases)  # LSH alone would drop it
    close = [dropped for j, _, dropped in cases if j >= 0.9]
    assert len(close) >= 30 and sum(close) >= 0.95 * len(close)
