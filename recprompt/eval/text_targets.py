"""Reference texts for text tasks, taken from a user's own review.

* **Review summary**: the review's own ``summary`` (its headline), as in P5's review family.
* **Explanation**: P5 trained and tested explanations on the sentences of Li et al.'s data
  (NETE/PETER), mined with the Sentires phrase-level sentiment toolkit: a review sentence
  that carries a (product feature, opinion) pair, with that feature as the "feature word".
  Sentires is not available as a library, so recprompt mines the same shape with a small,
  documented rule set, learned from the **training split only**:

  1. Sentences: review text split after ``.``, ``!``, ``?`` and at line breaks; words are
     lower-case letters (with inner apostrophes).
  2. Opinion words: a fixed sentiment lexicon (``OPINION_WORDS``: great, love, smells,
     soft, greasy, ...; never feature nouns such as smell or scent).
  3. Feature candidates: words within ``WINDOW`` words of an opinion word, of 3+ letters,
     neither a stopword nor an opinion word.
  4. Feature vocabulary: candidates found next to an opinion word in the training reviews
     of at least ``MIN_USERS`` distinct users.
  5. Explanation of a review: its first sentence of 4 to 30 words holding an opinion word
     and a vocabulary feature within ``WINDOW`` words of it; the feature word is that
     sentence's feature used by the most training users (ties: alphabetical).

  A review with no such sentence has no explanation target; such cases are left out and
  counted in the report (``cases_without_target``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "EXTRACTION",
    "Explanation",
    "FeatureVocabulary",
    "explanation_of",
    "feature_vocabulary",
    "sentences",
    "words",
]

WINDOW = 3
MIN_USERS = 5
MIN_WORDS, MAX_WORDS = 4, 30

OPINION_WORDS = frozenset(
    """
    good great nice love loves loved like likes liked best better excellent amazing awesome
    wonderful perfect fantastic favorite favourite happy pleased recommend recommended lovely
    beautiful gorgeous fresh clean soft smooth silky gentle light rich pleasant delightful
    bad poor terrible awful horrible worst worse disappointed disappointing hate hated cheap
    greasy sticky strong harsh dry drying oily heavy weak fake broken expensive overpriced
    effective nourishing moisturizing refreshing
    soothing lasting long-lasting subtle mild sweet sexy classic pricey affordable
    """.split()  # noqa: SIM905 (a word list reads better as text)
)

STOPWORDS = frozenset(
    """
    the and for that this with but not you are was were have has had its it's they them
    their there then than what when where which who whom will would could should can did
    does doing done been being into onto from about after before again also just very
    really much more most some any all each other such only own same too too so our ours
    your yours his her hers him she he we me my mine i'm i've i'd don't doesn't didn't
    isn't wasn't aren't can't won't it's that's there's one two three get got gets getting
    make makes made use used using uses way thing things lot lots bit little well even
    still ever never always because while since though although these those here over
    under again how why out off down now new old first last many few every another
    day days time times year years bought buy buying purchase purchased order ordered
    item items product products amazon price five four stars star review reviews
    highly absolutely definitely totally actually super pretty far without find try tried
    """.split()  # noqa: SIM905
)

_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")

EXTRACTION = {
    "summary": "the review's own 'summary' field (its headline)",
    "explanation": "first review sentence (4-30 words) with an opinion word and, within "
    f"{WINDOW} words, a feature word; features = words next to opinion words in the "
    f"training reviews of >= {MIN_USERS} users (Sentires-like rules; recprompt/eval/"
    "text_targets.py)",
    "feature": "the sentence's feature word used by the most training users",
}


def sentences(text: str) -> list[str]:
    """The review's sentences, stripped, in order."""
    return [s.strip() for s in _SENTENCE_END.split(text or "") if s and s.strip()]


def words(text: str) -> list[str]:
    return _WORD.findall((text or "").lower())


def _pairs(tokens: list[str]) -> Iterable[str]:
    """Feature candidates: words within WINDOW of an opinion word."""
    for i, token in enumerate(tokens):
        if token not in OPINION_WORDS:
            continue
        for j in range(max(0, i - WINDOW), min(len(tokens), i + WINDOW + 1)):
            w = tokens[j]
            if j != i and len(w) >= 3 and w not in STOPWORDS and w not in OPINION_WORDS:
                yield w


@dataclass(frozen=True)
class FeatureVocabulary:
    """Feature word → number of distinct training users who wrote it next to an opinion."""

    users: dict[str, int]

    def __contains__(self, word: str) -> bool:
        return word in self.users


def feature_vocabulary(reviews: Iterable[tuple[str, str]]) -> FeatureVocabulary:
    """Mine the vocabulary from (user, review text) pairs of the training split."""
    by_word: dict[str, set[str]] = defaultdict(set)
    for user, text in reviews:
        for sentence in sentences(text):
            for word in _pairs(words(sentence)):
                by_word[word].add(user)
    return FeatureVocabulary({w: len(u) for w, u in by_word.items() if len(u) >= MIN_USERS})


@dataclass(frozen=True)
class Explanation:
    sentence: str
    feature: str


def explanation_of(text: str, vocabulary: FeatureVocabulary) -> Explanation | None:
    """The review's explanation sentence and feature word, or None (rules in the docstring)."""
    for sentence in sentences(text):
        tokens = words(sentence)
        if not MIN_WORDS <= len(tokens) <= MAX_WORDS:
            continue
        found = Counter(w for w in _pairs(tokens) if w in vocabulary)
        if found:
            feature = min(found, key=lambda w: (-vocabulary.users[w], w))
            return Explanation(sentence, feature)
    return None
