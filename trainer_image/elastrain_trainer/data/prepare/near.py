"""Near-duplicate documents: MinHash signatures of character shingles and a MinHash LSH index.

A document's shingles are its character ``shingle``-grams after lowercasing and collapsing
whitespace, hashed to 32 bits with numpy (fast, and the same in every process); its signature is a
datasketch MinHash (scheme affine32) of ``num_perm`` permutations drawn from a fixed ``seed``, so the same text
has the same signature in every process and run. The index keeps the first of a group of documents
whose estimated Jaccard similarity passes ``threshold`` (documents are offered in input order) and
drops the later ones: the LSH bands find candidates, and a candidate counts only if the two
signatures agree on at least ``threshold`` of their values (LSH alone, at 128 permutations, also
drops many documents around 0.6 similarity). It grows with the number of documents kept (each
one's band keys and its signature, ``num_perm`` x 4 bytes): the part of ``data prepare`` that is
not bounded by a batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

_SPACE = re.compile(r"\s+")
_MIX = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, odd: a bijective multiplier
_SEED_HASH = np.uint64(0xCBF29CE484222325)
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


@lru_cache(maxsize=8)
def _blank_sketch(options: NearOptions) -> Any:
    """One datasketch MinHash per process and options, cleared and reused for every document
    (drawing and checking the permutations per document would cost more than hashing it)."""
    from datasketch import MinHash

    return MinHash(num_perm=options.num_perm, seed=options.seed, hashfunc=int, scheme=SCHEME)


def shingle_hashes(text: str, size: int) -> np.ndarray:
    """32-bit hashes of the document's distinct shingles (as :func:`shingles`), computed with numpy:
    a multiply-xor hash over each window of ``size`` code points, its top 32 bits."""
    flat = _SPACE.sub(" ", text.lower()).strip()
    codes = np.frombuffer(flat.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    windows = codes[None, :] if len(codes) <= size else np.lib.stride_tricks.sliding_window_view(codes, size)
    hashes = np.full(len(windows), _SEED_HASH, dtype=np.uint64)
    for k in range(windows.shape[1]):
        hashes = (hashes ^ windows[:, k]) * _MIX  # wraps modulo 2^64
    return np.unique((hashes >> np.uint64(32)).astype(np.uint32))


def minhash_signature(text: str, options: NearOptions) -> np.ndarray:
    """The MinHash hash values of a document (``num_perm`` of them) over its shingle hashes."""
    sketch = _blank_sketch(options)
    sketch.clear()
    sketch.update_batch(shingle_hashes(text, options.shingle).tolist())
    return np.array(sketch.hashvalues)


class NearDuplicateIndex:
    """Documents offered in order; ``admit`` says whether one is new (and remembers it) or a near duplicate."""

    def __init__(self, options: NearOptions) -> None:
        from datasketch import MinHashLSH

        self.options = options
        self.lsh: Any = MinHashLSH(threshold=options.threshold, num_perm=options.num_perm)
        self.count = 0
        self.signatures: list[np.ndarray] = []
        self._probe = _blank_sketch(options).copy()  # carries each offered signature; the LSH keeps only band keys

    def admit(self, signature: np.ndarray) -> bool:
        self._probe.hashvalues = signature
        for key in self.lsh.query(self._probe):
            # LSH candidates include pairs well below the threshold; the signatures' agreement estimates
            # the Jaccard similarity itself, so only a candidate that passes it makes a duplicate.
            if estimated_jaccard(self.signatures[key], signature) >= self.options.threshold:
                return False
        self.lsh.insert(self.count, self._probe)
        self.signatures.append(signature)
        self.count += 1
        return True


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """MinHash's estimate of two documents' Jaccard similarity: the fraction of equal hash values."""
    return float(np.count_nonzero(a == b)) / len(a)
