"""SentencePiece tokenizer: trained on the training portion only, deterministic, cached on disk.

Defaults: unigram, vocab 8192, pad id 0, unk id 1, no bos/eos. Training sees
the normalized texts of the `train` split (never validation or test), plus the
unlabeled reviews when asked. The same data and options give a byte-identical
model file; it is cached under the zoo cache dir, keyed by the data's
fingerprint and the options, and reused without retraining.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from zoo.config.sections import MIN_VOCAB, TokenizerConfig
from zoo.data.cache import cache_dir, cache_lock
from zoo.data.segmenter import Segmenter, default_threads
from zoo.data.splits import Splits
from zoo.data.text import normalize_text
from zoo.errors import DataError
from zoo.faults import failpoint
from zoo.files import atomic_write

if TYPE_CHECKING:
    import sentencepiece

PAD_ID, UNK_ID = 0, 1  # every model's padding id is the tokenizer's


def sentencepiece_version() -> str:
    """Part of the tokenizer cache key: sentencepiece releases train different models from the same texts."""
    from importlib.metadata import version

    return version("sentencepiece")


class Tokenizer:
    """A loaded SentencePiece model that applies the zoo's text normalization and segments with zoo.data.segmenter."""

    def __init__(self, model_path: Path | str):
        import sentencepiece as spm

        self.path = Path(model_path)
        try:
            data = self.path.read_bytes()
            self.processor: sentencepiece.SentencePieceProcessor = spm.SentencePieceProcessor(model_proto=data)
        except (OSError, RuntimeError) as exc:
            raise DataError(f"cannot load tokenizer {self.path}: {exc}; retrain it or copy a good tokenizer.model") from None
        self.sha256 = hashlib.sha256(data).hexdigest()
        if self.processor.pad_id() != PAD_ID:
            raise DataError(f"tokenizer {self.path} has pad id {self.processor.pad_id()}, the zoo needs {PAD_ID}")
        self._model = data
        self._segmenter: Segmenter | None = None

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    @property
    def segmenter(self) -> Segmenter:
        """What turns text into ids (zoo.data.segmenter), made on first use."""
        if self._segmenter is None:
            self._segmenter = Segmenter(self._model)
        return self._segmenter

    def encode(self, texts: Sequence[str], threads: int | None = None) -> list[list[int]]:
        clean = [normalize_text(t) for t in texts]
        return self.segmenter.encode(clean, threads)


def train_sentencepiece(texts: Sequence[str], config: TokenizerConfig, output: Path, what: str = "the texts") -> Path:
    """Train a SentencePiece model on `texts` (already normalized) and write it atomically.

    A vocabulary larger than the texts support (a few thousand short sentences) shrinks to the largest size
    SentencePiece reports it can reach, with a note on stderr; one too small for the texts' characters is an
    error naming the size to use; texts too few for the zoo's smallest vocabulary are an error saying so.
    `what` names the texts in messages (the split and the data source).
    """
    if not any(t.strip() for t in texts):
        raise DataError(f"{what} are all empty ({len(texts):,} texts with no characters but spaces): there is "
                        "nothing to learn a tokenizer from. Check the text column (--text-column) and the data")
    try:
        data = _sentencepiece_model(texts, config.model_type, config.vocab_size)
    except RuntimeError as exc:
        supported = re.search(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)", str(exc))
        needed = re.search(r"Vocabulary size is smaller than required_chars\. \d+ vs (\d+)", str(exc))
        if supported and int(supported.group(1)) >= MIN_VOCAB:
            size = int(supported.group(1))
            print(f"note: the training texts support a vocabulary of at most {size:,} pieces, not "
                  f"{config.vocab_size:,}; using {size:,} (set tokenizer.vocab_size to choose)", file=sys.stderr)
            data = _sentencepiece_model(texts, config.model_type, size)
        elif supported:
            size = int(supported.group(1))
            characters = sum(len(t) for t in texts)
            raise DataError(f"{what} are too little text for a tokenizer: {len(texts):,} texts ({characters:,} "
                            f"characters) support {size} pieces, under the zoo's minimum vocabulary of {MIN_VOCAB}. "
                            f"Add text: roughly {_more_text(size):.0f} times as much, with more distinct words") from None
        elif needed:
            raise DataError(f"{what} use more distinct characters than tokenizer.vocab_size="
                            f"{config.vocab_size} leaves room for; use --set tokenizer.vocab_size="
                            f"{max(int(needed.group(1)) + 16, MIN_VOCAB)} or more") from None
        else:
            raise DataError(f"training the tokenizer on {what} ({len(texts):,} texts) failed: {exc}") from None
    failpoint("tokenizer-training")
    atomic_write(output, lambda f: f.write(data))
    return output


def _more_text(supported: int) -> float:
    """A rough factor of more text that reaches MIN_VOCAB pieces: distinct pieces grow about as the square root of
    the text's size (Heaps' law with exponent 0.5), so the text must grow by the square of the shortfall."""
    return max(2.0, (MIN_VOCAB / max(supported, 1)) ** 2)


def _sentencepiece_model(texts: Sequence[str], model_type: str, vocab_size: int) -> bytes:
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=buffer,
        model_type=model_type,
        vocab_size=vocab_size,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=-1, eos_id=-1,
        max_sentence_length=1 << 16,  # whole reviews; the default 4,192 bytes drops the long ones
        input_sentence_size=0, shuffle_input_sentence=False,  # use every review, in order
        num_threads=default_threads(),
        minloglevel=2,
    )
    return buffer.getvalue()


def tokenizer_for(splits: Splits, config: TokenizerConfig) -> Tokenizer:
    """The cached tokenizer for these splits and options, training it first if needed."""
    options = json.dumps({"fingerprint": splits.fingerprint, **vars(config), "format": 1,
                          "sentencepiece": sentencepiece_version()}, sort_keys=True)
    key = hashlib.sha256(options.encode()).hexdigest()[:16]
    path = cache_dir() / "tokenizers" / f"{key}.model"
    with cache_lock(path):  # two processes wanting the same tokenizer: one trains it, the other waits
        if path.is_file():
            try:
                return Tokenizer(path)
            except DataError:  # a corrupt cache entry: train it again
                path.unlink()
        if config.use_unsupervised and splits.unsupervised is None:
            raise DataError("tokenizer.use_unsupervised needs the unsupervised split; load it with_unsupervised=True")
        texts = [normalize_text(t) for t in splits.train["text"]]
        what = f"the train split's texts of {splits.source}"
        if config.use_unsupervised:
            texts += [normalize_text(t) for t in splits.unsupervised["text"]]
            what = f"the train and unsupervised splits' texts of {splits.source}"
        train_sentencepiece(texts, config, path, what)
        return Tokenizer(path)
