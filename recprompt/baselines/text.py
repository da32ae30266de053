"""Non-LLM baselines for text outputs, fitted on the training split's reviews only.

They make BLEU/ROUGE figures readable: a program that does not beat "the item's most
frequent summary" has learnt nothing about the review in front of it.

* ``item_top_summary``: the item's most frequent training summary (the corpus's most
  frequent one for an item with none).
* ``nearest_review_summary``: the summary of the training review most similar (TF-IDF
  cosine) to the review being summarised, skipping verbatim copies of it (Amazon 5-core
  files hold the same review posted on several variants of a product: its copy's summary
  would be the answer).
* ``item_typical_sentence``: the item's training explanation sentence closest to the
  centroid of all its training explanation sentences.
* ``nearest_sentence``: the training explanation sentence of the item, written by another
  user, most similar (TF-IDF cosine) to the user's own training reviews plus the feature
  word when the case has one. The user's own sentences are left out: the same review posted
  on several product variants would hand the reference over verbatim.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import sparse

from recprompt.data import Dataset
from recprompt.eval.text_cases import REVIEW_WORDS as CLIP
from recprompt.eval.text_targets import explanation_of, feature_vocabulary, words

__all__ = ["EXPLANATION_BASELINES", "SUMMARY_BASELINES", "TextBaselines", "Tfidf"]

SUMMARY_BASELINES = ("item_top_summary", "nearest_review_summary")
EXPLANATION_BASELINES = ("item_typical_sentence", "nearest_sentence")


class Tfidf:
    """L2-normalised TF-IDF vectors over a fixed document set (smooth idf)."""

    def __init__(self, documents: Sequence[str]) -> None:
        tokenized = [words(d) for d in documents]
        self.index: dict[str, int] = {}
        for tokens in tokenized:
            for t in tokens:
                self.index.setdefault(t, len(self.index))
        df = np.zeros(max(len(self.index), 1))
        for tokens in tokenized:
            for t in set(tokens):
                df[self.index[t]] += 1
        self.idf = np.log((1 + len(documents)) / (1 + df)) + 1.0
        self.matrix = self.vectors(tokenized)

    def vectors(self, tokenized: Sequence[Sequence[str]]) -> sparse.csr_matrix:
        rows, cols, vals = [], [], []
        for r, tokens in enumerate(tokenized):
            counts = Counter(t for t in tokens if t in self.index)
            for t, c in counts.items():
                rows.append(r)
                cols.append(self.index[t])
                vals.append(c * self.idf[self.index[t]])
        m = sparse.csr_matrix((vals, (rows, cols)), shape=(len(tokenized), len(self.idf)))
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sparse.csr_matrix(m.multiply(1.0 / norms[:, None]))

    def similarities(self, text: str, rows: Sequence[int] | None = None) -> np.ndarray:
        query = self.vectors([words(text)])
        matrix = self.matrix if rows is None else self.matrix[list(rows)]
        return np.asarray((matrix @ query.T).todense()).ravel()


def _key(text: str) -> str:
    """A review's first CLIP words, whitespace-normalised (inputs show clipped reviews)."""
    return " ".join(text.split()[:CLIP])


def _argmax(values: np.ndarray) -> int:
    """First index of the maximum: ties go to the earliest (file-order) document."""
    return int(np.argmax(values)) if len(values) else -1


class TextBaselines:
    """Fitted on the training split; ``predict(name, case)`` gives a baseline's text."""

    def __init__(self, train: Dataset) -> None:
        texts = [
            (str(u), str(i), train.texts.get((u, i), {}))
            for u, i in zip(train.user.tolist(), train.item.tolist(), strict=True)
        ]
        self.reviews = [(u, i, t) for u, i, t in texts if t.get("reviewText")]
        vocab = feature_vocabulary((u, t["reviewText"]) for u, _, t in self.reviews)
        summaries: dict[str, Counter[str]] = {}
        for _, item, t in self.reviews:
            if t.get("summary"):
                summaries.setdefault(item, Counter())[t["summary"].strip()] += 1
        overall = sum(summaries.values(), Counter())
        self.global_summary = overall.most_common(1)[0][0] if overall else ""
        self.item_summary = {i: c.most_common(1)[0][0] for i, c in summaries.items()}
        self.review_index = Tfidf([t["reviewText"] for _, _, t in self.reviews])
        self.review_keys = [_key(t["reviewText"]) for _, _, t in self.reviews]
        self.user_text: dict[str, str] = {}
        self.sentences: list[tuple[str, str]] = []  # (item, sentence)
        self.authors: list[str] = []
        for user, item, t in self.reviews:
            self.user_text[user] = self.user_text.get(user, "") + " " + t["reviewText"]
            found = explanation_of(t["reviewText"], vocab)
            if found is not None:
                self.sentences.append((item, found.sentence))
                self.authors.append(user)
        self.sentence_index = Tfidf([s for _, s in self.sentences] or [""])
        self.by_item: dict[str, list[int]] = {}
        for n, (item, _) in enumerate(self.sentences):
            self.by_item.setdefault(item, []).append(n)

    def _pool(self, item: str) -> list[int]:
        return self.by_item.get(item) or list(range(len(self.sentences)))

    def item_top_summary(self, case: Any) -> str:
        return self.item_summary.get(case.meta["item_id"], self.global_summary)

    def nearest_review_summary(self, case: Any) -> str:
        query = case.inputs.get("review") or ""
        sims = self.review_index.similarities(query)
        copy = _key(query.removesuffix(" ..."))
        sims[[n for n, k in enumerate(self.review_keys) if k == copy]] = -1.0
        best = _argmax(sims)
        return (self.reviews[best][2].get("summary") or "") if best >= 0 else ""

    def item_typical_sentence(self, case: Any) -> str:
        rows = self._pool(case.meta["item_id"])
        if not self.sentences:
            return ""
        block = self.sentence_index.matrix[rows]
        centroid = np.asarray(block.mean(axis=0)).ravel()
        return self.sentences[rows[_argmax(block @ centroid)]][1]

    def nearest_sentence(self, case: Any) -> str:
        user = case.meta["user_id"]
        rows = [r for r in self._pool(case.meta["item_id"]) if self.authors[r] != user]
        rows = rows or [r for r, a in enumerate(self.authors) if a != user]
        if not rows:
            return ""
        query = self.user_text.get(case.meta["user_id"], "")
        if case.inputs.get("feature"):
            query += (" " + case.inputs["feature"]) * 3
        return self.sentences[rows[_argmax(self.sentence_index.similarities(query, rows))]][1]

    def predictor(self, name: str) -> Callable[[Any], str]:
        from recprompt.errors import InputError

        if name not in SUMMARY_BASELINES + EXPLANATION_BASELINES:
            raise InputError(
                f"unknown text baseline {name!r}",
                hint=f"choose from {', '.join(SUMMARY_BASELINES + EXPLANATION_BASELINES)}",
            )
        return getattr(self, name)
