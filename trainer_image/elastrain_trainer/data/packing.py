"""Documents to one token stream: a Hugging Face tokenizer, an end-of-document token, packing.

Each document is encoded without the tokenizer's own special tokens (no BOS from a post-processor)
and followed by the tokenizer's end-of-document token; the documents' tokens are concatenated in
order, so the stream cut into ``seqLen + 1``-token samples (data/tokens.py) gives every sample a
stable index. Only ``tokenizers`` is loaded (``tokenizer.json``), not ``transformers``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from elastrain_trainer.errors import SpecError

TOKENIZER_FIELD = "spec.trainer.data.text.tokenizer"
#: Names tried, in order, when tokenizer_config.json names no eos_token.
EOS_FALLBACKS = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>")


@dataclass(frozen=True)
class TextTokenizer:
    """A loaded tokenizer: the ``tokenizers.Tokenizer``, its end-of-document id and vocabulary size."""

    tokenizer: Any
    eos_id: int
    vocab_size: int
    eos_token: str

    def encode_documents(self, documents: Sequence[str]) -> list[list[int]]:
        """Each document's ids followed by the end-of-document id."""
        encodings = self.tokenizer.encode_batch(list(documents), add_special_tokens=False)
        return [[*e.ids, self.eos_id] for e in encodings]


def load_tokenizer(directory: str | Path, *, field: str = TOKENIZER_FIELD) -> TextTokenizer:
    """The tokenizer saved in a Hugging Face tokenizer directory (tokenizer.json, tokenizer_config.json)."""
    from tokenizers import Tokenizer

    root = Path(directory)
    path = root / "tokenizer.json"
    if not path.is_file():
        raise SpecError(
            field,
            str(directory),
            "no tokenizer.json in this directory",
            "point it at a Hugging Face tokenizer directory (as saved by tokenizer.save_pretrained) inside the pod",
        )
    tokenizer = Tokenizer.from_file(str(path))
    eos_token = _configured_eos(root / "tokenizer_config.json")
    candidates = [eos_token] if eos_token else list(EOS_FALLBACKS)
    for name in candidates:
        eos_id = tokenizer.token_to_id(name)
        if eos_id is not None:
            return TextTokenizer(tokenizer, int(eos_id), int(tokenizer.get_vocab_size()), name)
    raise SpecError(
        field,
        str(directory),
        f"the tokenizer has no end-of-document token (tried {', '.join(candidates)})",
        "set eos_token in tokenizer_config.json to a token of the vocabulary",
    )


def _configured_eos(config: Path) -> str | None:
    if not config.is_file():
        return None
    value = json.loads(config.read_text()).get("eos_token")
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def token_dtype(vocab_size: int) -> np.dtype[Any]:
    """The smallest unsigned integer type holding every id of a vocabulary."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def pack(token_lists: Iterable[Sequence[int]], dtype: np.dtype[Any]) -> np.ndarray:
    """Documents' token lists (each ending with eos) concatenated into one flat array."""
    lists = list(token_lists)
    if not lists:
        return np.zeros(0, dtype=dtype)
    return np.concatenate([np.asarray(ids, dtype=dtype) for ids in lists])
