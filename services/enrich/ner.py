"""spaCy's NER run for less: its own model and decoder, the same entities, without two costs of the installed build.

Measured on the 2-core reference machine (AMD EPYC, AVX-512), 200 articles of make bench's corpus, one core:
spaCy's `nlp.pipe` with only the NER cost 63.5 ms per article; this module 19-22 ms, entity for entity the same.

- **Matrix products.** thinc multiplies through blis, whose wheel here picks its generic reference kernels
  (`bli_sgemm_generic_ref` in a perf profile): 30 GFLOP/s against OpenBLAS's 93 on one core. The NER's embedding
  and window encoder are mostly matrix products (27 -> 12 ms per article), so the NER model runs on thinc's numpy
  ops (`use_blis=False`: numpy's OpenBLAS), held to one thread so a replica stays on one core.
- **The decoder's loop.** spaCy's greedy decoder (`Parser.greedy_parse`) steps through every state with the GIL
  released, and in the installed build (Cython 3.3) each look at the buffer (`StateC.B_`, ~300 per token)
  acquires and releases the GIL around an empty block: half of the NER's time went to `take_gil`/`drop_gil`.
  The same steps driven from Python with the GIL held (spaCy's own `get_token_ids` -> `state2vec` ->
  `vec2scores` -> `transition_states`, the path its beam search and training take) make those calls a counter
  increment: the loop costs 37 -> ~9 ms per article.

Same model, same transitions, same argmax; only the order of float additions inside a matrix product differs
(OpenBLAS's kernels against blis's), which could move a score in its last bits. Entities were checked identical
on make bench's corpus, the category set and CoNLL-2003 dev, and a test compares this with `nlp.pipe`.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import NumpyOps

# numpy's bundled OpenBLAS (scipy-openblas, 64-bit interface), or a system OpenBLAS.
_SET_THREADS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")


def limit_blas_threads(threads: int = 1) -> bool:
    """Hold the OpenBLAS numpy loaded to `threads` threads (its default is one per core); True when done.

    An enrich replica is sized for one core; OpenBLAS's extra threads would spin on the other one.
    """
    done = False  # numpy (imported above) has loaded its OpenBLAS, so it is in the process's maps
    for path in _loaded_libraries("openblas"):
        with suppress(OSError):
            library = ctypes.CDLL(path)
            for name in _SET_THREADS:
                function = getattr(library, name, None)
                if function is not None:
                    function(threads)
                    done = True
                    break
    return done


def _loaded_libraries(fragment: str) -> list[str]:
    with suppress(OSError):
        lines = Path("/proc/self/maps").read_text().splitlines()
        return sorted({line.split()[-1] for line in lines if fragment in line.rsplit("/", 1)[-1]})
    return []


class EntityRecognizer:
    """`nlp`'s tokenizer and pipes over texts, its NER pipe stepped as described above; docs as `nlp.pipe` makes."""

    def __init__(self, nlp: Language, pipes: Sequence[str]) -> None:
        self.nlp = nlp
        # spaCy's pipes are Cython classes with no type information: Any.
        self.pipes: list[tuple[str, Any]] = [(name, nlp.get_pipe(name)) for name in pipes]
        ner: Any = nlp.get_pipe("ner") if "ner" in pipes else None
        self.ner = ner
        # A beam-search model keeps spaCy's own decoder; the stepped loop below is the greedy one.
        self._stepped = ner is not None and ner.cfg.get("beam_width", 1) == 1
        if ner is not None:
            limit_blas_threads(1)
            ops = NumpyOps(use_blis=False)
            for node in ner.model.walk():
                node.ops = ops

    def __call__(self, texts: Iterable[str], batch_size: int) -> list[Doc]:
        """One Doc per text, in order, annotated by every pipe (NER in batches of `batch_size` docs)."""
        docs = [self.nlp.make_doc(text) for text in texts]
        for name, pipe in self.pipes:
            if name == "ner" and self._stepped:
                for start in range(0, len(docs), batch_size):
                    self._recognise(docs[start : start + batch_size])
            else:
                docs = list(pipe.pipe(docs, batch_size=batch_size))
        return docs

    def _recognise(self, docs: list[Doc]) -> None:
        """`Parser.greedy_parse` + `set_annotations`, stepped from Python (the GIL held)."""
        ner = self.ner
        assert ner is not None
        batch = ner.moves.init_batch(docs)
        model = ner.model.predict(docs)
        unseen = model._class_mask == 0
        states = [state for state in batch if not state.is_final()]
        while states:
            scores = model.vec2scores.predict(model.state2vec.predict(model.get_token_ids(states)))
            if unseen.any():  # classes the model never saw in training never win (as in greedy_parse)
                scores[:, unseen] = numpy.nanmin(scores)
            states = ner.transition_states(states, scores)
        model.clear_memory()
        ner.set_annotations(docs, batch)
