"""The zoo's text normalization, in one place: what training, prediction and the text-in ONNX graph apply.

HTML line breaks (`<br />`, `<br/>`, `<br>`, any case) and NUL characters become
one space, and a text is cut at MAX_TEXT_CHARS characters; everything else is left
to SentencePiece's own normalization (NFKC, whitespace folding), which the
tokenizer model carries. Exported models depend on this: the text-in graph runs
the break pattern in RE2 (`re2_break_pattern`) and zoo.inference.runtime applies
the rest before calling it (`text_graph_input`).
"""

from __future__ import annotations

import functools
import hashlib
import re

import numpy as np

BREAK_PATTERN = r"<br\s*/?>"  # case-insensitive
_BREAK = re.compile(BREAK_PATTERN, re.IGNORECASE)
MAX_TEXT_CHARS = 1_000_000  # longer texts are cut (a 1 MB review is ~200k tokens)
NORMALIZATION = "HTML line breaks (<br />, <br/>, <br>, any case) and NUL become one space; then SentencePiece NFKC"


def normalize_text(text: str) -> str:
    """The text as the tokenizer reads it: cut at MAX_TEXT_CHARS, HTML line breaks and NUL become a space."""
    return _BREAK.sub(" ", text[:MAX_TEXT_CHARS]).replace("\x00", " ")


def text_graph_input(text: str) -> str:
    """What a text-in ONNX graph is given: the parts of normalize_text the graph cannot do itself (the cut, and
    NUL: onnxruntime-extensions reads a string only up to its first NUL)."""
    return text[:MAX_TEXT_CHARS].replace("\x00", " ")


@functools.cache
def re2_break_pattern() -> str:
    """BREAK_PATTERN for RE2: Python's `\\s` is Unicode whitespace, RE2's only ASCII, so list Python's set."""
    spaces = [c for c in range(0x110000) if re.match(r"\s", chr(c))]
    cls = "".join(f"\\x{{{c:x}}}" for c in spaces)
    return f"(?i)<br[{cls}]*/?>"


def text_digests(texts: list[str], distinct: bool = True) -> np.ndarray:
    """64-bit digests of texts (sorted and distinct unless `distinct` is False), equal for texts that differ only
    in HTML line breaks or whitespace: what "the same text" means when held-out texts are kept from pretraining."""
    digests = np.array([int.from_bytes(hashlib.blake2b(" ".join(normalize_text(t).split()).encode(),
                                                       digest_size=8).digest(), "little") for t in texts], dtype=np.uint64)
    return np.unique(digests) if distinct else digests
