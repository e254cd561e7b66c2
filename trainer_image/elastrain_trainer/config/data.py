"""Where training tokens come from and how they are cut into shards for the shard ledger."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from elastrain_trainer.config.base import ConfigModel, Rule

DataSource = Literal["synthetic", "file", "text"]
TokenDtype = Literal["uint16", "uint32"]
TextFormat = Literal["auto", "jsonl", "parquet", "txt"]


class TextDataConfig(ConfigModel):
    """Text corpora tokenized in the pods: jsonl, parquet/arrow or plain text files, packed into sequences.

    Documents are tokenized with a Hugging Face tokenizer, an end-of-document token is appended to
    each, and the stream is packed into samples of seqLen + 1 tokens; every sample keeps a stable
    index, so the shard ledger counts it exactly as for a token file. For large corpora run
    ``elastrain data prepare`` once and train from its output with source: file.
    """

    paths: list[str] = Field(min_length=1, max_length=256)
    """Glob patterns of the files inside the pod (e.g. /data/corpus/*.jsonl); matched files are read in sorted order."""
    format: TextFormat = "auto"
    """File format; auto picks it from each file's extension (.jsonl/.json, .parquet/.arrow, .txt)."""
    field: str = Field("text", min_length=1, max_length=256)
    """The jsonl field or parquet/arrow column holding a document's text."""
    tokenizer: str = Field(min_length=1, max_length=4096, pattern=r"^/")
    """Absolute path of a Hugging Face tokenizer directory in the pod (tokenizer.json, tokenizer_config.json)."""


class DataConfig(ConfigModel):
    """Training data: synthetic tokens, a memory-mapped token file (or data prepare output) or text corpora,
    split into shards.

    The driver's shard ledger hands shards to replica groups and takes back the shards of a lost
    group, so every sample of an epoch is trained on exactly once.
    """

    source: DataSource = "synthetic"
    """synthetic: reproducible random tokens from the seed (for tests and benchmarks);
    file: a memory-mapped token file at path (or the output directory of elastrain data prepare);
    text: text corpora tokenized in the pod (set text)."""
    path: str | None = Field(None, min_length=1, max_length=4096)
    """Path inside the pod, required when source is file: a flat file of tokenDtype token ids, or the output
    directory (or its manifest.json) of elastrain data prepare, whose shards are read in place with the
    manifest's dtype."""
    token_dtype: TokenDtype = "uint16"
    """Integer type of the token ids in a flat token file; uint16 holds vocabularies up to 65536 (data prepare
    output carries its own dtype in its manifest)."""
    synthetic_tokens: int = Field(1048576, ge=1024, le=1 << 40)
    """Number of tokens in the synthetic data set (one epoch)."""
    num_shards: int = Field(64, ge=1, le=1000000)
    """Number of shards the data is split into; at least the largest number of worker pods,
    more gives finer load balance."""
    shuffle: bool = True
    """Shuffle shard order each epoch (deterministically from the seed)."""
    text: TextDataConfig | None = None
    """The text corpus, when source is text."""

    rules = (
        Rule(
            cel="self.source != 'file' || has(self.path)",
            holds=lambda d: d.source != "file" or d.path is not None,
            field="path",
            message="path is required when source is file; set path to the token file or use source: synthetic",
        ),
        Rule(
            cel="self.source != 'synthetic' || !has(self.path)",
            holds=lambda d: d.source != "synthetic" or d.path is None,
            field="path",
            message="path is only read when source is file; remove path or set source: file",
        ),
        Rule(
            cel="(self.source == 'text') == has(self.text)",
            holds=lambda d: (d.source == "text") == (d.text is not None),
            field="text",
            message="text is set exactly when source is text; set source: text with a text section "
            "(paths, tokenizer), or remove the section",
            shows=("source",),
        ),
        Rule(
            cel="self.source != 'text' || !has(self.path)",
            holds=lambda d: d.source != "text" or d.path is None,
            field="path",
            message="path is only read when source is file; the text source reads text.paths; remove path",
        ),
    )
