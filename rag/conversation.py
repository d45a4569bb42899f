"""Conversation: bounded chat history, and follow-up questions rewritten into standalone queries.

Retrieval sees one query, not the conversation, so "What is its rank?" after "What is LoRA?" must become
something like "What is the rank of LoRA?" before the index is searched. :func:`rewrite_query` asks an
LLM generator for that rewrite (a short prompt, greedy), checks the result looks like a question about
the same things, and otherwise - or with the extractive generator - falls back to a heuristic: append
the key terms of the previous questions ("What is its rank? (LoRA)").

    >>> chat = rag.conversation()                  # doctest: +SKIP
    >>> chat.ask("What is LoRA?").text             # doctest: +SKIP
    >>> chat.ask("What is its rank?").query        # doctest: +SKIP
    'What is its rank? (LoRA)'
"""

from __future__ import annotations

import re
from collections import deque
from typing import TYPE_CHECKING

from ragtune.errors import RagtuneError

from .citations import strip_citations
from .generators.base import Generator, Message
from .prompt import ABSTAIN_TEXT
from .text import QUESTION_FRAME, STOPWORDS, content_terms, key_terms, question_names, question_term_groups, words

if TYPE_CHECKING:  # pragma: no cover
    from .answer import RAG, AnswerStream
    from .types import Answer

# Words that point back into the conversation: a question containing one is not standalone.
_REFERRING = frozenset(
    "it its it's they them their theirs this that these those he she him her his there one ones "
    "former latter same such above previous aforementioned".split()
)
_CONTINUATIONS = ("and ", "what about", "how about", "also", "but ", "so ", "then ", "why", "how so", "what else")
_REWRITE_SYSTEM = (
    "Rewrite the last question so that it can be understood without the conversation. "
    "Do not answer it. Reply with the rewritten question only.\n"
    "Example: after a conversation about LoRA, 'How much memory does it save?' becomes "
    "'How much memory does LoRA save?'"
)
_MAX_CONTEXT_TERMS = 8
_HISTORY_WORDS = 40  # an earlier answer is cut to this many words in the rewrite prompt
def needs_rewrite(question: str) -> bool:
    """Whether ``question`` leans on the conversation: a pronoun, a continuation, or no content words."""
    lower = question.strip().lower()
    tokens = {w.lower() for w in words(lower)}
    return bool(tokens & _REFERRING) or lower.startswith(_CONTINUATIONS) or not content_terms(question)


# Pronouns that stand for the earlier question's topic; "he or she" and friends first, so they go whole.
_PRONOUN_RE = re.compile(
    r"\b(?:he or she|she or he|him or her|her or him|his or her|they|them|it|he|she|him|this|that|these|those)\b",
    re.IGNORECASE,
)
_POSSESSIVE_RE = re.compile(r"\b(?:its|their|his or her|his)\b", re.IGNORECASE)
_PERSONAL_RE = re.compile(r"\b(?:he|she|him|her|his|hers)\b", re.IGNORECASE)
_NEUTER_RE = re.compile(r"\b(?:it|its)\b", re.IGNORECASE)
_TOKEN_RE = re.compile(r"[\w][\w'+#.\-]*[\w+#]|[\w]")  # a word as written: "on-call", "list.sort", "C++"
_QUESTION_START_RE = re.compile(
    r"(?:what|which|who|whom|whose|how|when|where|why|is|are|was|were|do|does|did|can|could|should|will)\b",
    re.IGNORECASE,
)
_AUXILIARIES = frozenset("do does did can could will would should shall may might must".split())
_CONTINUATION_RE = re.compile(r"^\s*(?:and|but|also|so|then|what about|how about)\b[\s,]*", re.IGNORECASE)
_COPULA_QUESTION_RE = re.compile(r"\s*(?:what|which|who)(?:'s|\s+(?:is|are|was|were))\b", re.IGNORECASE)
_PREPOSITIONS = frozenset("for in with on at about to from of by during under over without per".split())


def topic_phrase(question: str) -> str:
    """The earlier question's topic, as written: its longest run of consecutive content words.

    "How many paid leave days do staff get?" -> "paid leave days"; "Who is the on-call engineer?" ->
    "on-call engineer". A rule, not a parser: it needs no model and is right for the common shapes.
    """
    runs: list[list[str]] = [[]]
    after_auxiliary: list[bool] = [False]
    for w in _TOKEN_RE.findall(question):
        if w.lower() in STOPWORDS or w.lower() in QUESTION_FRAME:
            runs.append([])
            after_auxiliary.append(w.lower() in _AUXILIARIES)
        else:
            runs[-1].append(w)
    # "How much memory does LoRA save?": after an auxiliary comes the subject, then the main verb, when the
    # run ends the question. A run that a word closes ("What constant does reciprocal rank fusion use?")
    # already left its verb outside.
    last = len(runs) - 1
    runs = [r[:-1] if aux and len(r) >= 2 and i == last else r for i, (r, aux) in enumerate(zip(runs, after_auxiliary))]
    # "... is the on-call engineer paged?": a participle closing the question is the verb, not the topic.
    # Not after "What/Which/Who is": there "is" is the verb, and "prompt tuning" a whole noun.
    if (len(runs[-1]) >= 2 and runs[-1][-1].lower().endswith(("ed", "ing"))
            and not _COPULA_QUESTION_RE.match(question)):
        runs[-1] = runs[-1][:-1]
    # Ties go to a run with a capitalised word: "LoRA" over "memory".
    best = max(runs, key=lambda r: (len(r), any(w[:1].isupper() for w in r)))
    return " ".join(best)


def _named_run(question: str) -> str | None:
    """The run of content words holding a name (a capitalised word past the first): "Zephyr" in "Who is
    the technical lead of Zephyr?"."""
    tokens = _TOKEN_RE.findall(question)
    run: list[str] = []
    for i, w in enumerate(tokens):
        if w.lower() in STOPWORDS or w.lower() in QUESTION_FRAME:
            if any(x[:1].isupper() for x in run):
                return " ".join(run)
            run = []
        elif i > 0 or not w[:1].isupper():
            run.append(w)
    return " ".join(run) if any(x[:1].isupper() for x in run) else None


def _first_run(text: str) -> str:
    run: list[str] = []
    for w in _TOKEN_RE.findall(text):
        if w.lower() in STOPWORDS:
            if run:
                break
            continue
        run.append(w)
    return " ".join(run)


def heuristic_rewrite(question: str, history: list[Message]) -> str:
    """A standalone question without a model: pronouns replaced by the last question's topic ("How many of
    them can be carried over?" -> "How many of paid leave days can be carried over?"), a continuation
    ("and for contractors?") attached to the last question, otherwise the key terms of the last two user
    questions that ``question`` lacks, appended in brackets."""
    users = [m["content"] for m in history if m.get("role") == "user"]
    if not users:
        return question
    last = users[-1].strip()
    topic = topic_phrase(last)
    answers = [m["content"] for m in history if m.get("role") == "assistant"]
    if re.match(r"\s*(?:who|whom)\b", last, re.IGNORECASE) and answers and _PERSONAL_RE.search(question):
        # "Who is paged first?" - "The on-call engineer is paged ..." - "How long does he or she have?":
        # the person is the subject of the answer, its first run of content words.
        subject = _first_run(strip_citations(answers[-1]))
        topic = subject or topic
    elif re.match(r"\s*(?:who|whom)\b", last, re.IGNORECASE) and _NEUTER_RE.search(question):
        # "Who is the technical lead of Zephyr?" - "Where does it run?": "it" is not the person asked
        # about (the topic, "technical lead") but the thing named beside it.
        topic = _named_run(last) or topic
    if topic and _CONTINUATION_RE.match(question) and len(question_term_groups(question)) <= 3:
        rest = _CONTINUATION_RE.sub("", question).strip().rstrip("?").strip()
        rest = _PRONOUN_RE.sub(topic, _POSSESSIVE_RE.sub(lambda m: f"{topic}'s", rest))
        if _QUESTION_START_RE.match(rest):  # "and what does sorted() return?" asks a whole question itself
            return rest[:1].upper() + rest[1:] + "?"
        swapped = _swap_parallel(last, rest)
        if swapped:
            return swapped
        return f"{last.rstrip('?').rstrip()}, {rest}?" if rest else last
    if topic and (_PRONOUN_RE.search(question) or _POSSESSIVE_RE.search(question)):
        # One antecedent stands for one pronoun, the first: "When did they do it?" had become "When did
        # retrieval-augmented generation do retrieval-augmented generation?".
        rewritten, done = _POSSESSIVE_RE.subn(lambda m: f"{topic}'s", question, count=1)
        if not done:
            rewritten = _PRONOUN_RE.sub(topic, rewritten, count=1)
        if set(content_terms(rewritten)) - set(content_terms(question)):
            return rewritten
    return _append_terms(question, users)


def _swap_parallel(last: str, rest: str) -> str | None:
    """``last`` asked again about ``rest``'s thing, where the two line up; None where they do not.

    "What is LoRA?" + "what about DoRA?" -> "What is DoRA?": a name asked about in place of the one name the
    last question held. "What is the hotel limit in London?" + "and in Paris?" -> "... in Paris?": the
    phrase after the same preposition. Otherwise (no name to swap, two names, no shared preposition) None.
    """
    tokens = _TOKEN_RE.findall(rest)
    if not tokens:
        return None
    lead = tokens[0].lower()
    if lead in _PREPOSITIONS and len(tokens) > 1:
        phrase = rest[rest.lower().index(lead) + len(lead):].strip()
        # The content words after the last use of the same preposition in the last question.
        found = list(re.finditer(rf"\b{lead}\s+((?:(?:the|a|an)\s+)?(?:[\w'+#.\-]+\s*)+?)\s*(?=\?|,|;|$)",
                                 last, re.IGNORECASE))
        if found:
            m = found[-1]
            return f"{last[: m.start(1)]}{phrase}{last[m.end(1):]}".rstrip().rstrip("?").rstrip() + "?"
        rest = phrase  # "and for QLoRA?" after "What is LoRA's rank?": the name alone takes LoRA's place
    same_head = _swap_same_head(last, rest)
    if same_head:
        return same_head
    # "and ": a fragment's first word is not a question's first word, whose capital says nothing
    names = {g[0] for g in question_names("and " + rest)}
    if not names or names & {g[0] for g in question_names(last)}:  # no new name: nothing to swap
        return None
    spans = [m for m in _TOKEN_RE.finditer(last) if m.start() > 0 and question_names("and " + m.group())]
    if len(spans) != 1:  # no name in the last question, or two (which one "what about X" replaces is unknown)
        return None
    m = spans[0]
    suffix = "'s" if m.group().lower().endswith("'s") else ""
    named = [t for t in tokens if content_terms(t)[:1] and content_terms(t)[0] in names]
    if set(content_terms(rest)) - names <= set(content_terms(last)):
        # "and the context window of Mistral?" after "... the context window of Llama?": the fragment repeats
        # the question around the new name, so the name alone takes the old one's place (the whole fragment
        # had: "... the context window of the context window of Mistral?").
        rest = " ".join(named)
    return f"{last[: m.start()]}{rest}{suffix}{last[m.end():]}".rstrip().rstrip("?").rstrip() + "?"


_ARTICLES = frozenset({"the", "a", "an"})


def _swap_same_head(last: str, rest: str) -> str | None:
    """"How many vacation days do staff get?" + "what about sick days?" -> "How many sick days do staff get?":
    a phrase ending in the same noun as a phrase of the last question names another of the same kind, and
    takes that phrase's place (the run of content words ending in the noun). None when the fragment's last
    word is no content word of the last question, or the fragment adds nothing before it ("and days?")."""
    tokens = _TOKEN_RE.findall(rest)
    head = content_terms(tokens[-1]) if tokens else []
    if len(tokens) < 2 or not head or len(content_terms(rest)) < 2:
        return None
    spans = list(_TOKEN_RE.finditer(last))
    at = next((i for i in range(len(spans) - 1, -1, -1) if content_terms(spans[i].group())[:1] == head[:1]), None)
    if at is None:
        return None
    start = at
    # Back over content words, never onto the question's first word, its frame ("Which", "How").
    while start > 1 and spans[start - 1].group().lower() not in STOPWORDS | QUESTION_FRAME:
        start -= 1
    if start > 0 and tokens[0].lower() in _ARTICLES and spans[start - 1].group().lower() in _ARTICLES:
        start -= 1  # "the meal limit" takes the place of "the hotel limit", article and all
    begin, end = spans[start].start(), spans[at].end()
    if last[begin:end].lower() == rest.lower():
        return None
    return f"{last[:begin]}{rest}{last[end:]}".rstrip().rstrip("?").rstrip() + "?"


def _append_terms(question: str, users: list[str]) -> str:
    """Append the key terms of the last two user questions that ``question`` does not already contain."""
    have = set(content_terms(question))
    extra: list[str] = []
    for previous in reversed(users[-2:]):
        for term in key_terms(previous):
            stem = content_terms(term)
            if stem and stem[0] not in have and len(extra) < _MAX_CONTEXT_TERMS:
                have.add(stem[0])
                extra.append(term)
    # Bare terms in brackets: a label such as "context:" would itself be searched for.
    return f"{question} ({' '.join(extra)})" if extra else question


def llm_rewrite(question: str, history: list[Message], generator: Generator) -> str:
    """Ask ``generator`` for a standalone version of ``question`` (the raw first line of its reply)."""
    lines = []
    for m in history:
        who = "User" if m["role"] == "user" else "Assistant"
        text = " ".join(strip_citations(m["content"]).split()[:_HISTORY_WORDS])
        lines.append(f"{who}: {text}")
    messages = [
        {"role": "system", "content": _REWRITE_SYSTEM},
        {"role": "user", "content": "Conversation:\n" + "\n".join(lines) + f"\n\nLast question: {question}"},
    ]
    reply = generator.generate(messages, max_new_tokens=48, temperature=0.0)
    first = next((line.strip() for line in reply.splitlines() if line.strip()), "")
    first = re.sub(r"^(?:rewritten|standalone)?\s*(?:question)?\s*:\s*", "", first, flags=re.IGNORECASE)
    return first.strip().strip("\"'`").strip()


def plausible_rewrite(candidate: str, question: str, history: list[Message]) -> bool:
    """A rewrite is kept only if it is a short question that keeps the question's words and brings in
    the conversation's (a tiny model often echoes the question, answers it, or drifts)."""
    if not candidate or not re.search(r"[A-Za-z]", candidate) or not candidate.endswith("?"):
        return False  # a rewrite is a question; a statement means the model answered instead
    if candidate.lower().startswith(ABSTAIN_TEXT.lower().rstrip(".")):
        return False
    if len(candidate.split()) > max(30, 3 * len(question.split())):
        return False
    if candidate.strip().lower() == question.strip().lower():
        return False
    got = set(content_terms(candidate))
    asked = set(content_terms(question))
    before = {t for m in history if m.get("role") == "user" for t in content_terms(m["content"])}
    return (not asked or bool(got & asked)) and (not before or bool(got & before))


def rewrite_query(question: str, history: list[Message], generator: Generator | None = None) -> str:
    """The standalone query to retrieve with: ``question`` itself unless it leans on ``history``."""
    if not history or not needs_rewrite(question):
        return question
    if generator is not None and not getattr(generator, "extractive", False):
        try:
            candidate = llm_rewrite(question, history, generator)
        except RagtuneError:  # an unreachable API fails the answer later, with its own message
            candidate = ""
        if plausible_rewrite(candidate, question, history):
            return candidate
    return heuristic_rewrite(question, history)


class Conversation:
    """A chat over one :class:`~ragtune.rag.answer.RAG`: each answer sees the last ``max_turns`` turns.

    History holds the user's questions as rewritten (standalone) and the answers without their citation
    markers.
    """

    def __init__(self, rag: RAG, *, max_turns: int | None = None, filters: dict | None = None):
        self.rag = rag
        self.max_turns = rag.history_turns if max_turns is None else max_turns
        if self.max_turns < 0:
            raise ValueError(f"max_turns must be 0 or more, got {self.max_turns}")
        self.filters = filters
        self._turns: deque[tuple[str, str]] = deque(maxlen=self.max_turns)

    @property
    def history(self) -> list[Message]:
        messages: list[Message] = []
        for question, answer in self._turns:
            messages.append({"role": "user", "content": question})
            messages.append({"role": "assistant", "content": answer})
        return messages

    def ask(self, question: str) -> Answer:
        return self.stream(question).answer

    def stream(self, question: str) -> AnswerStream:
        """Stream the answer; the turn joins the history once the stream has been read to the end."""
        return self.rag.stream(question, history=self.history, filters=self.filters, _on_done=self._record)

    def reset(self) -> None:
        self._turns.clear()

    def _record(self, answer: Answer) -> None:
        # The standalone query, not the words as asked: the next follow-up refers to what this one meant
        # ("And for contractors?" then "How many of them carry over?").
        self._turns.append((answer.query or answer.question, strip_citations(answer.text)))
