"""Offline text understanding for the director: a WordLlama embedding built from its wheel, and the NRC lexicon.

WordLlama 0.3.3.post0 ships its 256-d ``l2_supercat`` weights and tokenizer config inside the wheel, but its
``load()`` looks in ``~/.cache/wordllama`` and otherwise downloads. Here the model is assembled from the wheel's
own files only (MODELS.md §3), and a missing file is an error, never a download. NRCLex 4.1.0's lexicon
``nrc_en.json`` (word → emotions) is read directly; its text API pulls TextBlob and is not used.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError, require

WORDLLAMA_INSTALL = "pip install wordllama==0.3.3.post0"
NRCLEX_INSTALL = "pip install NRCLex==4.1.0"


class Embedder:
    """Unit-norm 256-d WordLlama embeddings, cached per phrase (the director embeds a few dozen phrases)."""

    def __init__(self):
        wordllama = require("wordllama", WORDLLAMA_INSTALL)
        safetensors = require("safetensors", WORDLLAMA_INSTALL)
        from wordllama.config import Config
        from wordllama.inference import WordLlamaInference

        pkg = Path(wordllama.__file__).parent
        tokenizer_file = pkg / "tokenizers" / "l2_supercat_tokenizer_config.json"
        weights_file = pkg / "weights" / "l2_supercat_256.safetensors"
        for path in (tokenizer_file, weights_file):
            # load_tokenizer falls back to the Hugging Face hub when its file is missing: never let it.
            if not path.is_file():
                raise MissingDependencyError(f"{path} is missing from the wordllama wheel; reinstall it with: "
                                             f"{WORDLLAMA_INSTALL}")
        tokenizer = wordllama.WordLlama.load_tokenizer(tokenizer_file, Config.l2_supercat)
        with safetensors.safe_open(str(weights_file), framework="np", device="cpu") as handle:
            embedding = handle.get_tensor("embedding.weight")  # (32000, 256) float16
        self._model = WordLlamaInference(embedding, Config.l2_supercat, tokenizer)
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, phrases: list[str]) -> np.ndarray:
        """(N, 256) float64 unit vectors."""
        todo = sorted({p for p in phrases if p not in self._cache})
        if todo:
            vectors = np.asarray(self._model.embed(todo), dtype=np.float64)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            self._cache.update(zip(todo, vectors))
        return np.stack([self._cache[p] for p in phrases]) if phrases else np.zeros((0, 256))

    def similarity(self, a: str, b: str) -> float:
        va, vb = self.embed([a, b])
        return float(va @ vb)


@functools.lru_cache(maxsize=1)
def embedder() -> Embedder:
    """The process-wide embedder (building it reads a 16 MB weights file once)."""
    return Embedder()


@functools.lru_cache(maxsize=1)
def nrc_lexicon() -> dict[str, tuple[str, ...]]:
    """NRC word → emotion tags (including the sentiments "positive"/"negative"), from NRCLex's own file."""
    nrclex = require("nrclex", NRCLEX_INSTALL)
    path = Path(nrclex.__file__).parent / "data" / "nrc_en.json"
    if not path.is_file():
        raise MissingDependencyError(f"{path} is missing from the NRCLex wheel; reinstall it with: {NRCLEX_INSTALL}")
    with open(path, encoding="utf-8") as handle:
        return {word: tuple(tags) for word, tags in json.load(handle).items()}


def lexicon_forms(word: str) -> list[str]:
    """The word and a few crude base forms, in order, since NRC lists lemmas ("sad" is absent, "sadness" is not;
    "angrily" → "angry", "scared" → "scare")."""
    forms = [word]
    for suffix, repl in (("ily", "y"), ("ly", ""), ("ied", "y"), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", ""),
                         ("s", ""), ("", "ness")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            forms.append(word[: len(word) - len(suffix)] + repl)
    return list(dict.fromkeys(forms))


WORD = re.compile(r"[a-z][a-z'\-]*")


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped (apostrophes and hyphens kept inside a word)."""
    return WORD.findall(text.lower())
