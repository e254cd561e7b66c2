"""Near-duplicate documents: MinHash signatures of character shingles and a MinHash LSH index.

A document's shingles are its character ``shingle``-grams after lowercasing and collapsing
whitespace; its signature is a datasketch MinHash of ``num_perm`` permutations drawn from a fixed
``seed``, so the same text has the same signature in every process and run. The index keeps the
first of a group of documents whose estimated Jaccard similarity passes ``threshold`` (documents are
offered in input order) and drops the later ones. It grows with the number of documents kept
(``num_perm`` hash values' worth of band keys each): the one part of ``data prepare`` that is not
bounded by a batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

_SPACE = re.compile(r"\s+")
#: datasketch's permutation scheme, pinned so signatures do not change with its default.
SCHEME = "affine32"


@dataclass(frozen=True)
class NearOptions:
    """MinHash LSH settings: Jaccard threshold, permutations, shingle length in characters, seed."""

    threshold: float = 0.8
    num_perm: int = 128
    shingle: int = 5
    seed: int = 1


def shingles(text: str, size: int) -> set[bytes]:
    """The document's character ``size``-grams (lowercased, whitespace collapsed), as UTF-8."""
    flat = _SPACE.sub(" ", text.lower()).strip()
    if len(flat) <= size:
        return {flat.encode("utf-8")}
    return {flat[i : i + size].encode("utf-8") for i in range(len(flat) - size + 1)}


def minhash_signature(text: str, options: NearOptions) -> np.ndarray:
    """The MinHash hash values of a document (uint64, ``num_perm`` of them)."""
    from datasketch import MinHash

    sketch = MinHash(num_perm=options.num_perm, seed=options.seed, scheme=SCHEME)
    sketch.update_batch(sorted(shingles(text, options.shingle)))
    return np.asarray(sketch.hashvalues, dtype=np.uint64)


class NearDuplicateIndex:
    """Documents offered in order; ``admit`` says whether one is new (and remembers it) or a near duplicate."""

    def __init__(self, options: NearOptions) -> None:
        from datasketch import MinHashLSH

        self.options = options
        self.lsh: Any = MinHashLSH(threshold=options.threshold, num_perm=options.num_perm)
        self.count = 0

    def admit(self, signature: np.ndarray) -> bool:
        from datasketch import MinHash

        sketch = MinHash(num_perm=self.options.num_perm, seed=self.options.seed, hashvalues=signature, scheme=SCHEME)
        if self.lsh.query(sketch):
            return False
        self.lsh.insert(str(self.count), sketch)
        self.count += 1
        return True
