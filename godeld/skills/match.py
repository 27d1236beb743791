"""Score skills against a task: which skills should an agent doing TEXT know about?

The method (documented in docs/skills.md) is deliberately simple and deterministic:

1. Tokenize the task and each skill's fields: lowercase words of letters and digits, stopwords
   dropped, then a light stemmer (tests/testing/tested -> test, reviews -> review).
2. For each distinct task term found in a field, add the field's weight times the term's rarity
   across the skills (idf = 1 + ln(N / df)), so "test" counts more than a word every skill uses.
   Fields and weights: name 3.0, description 2.0, "When to use" sections 1.5. A term counts once
   per field.
3. Each pair of adjacent task terms that also appears adjacent in a field adds 1.0 (phrases such
   as "pull request" or "unit test" beat the same words scattered).

Scores are rounded to 3 decimals; ties are broken by name. Every contribution becomes a reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

from godeld.skills.registry import Skill, when_to_use

FIELDS: tuple[tuple[str, float], ...] = (("name", 3.0), ("description", 2.0), ("when to use", 1.5))
PHRASE_BONUS = 1.0

STOPWORDS = frozenset("""
a an and any are as at be been being but by can could do does doing done for from had has have how
i if in into is it its itself me my of on or our please should so some such than that the their them
then there these they this those to too up us very was we were what when where which while who why
will with would you your yours about also all just more most not no only other out over own same
use used uses using via whenever asked ask asks need needs want make sure help helps claude skill
skills user etc e g ie eg
""".split())

_WORD = re.compile(r"[a-z0-9]+")


def stem(word: str) -> str:
    """A light suffix stripper: enough to join plural and verb forms, never clever."""
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"  # dependencies -> dependency
    elif word.endswith("es") and word[:-2].endswith(("ss", "x", "z", "ch", "sh")) and len(word) > 4:
        word = word[:-2]  # matches -> match
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        word = word[:-1]  # tests -> test, files -> file
    for suffix in ("ing", "ed", "er"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if suffix == "ing" and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # running -> run
            break
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]  # parse/parser/parsing -> pars
    return word


def tokenize(text: str) -> list[str]:
    """Stemmed terms in order, stopwords dropped."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]


@dataclass
class _Doc:
    skill: Skill
    terms: dict[str, set[str]]
    bigrams: dict[str, set[tuple[str, str]]]


def _doc(skill: Skill) -> _Doc:
    texts = {"name": skill.name.replace("-", " ").replace("_", " "), "description": skill.description, "when to use": when_to_use(skill.body)}
    terms, bigrams = {}, {}
    for field, text in texts.items():
        tokens = tokenize(text)
        terms[field] = set(tokens)
        bigrams[field] = set(zip(tokens, tokens[1:]))
    return _Doc(skill, terms, bigrams)


def match(skills: Iterable[Skill], text: str, limit: int | None = 10) -> list[dict[str, Any]]:
    """Rank `skills` for the task `text`: [{name, score, reasons}], best first, score > 0 only."""
    docs = [_doc(s) for s in skills]
    query = tokenize(text)
    terms = list(dict.fromkeys(query))
    pairs = list(dict.fromkeys((a, b) for a, b in zip(query, query[1:]) if a != b))
    n = len(docs)
    df = {t: sum(1 for d in docs if any(t in d.terms[f] for f, _ in FIELDS)) for t in terms}
    idf = {t: 1.0 + math.log(n / df[t]) for t in terms if df[t]}
    ranked = []
    for d in docs:
        score = 0.0
        reasons: list[str] = []
        for field, weight in FIELDS:
            hits = [t for t in terms if t in d.terms[field]]
            if hits:
                score += sum(weight * idf[t] for t in hits)
                reasons.append(f"{field} matches: {', '.join(hits)}")
            phrases = [p for p in pairs if p in d.bigrams[field]]
            if phrases:
                score += PHRASE_BONUS * len(phrases)
                reasons.append(f"{field} has the phrase: {', '.join(' '.join(p) for p in phrases)}")
        if score > 0:
            ranked.append({"name": d.skill.name, "score": round(score, 3), "source": d.skill.source, "description": d.skill.description, "reasons": reasons})
    ranked.sort(key=lambda r: (-r["score"], r["name"]))
    return ranked if limit is None else ranked[: max(0, limit)]
