"""Text and tokenizers the tests make themselves: nothing is downloaded at run time.

``CORPUS`` is a small English text shipped with the tests (documents separated by blank lines).
:func:`train_tokenizer` trains a byte-level BPE tokenizer on it with ``tokenizers`` and saves it as
a Hugging Face tokenizer directory (``tokenizer.json`` and ``tokenizer_config.json``, loadable by
``transformers.AutoTokenizer`` and by ``tokenizers.Tokenizer.from_file``), with ``<|endoftext|>`` as
its end-of-document token.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "corpus" / "elastic.txt"
EOS = "<|endoftext|>"


def corpus_documents() -> list[str]:
    """The shipped corpus's documents (blank-line separated paragraphs)."""
    return [doc.strip() for doc in CORPUS.read_text().split("\n\n") if doc.strip()]


def train_tokenizer(out_dir: Path, *, vocab_size: int = 384, texts: list[str] | None = None) -> Path:
    """Train a byte-level BPE tokenizer of ``vocab_size`` tokens on ``texts`` (default: the corpus); return its dir."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts if texts is not None else corpus_documents(), trainer=trainer)
    out_dir.mkdir(parents=True, exist_ok=True)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, bos_token=EOS).save_pretrained(str(out_dir))  # type: ignore[no-untyped-call]
    return out_dir
