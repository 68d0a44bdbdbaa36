"""Character (Unicode code point) and byte tokenizers, in NumPy: the exported graphs see ids only.

The vocabulary travels with the model (its config) and with exports (metadata.json), so an app
maps text to ids without TensorFlow or a lookup table in the graph.
"""

from __future__ import annotations

import codecs

import numpy as np

from ..errors import AigcError
from .config import TOKENIZERS

UNKNOWN = "\ufffd"  # how the reserved unknown id decodes


class CharTokenizer:
    """Id 0 is reserved for characters outside the vocabulary; ids 1.. are the corpus's characters
    in code-point order. Works for any script (Chinese included): one id per code point."""

    kind = "chars"
    unknown_id = 0

    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        self._codes = np.array([ord(c) for c in self.chars], np.int64)

    @classmethod
    def build(cls, text: str, min_count: int = 1) -> "CharTokenizer":
        """The vocabulary of `text`: the characters it holds at least `min_count` times (rarer ones share
        the unknown id, which generation never draws)."""
        if min_count <= 1:
            return cls(text)
        chars, counts = np.unique(np.frombuffer(text.encode("utf-32-le"), np.uint32), return_counts=True)
        return cls("".join(chr(c) for c in chars[counts >= min_count]))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.int64)
        index = np.searchsorted(self._codes, codes)
        known = (index < len(self._codes)) & (self._codes[np.minimum(index, len(self._codes) - 1)] == codes)
        return np.where(known, index + 1, 0).astype(np.int32)

    def decode(self, ids) -> str:
        return "".join(self.chars[i - 1] if 0 < i <= len(self.chars) else UNKNOWN for i in np.asarray(ids).ravel())

    def stream_decoder(self):
        """A function id -> text to print, for streaming one id at a time."""
        return lambda i: self.decode([i])

    def unknown_count(self, text: str) -> int:
        """Characters of `text` outside the vocabulary (they encode to id 0)."""
        return int((self.encode(text) == 0).sum())

    def num_characters(self, ids) -> int:
        return len(np.asarray(ids).ravel())

    def to_config(self) -> dict:
        return {"kind": self.kind, "chars": self.chars}


class ByteTokenizer:
    """The 256 byte values of UTF-8: an open vocabulary, a few ids per non-ASCII character. Bytes that
    are not UTF-8 (a byte model can draw them) decode to nothing rather than to U+FFFD, as on the page."""

    kind = "bytes"
    vocab_size = 256
    unknown_id = None  # every text has its bytes

    @classmethod
    def build(cls, text: str, min_count: int = 1) -> "ByteTokenizer":
        return cls()

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32)

    def decode(self, ids) -> str:
        return self._replaced(ids).replace(UNKNOWN, "")

    def stream_decoder(self):
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda i: decoder.decode(bytes([int(i)])).replace(UNKNOWN, "")

    def unknown_count(self, text: str) -> int:
        return 0

    def num_characters(self, ids) -> int:
        return len(self._replaced(ids))

    @staticmethod
    def _replaced(ids) -> str:
        """The text of `ids`, each invalid UTF-8 sequence one U+FFFD (as WHATWG's TextDecoder does)."""
        return bytes(np.asarray(ids, np.uint8).ravel().tolist()).decode("utf-8", errors="replace")

    def to_config(self) -> dict:
        return {"kind": self.kind}


def build_tokenizer(kind: str, text: str, min_count: int = 1):
    if kind not in TOKENIZERS:
        raise AigcError(f"unknown tokenizer {kind!r}: use one of {', '.join(TOKENIZERS)}")
    return {"chars": CharTokenizer, "bytes": ByteTokenizer}[kind].build(text, min_count)


def tokenizer_from_config(config: dict):
    if config.get("kind") == "chars":
        return CharTokenizer(config["chars"])
    if config.get("kind") == "bytes":
        return ByteTokenizer()
    raise AigcError(f"unknown tokenizer config {config!r}")
