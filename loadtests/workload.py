"""Deterministic question-answering requests for load tests and benchmarks.

The contexts are encyclopedia-style paragraphs built from sentence templates,
so no data set is downloaded. SQuAD-like pairs have contexts of 100 to 200
words and a question whose answer is a span of the context, as in SQuAD; long
pairs have contexts of thousands of words with the answer near the middle.

The templates use the words of the corpus that `triton_qa.checkpoints` trains
its tiny tokenizers on, so that tokenizer needs 1.34 tokens per word here. That
is close to an estimated 1.3 for the roberta-base tokenizer on English prose,
so the benchmark's random RoBERTa-base model gets about as many tokens per
request as the real one would.

This module uses only the standard library, so a Locust machine needs nothing
from the triton-qa package to run the load test.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

SQUAD_MIN_WORDS = 100
SQUAD_MAX_WORDS = 200
LONG_CONTEXT_WORDS = 2000

_NAMES = [
    "Alice Martin", "Bob Smith", "Carla Jones", "David Brown", "Emma Wilson",
    "Frank Miller", "Grace Lee", "Henry Clark", "Isabel Young", "Jack Turner",
    "José Álvarez", "Zoë Dubois", "François Lefèvre", "Björn Åström",
    "Renée Müller",
]  # fmt: skip
_PLACES = [
    "London", "Paris", "Berlin", "Madrid", "Rome", "Chicago", "Toronto",
    "Sydney", "Cairo", "Lagos", "Zürich", "São Paulo", "Kraków", "Montréal",
    "Malmö",
]  # fmt: skip
_SUBJECTS = [
    "physics", "history", "music", "medicine", "law", "architecture",
    "mathematics", "chemistry", "painting", "economics",
]  # fmt: skip
_BUILDINGS = [
    "museum", "library", "bridge", "cathedral", "stadium", "university",
    "harbour", "tower", "opera house", "railway station",
]  # fmt: skip
_FILLER = [
    "{other} studied {subject} in {place}.",
    "{place} is known for its {building}, which dates from {year}.",
    "In {year}, {other} moved to {place}.",
    "The {building} of {place} was designed by {other}.",
    "The quick brown fox jumps over the lazy dog near the {building} of {place}.",
    "Experts answered questions about {subject} (for example: {other}, {year}).",
    "{other} won a prize for {subject} in {year}.",
    "About {count} people visited the {building} in {place} during {year}.",
]


@dataclass(frozen=True)
class Pair:
    """One question and its context, with the answer text that the context states."""

    question: str
    context: str
    answer: str

    def body(self, parameters: dict | None = None) -> dict:
        """Return the request body for this pair."""
        body: dict = {"inputs": {"question": self.question, "context": self.context}}
        if parameters:
            body["parameters"] = parameters
        return body


@dataclass(frozen=True)
class _Fact:
    sentence: str
    question: str
    answer: str


def _facts(rng: random.Random) -> list[_Fact]:
    """Return facts about one invented person, with a question for each."""
    person = rng.choice(_NAMES)
    birthplace, home = rng.sample(_PLACES, 2)
    subject, prize_subject = rng.sample(_SUBJECTS, 2)
    building = rng.choice(_BUILDINGS)
    born = rng.randint(1700, 1950)
    moved = born + rng.randint(18, 30)
    built = moved + rng.randint(5, 30)
    prize = built + rng.randint(1, 10)
    visited = rng.randint(1950, 2025)
    visitors = rng.randint(1000, 90000)
    return [
        _Fact(
            f"{person} was born in {birthplace} in {born}.",
            f"Where was {person} born?",
            birthplace,
        ),
        _Fact(
            f"In {moved}, {person} moved to {home} to study {subject}.",
            f"What did {person} study in {home}?",
            subject,
        ),
        _Fact(
            f"The {building} of {home} was built in {built} by {person}.",
            f"When was the {building} of {home} built?",
            str(built),
        ),
        _Fact(
            f"{person} won a prize for {prize_subject} in {prize}.",
            f"What did {person} win a prize for?",
            prize_subject,
        ),
        _Fact(
            f"About {visitors} people visited the {building} of {home} during "
            f"{visited}.",
            f"How many people visited the {building} of {home} during {visited}?",
            str(visitors),
        ),
    ]


def _filler(rng: random.Random) -> str:
    return rng.choice(_FILLER).format(
        other=rng.choice(_NAMES),
        place=rng.choice(_PLACES),
        subject=rng.choice(_SUBJECTS),
        building=rng.choice(_BUILDINGS),
        year=rng.randint(1700, 2025),
        count=rng.randint(1000, 90000),
    )


def _paragraph(rng: random.Random, min_words: int, max_words: int) -> tuple[str, _Fact]:
    """Return a paragraph of `min_words` to `max_words` words and one of its facts."""
    facts = _facts(rng)
    target = rng.randint(min_words, max_words)
    sentences = [fact.sentence for fact in facts]
    words = sum(len(sentence.split()) for sentence in sentences)
    while words < target:
        sentence = _filler(rng)
        if words + len(sentence.split()) > max_words:
            break
        sentences.insert(rng.randint(1, len(sentences)), sentence)
        words += len(sentence.split())
    return " ".join(sentences), rng.choice(facts)


def squad_pair(rng: random.Random) -> Pair:
    """Return a SQuAD-like pair: a 100 to 200 word context and a question."""
    context, fact = _paragraph(rng, SQUAD_MIN_WORDS, SQUAD_MAX_WORDS)
    return Pair(fact.question, context, fact.answer)


def long_pair(rng: random.Random, words: int = LONG_CONTEXT_WORDS) -> Pair:
    """Return a pair whose context has at least `words` words, answer mid-way."""
    paragraphs: list[str] = []
    asked: _Fact | None = None
    count = 0
    while count < words:
        paragraph, fact = _paragraph(rng, SQUAD_MIN_WORDS, SQUAD_MAX_WORDS)
        if asked is None and count >= words // 2:
            asked = fact
        paragraphs.append(paragraph)
        count += len(paragraph.split())
    asked = asked or fact
    return Pair(asked.question, "\n\n".join(paragraphs), asked.answer)


def squad_pairs(count: int, seed: int = 0) -> list[Pair]:
    """Return `count` SQuAD-like pairs; the same seed gives the same pairs."""
    rng = random.Random(seed)
    return [squad_pair(rng) for _ in range(count)]


def long_pairs(
    count: int, words: int = LONG_CONTEXT_WORDS, seed: int = 1
) -> list[Pair]:
    """Return `count` pairs with contexts of at least `words` words."""
    rng = random.Random(seed)
    return [long_pair(rng, words) for _ in range(count)]


def batch_body(pairs: list[Pair], parameters: dict | None = None) -> dict:
    """Return one request body whose `inputs` is the list of `pairs`."""
    inputs = [{"question": pair.question, "context": pair.context} for pair in pairs]
    body: dict = {"inputs": inputs}
    if parameters:
        body["parameters"] = parameters
    return body


@dataclass(frozen=True)
class InvalidRequest:
    """A request that the service must reject, with the status it must return."""

    name: str
    body: bytes
    status: int


def invalid_requests(pair: Pair) -> list[InvalidRequest]:
    """Return invalid requests built around `pair`, one per kind of mistake."""

    def encode(body: dict) -> bytes:
        return json.dumps(body).encode("utf-8")

    blank_question = {"inputs": {"question": " ", "context": pair.context}}
    return [
        InvalidRequest("malformed JSON", b'{"inputs": {"question": ', 400),
        InvalidRequest("blank question", encode(blank_question), 422),
        InvalidRequest("top_k 0", encode(pair.body({"top_k": 0})), 422),
        InvalidRequest("unknown parameter", encode(pair.body({"temperature": 1})), 422),
        # Rejected by the tokenizer step: no room for context after the question.
        InvalidRequest(
            "doc_stride too large",
            encode(pair.body({"max_seq_len": 32, "doc_stride": 31})),
            422,
        ),
    ]


def parse_server_timing(header: str) -> dict[str, float]:
    """Return the `dur` of each entry of a Server-Timing header, in milliseconds."""
    stages = {}
    for entry in header.split(","):
        name, _, rest = entry.strip().partition(";")
        for parameter in rest.split(";"):
            key, _, value = parameter.strip().partition("=")
            if name and key == "dur":
                try:
                    stages[name] = float(value)
                except ValueError:
                    continue
    return stages
