"""Text utilities of the answering layer, in one place: words, stop words, content terms, sentences, and
what kind of answer a question asks for.

Extractive selection, the grounding check, citation attribution and conversation rewriting all compare
questions, answers and passages by the same stemmed content words, so they share these definitions.

    >>> content_terms("How many bits does QLoRA use?")
    ['bit', 'qlora']
    >>> split_sentences("## LoRA\\n\\nLoRA freezes the weights. It trains two matrices.")
    ['LoRA freezes the weights.', 'It trains two matrices.']
    >>> answer_type("How many leave days do staff get?"), answer_type("Who wrote it?")
    ('number', 'name')
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

# Small on purpose: words a question shares with every sentence, plus question words and pronouns.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing done down during each else etc few for from
    further had has have having he her here hers herself him himself his how i if in into is it its itself
    just let like many may me might more most much must my myself no nor not now of off on once only or
    other our ours ourselves out over own please same shall she should so some such tell than that the
    their theirs them themselves then there these they this those through to too under until up upon us
    use used uses using very via was we were what when where which while who whom whose why will with
    would you your yours yourself yourselves e.g i.e""".split()
)

_WORD_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_+#.\-]*[A-Za-z0-9_+#]|[A-Za-z0-9_]")
# Split after . ! ? (and a closing quote or bracket) followed by space and an upper-case letter, digit,
# quote or bracket.
_SENTENCE_END_RE = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]\u201d\u2019]))\s+(?=[A-Z0-9\"'(\[*`\u201c\u2018])")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "fig.", "eq.", "approx.", "cf.", "al.", "no.", "dr.", "mr.")
_BULLET_RE = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+")
_LONG_SENTENCE_WORDS = 40
_LOOSE_END_RE = re.compile(r"(?<=[.;])\s+")
# A line ending in one of these words runs on into the next even when that starts with a capital.
_JOINING_WORDS = frozenset(
    "a an the of to and or but with for in on by from that which as than is are was were be like such "
    "called named using via into onto".split()
)
# Interactive sessions and shell prompts in manuals, and the error lines they print ("ValueError: ...",
# "Traceback (most recent call last):"): code and its output, not prose.
_CODE_LINE_RE = re.compile(r"^\s*(?:>>>|\.\.\.\s|\$ |C:\\>|%\s|[A-Z]\w*(?:Error|Exception|Warning): |Traceback \()")
_SECTION_NUMBER_RE = re.compile(r"(?:\d+\.)+\d*\.?|[IVX]+\.")
_TITLE_START_RE = re.compile(r"(?:how to|step \d+|chapter|section|part|appendix|introduction|overview)\b",
                             re.IGNORECASE)
# Two or more keyword=default parameters inside brackets: a function signature from API documentation.
_SIGNATURE_RE = re.compile(r"\(\s*[^()]*\b\w+=[^,()]*,\s*[^()]*\b\w+=")
# A field list entry of a manual or form: a short label, a colon, then a value ("Author : Andrew Dalke").
_FIELD_RE = re.compile(r"^[A-Z][A-Za-z]*(?: [A-Za-z]+){0,2}\s?:\s+\S")
_CAPTION_RE = re.compile(r"^(?:figure|fig\.|table|listing|image|diagram)\s*\d*[.:]", re.IGNORECASE)
# "once" and "twice" answer "how many times".
_NUMBER_WORDS = ("one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty "
                 "hundred thousand million billion half dozen once twice").split()
# A number is a token that starts with a digit ("4", "3.11", "/64", "UTF-8"), not a digit inside a name
# ("bz2", "IPv6", "sha256", "MiniLM-L6"), or a number word.
_DIGITS_RE = re.compile(r"(?<![A-Za-z_])\d")
_ZERO_RE = re.compile(r"\b(?:no|none|zero)\b", re.IGNORECASE)  # a count of zero is a count
_NUMBER_RE = re.compile(r"(?<![A-Za-z_])\d|\b(?:" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)
_MONTHS = ("january february march april may june july august september october november december "
           "jan feb mar apr jun jul aug sep sept oct nov dec").split()
_TIME_RE = re.compile(
    r"\b(?:1[5-9]\d\d|20\d\d)\b|\b(?:" + "|".join(_MONTHS) + r")\b|\b\d+(?:\.\d+)?\s*(?:seconds?|minutes?|"
    r"hours?|days?|weeks?|months?|years?|ms|s|h)\b|\b(?:second|minute|hour|day|week|month|year)s?\b"
    r"|\b\d{1,2}:\d\d\b|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|today|yesterday)\b",
    re.IGNORECASE,
)
# (question pattern, answer type); the first match wins.
_ANSWER_TYPES = (
    (re.compile(r"\bhow (?:many|much|large|big|small|long|often|fast|far|high|wide|old|heavy)\b|"
                r"\bwhat (?:percentage|percent|proportion|share|number|size|amount|fraction|ratio)\b|"
                r"\bhow many\b", re.IGNORECASE), "number"),
    # "What is the maximum size of ...", "Which compression level ...", "In which version ...": a measured
    # or numbered thing, which manuals write in digits ("two other modules" does not name a version).
    # A level is named by a number or a constant ("compression level 9", "the default level is WARNING"),
    # and only when the question asks for it: "level" ends the asking phrase ("Which level does ...",
    # "What is the default logging level?"), it does not describe another noun ("a higher level interface").
    (re.compile(r"\b(?:what|which)\b(?:\s+[\w-]+){0,4}?\s+levels?(?:\s*\?|\s*$|\s+(?:does|do|is|are|was|"
                r"were|will|should|can|of|for|in|on|at|by|when)\b)", re.IGNORECASE), "level"),
    (re.compile(r"\b(?:what|which)\b(?:\s+[\w-]+){0,4}?\s+(?:size|count|length|limit|depth|port|"
                r"version|resolution|rate|percentage|precision)s?\b", re.IGNORECASE), "quantity"),
    # "When" asks for a time only as the question word ("When was QLoRA published?", "Since when ...");
    # inside a what/which question, or before one ("When n==1, what is ...?"), it opens a condition.
    (re.compile(r"^\s*(?:(?:since|until|till|and|but|so) )?when\b(?![^?]*,\s*(?:what|which|how|who|where|why)\b)|\bwhat (?:year|date|day|month|time)\b|"
                r"\bwhich (?:year|date|day|month)\b|\bhow soon\b|\bin (?:what|which) year\b", re.IGNORECASE),
     "time"),
    (re.compile(r"^\s*(?:who|whom|whose)\b|\bby whom\b|\bwho (?:wrote|created|invented|developed)\b|"
                r"\b(?:what|which) (?:company|companies|person|people|organi[sz]ation|vendor|author|team)\b",
                re.IGNORECASE), "name"),
)


@lru_cache(maxsize=1)
def _stemmer():
    try:
        import Stemmer  # PyStemmer: Snowball stemmers in C

        return Stemmer.Stemmer("english").stemWord
    except ImportError:  # pragma: no cover - PyStemmer is a dependency; this keeps the module usable
        return _suffix_stem


def _suffix_stem(word: str) -> str:
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def words(text: str) -> list[str]:
    """Word tokens of ``text`` in their original case ("LoRA", "fine-tuning", "4-bit", "GPT-4", "__init__")."""
    return _WORD_RE.findall(text)


def content_terms(text: str) -> list[str]:
    """Stemmed, lower-cased content words of ``text``, stopwords removed, in order."""
    stem = _stemmer()
    out = []
    for w in words(text):
        w = w.lower()
        if w in STOPWORDS:
            continue
        out.append(stem(w))
        if "-" in w or "." in w:  # "low-rank" also matches "rank"; "math.fsum" also "fsum"
            out.extend(stem(p) for p in re.split(r"[-.]", w) if len(p) > 1 and p not in STOPWORDS)
    return out


# Words that frame a question rather than name what it is about ("What does HNSW stand for, according to
# the glossary?"): an answering sentence rarely contains them, so sentence scoring leaves them out.
QUESTION_FRAME = frozenset(
    """stand stands called call named name term terms mean means meaning refer refers referred according
    describe described define defined definition known document documents documentation guide glossary
    manual section chapter page tutorial howto note""".split()
)


# "What exception is raised ...?", "Which module makes ...?": the word after what/which names the kind
# of thing asked for; the answering sentence names an instance of it ("... results in ValueError"), and
# often not the kind. A number or name asked for this way is checked by the answer type instead.
_WH_HEAD_RE = re.compile(r"^\s*(?:(?:in|on|at|for|from|with|by|to|of) )?(?:what|which) ([A-Za-z][\w-]*)",
                         re.IGNORECASE)


def question_terms(question: str) -> list[str]:
    """The content terms of a question that an answering sentence should hold (frame words and the
    kind named after a leading what/which left out)."""
    frame = _frame_words(question)
    kept = [t for w in words(question) if w.lower() not in frame for t in content_terms(w)]
    return kept or content_terms(question)


def question_head(question: str) -> str | None:
    """The kind of thing a leading what/which asks for ("Which hash does uuid3() use?" -> "hash")."""
    head = _WH_HEAD_RE.match(question)
    return head.group(1).lower() if head else None


def _frame_words(question: str) -> set[str]:
    """The words that frame ``question`` rather than say what it is about: QUESTION_FRAME and the kind after
    a leading what/which. Matched as written, not by stem: "page" frames a question, "paged" is its content."""
    head = question_head(question)
    return set(QUESTION_FRAME) | ({head} if head else set())


def question_term_groups(question: str) -> list[tuple[str, ...]]:
    """:func:`question_terms` grouped by the question word they come from: a compound ("fine-tuning",
    "secrets.token_bytes") is one word of the question, held by a sentence that has it whole or has its
    parts, so it is weighed once rather than once per part."""
    frame = _frame_words(question)
    groups: dict[str, tuple[str, ...]] = {}
    for w in words(question):
        if w.lower() in frame:
            continue
        terms = tuple(dict.fromkeys(content_terms(w)))
        if terms and terms[0] not in groups:
            groups[terms[0]] = terms
    return list(groups.values()) or [(t,) for t in dict.fromkeys(content_terms(question))]


def question_names(question: str) -> list[tuple[str, ...]]:
    """The names in ``question``, each as :func:`question_term_groups` groups it: words written with a capital
    past the question's first word ("Kestrel", "Adam"), or with an inner capital or a digit anywhere ("LoRA",
    "ORPO", "MiniLM", "GPT-4", "7B"); stop words and question-frame words are not names.

    A name says which thing the question is about: "How many engineers are in the Kestrel team?" is not
    answered by a sentence about the Heron team, however many of the other words it shares.
    """
    frame = _frame_words(question)
    out: dict[str, tuple[str, ...]] = {}
    for i, w in enumerate(words(question)):
        lower = w.lower()
        if lower in STOPWORDS or lower in frame:
            continue
        inner = any(ch.isupper() for ch in w[1:]) or (any(ch.isdigit() for ch in w) and any(ch.isalpha() for ch in w))
        if not (inner or (i > 0 and w[:1].isupper())):
            continue
        terms = tuple(dict.fromkeys(content_terms(w)))
        if terms and terms[0] not in out:
            out[terms[0]] = terms
    return list(out.values())


# ", and what is its short form?": a second question joined to the first.
_SECOND_QUESTION_RE = re.compile(r",?\s+(?:and|but)\s+(?=(?:what|which|how|who|whom|when|where|why)\b)", re.IGNORECASE)


# "What is the difference between LoRA and QLoRA?", "How does RAG compare with fine-tuning?", "BM25 vs
# dense retrieval": a comparison asks what each side is. No single sentence usually says both (the question
# abstained), and the word "difference" is rarely in the answer; one sentence about each side answers it.
_SIDE = r"(?:an? |the )?([\w .,'+/-]{1,80}?)"
_COMPARISON_RES = tuple(re.compile(p, re.IGNORECASE) for p in (
    rf"^\s*what(?:'s| is| are| was| were) (?:the )?(?:main |key |real )?differences? between {_SIDE} and {_SIDE}\s*\?*\s*$",
    rf"^\s*how (?:does|do|is|are) {_SIDE} (?:differ|different) from {_SIDE}\s*\?*\s*$",
    rf"^\s*how (?:does|do) {_SIDE} compare (?:to|with|against) {_SIDE}\s*\?*\s*$",
    rf"^\s*what distinguishes {_SIDE} from {_SIDE}\s*\?*\s*$",
    rf"^\s*compare {_SIDE} (?:and|with|to) {_SIDE}\s*[.?]*\s*$",
    rf"^\s*{_SIDE} (?:vs\.?|versus) {_SIDE}\s*\?*\s*$",
))


_LIST_SEPARATOR_RE = re.compile(r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+")


def compared_sides(question: str) -> list[str]:
    """The things a comparison question compares ("What is the difference between LoRA and QLoRA?" ->
    ["LoRA", "QLoRA"]; two to four, each at most six words); empty for any other question."""
    for pattern in _COMPARISON_RES:
        m = pattern.match(question)
        if m:
            # "between RAG, fine-tuning and prompting", or a follow-up rewritten to "... compare with QLoRA, DoRA"
            sides = [x.strip() for g in m.groups() for x in _LIST_SEPARATOR_RE.split(g)]
            sides = [re.sub(r"^(?:an?|the) ", "", x, flags=re.IGNORECASE) for x in sides if x]
            if 2 <= len(sides) <= 4 and all(content_terms(x) and len(words(x)) <= 6 for x in sides):
                return sides
    return []


def question_parts(question: str) -> list[str]:
    """The questions a two-part question asks, each on its own ("Which option does a program get for
    free, and what is its short form?" -> two; "What is the difference between LoRA and QLoRA?" -> "What
    is LoRA?" and "What is QLoRA?"); a one-part question is returned alone."""
    sides = compared_sides(question)
    if sides:
        return [f"What is {x}?" for x in sides]
    parts = [p.strip(" ,") for p in _SECOND_QUESTION_RE.split(question)]
    parts = [p for p in parts if content_terms(p)]
    return parts if len(parts) > 1 else [question]


def key_terms(text: str) -> list[str]:
    """Content words of ``text`` as written (first occurrence of each stem), for query expansion."""
    stem = _stemmer()
    seen: set[str] = set()
    out = []
    for w in words(text):
        s = stem(w.lower())
        if w.lower() in STOPWORDS or s in seen:
            continue
        seen.add(s)
        out.append(w)
    return out


def numbers(text: str) -> set[str]:
    """The numbers written in digits in ``text``, normalised ("1,000" -> "1000", "4.0" kept as written)."""
    return {m.replace(",", "") for m in re.findall(r"\d+(?:[.,]\d+)*", text)}


# "What is LoRA?", "What are adapters?", "What does HNSW stand for?": a definition question. Its subject is
# at most six words; "What is X used for?" or "What does X return?" ask something else.
_SUBJECT_RE = re.compile(r"^\s*what (?:(?:is|are|was|were) (?:an? |the )?([\w .'-]{1,80}?)|"
                         r"(?:does|do) (?:an? |the )?([\w .'-]{1,80}?) (?:stand for|mean))\s*\?*\s*$",
                         re.IGNORECASE)
_COPULA = frozenset("is are was were means mean refers refer stands stand denotes".split())
_DETERMINERS = frozenset("a an the one any each every".split())


def asked_subject(question: str) -> list[str]:
    """The words of the subject a definition question ("What is X?") asks about; empty for other questions."""
    m = _SUBJECT_RE.match(question)
    subject = (m.group(1) or m.group(2)) if m else ""
    found = words(subject)
    return found if 0 < len(found) <= 6 else []


def defines_subject(sentence: str, subject: list[str]) -> bool:
    """Whether ``sentence`` has the shape of a definition of ``subject`` (TREC definitional QA's patterns):
    it opens with the subject (after an optional article) followed by a copula ("BM25 is the classic lexical
    ranking function", "HNSW stands for ...") or an apposition ("LoRA, a reparameterisation method, ...",
    "LoRA (low-rank adaptation) ..."), or with the subject's long form and the subject in brackets
    ("Low-rank adaptation (LoRA) and its quantised variant ..."). A sentence that names the subject only
    further on is about something else ("... so a merged LoRA model runs exactly as fast")."""
    if not subject:
        return False
    spelled = re.escape(" ".join(subject))
    if re.match(rf"^[\w '-]{{1,60}}\(\s*{spelled}\s*\)", sentence, re.IGNORECASE):
        return True  # "Low-rank adaptation (LoRA) ...": the sentence opens by spelling the subject out
    tokens = [w.lower() for w in words(sentence)]
    if tokens and tokens[0] in ("a", "an", "the"):
        tokens = tokens[1:]
    n = len(subject)
    stem = _stemmer()
    # By stem: "What are adapters?" is defined by "An adapter is ...".
    if [stem(t) for t in tokens[:n]] != [stem(w.lower()) for w in subject]:
        return False
    opening = [w for w in words(sentence) if w.lower() not in ("a", "an", "the")][:n]
    at = sentence.find(opening[-1]) if opening else -1
    rest = sentence[at + len(opening[-1]):].lstrip() if at >= 0 else ""
    if rest.startswith(("(", ",")):  # "LoRA (low-rank adaptation) is", "LoRA, a method that"
        return True
    if len(tokens) <= n or tokens[n] not in _COPULA:
        return False
    # The copula must open a noun phrase (TREC's "X is a/an/the NP"): "Perplexity is useful for ...",
    # "Instruction tuning is why ..." and "Adapters were proposed in 2019" do not say what X is. A plural
    # definition often has no article ("Adapters are small bottleneck layers"), so after are/were only a
    # participle or an adverb is refused.
    after = tokens[n + 1] if len(tokens) > n + 1 else ""
    if tokens[n] in ("is", "was"):
        return after in _DETERMINERS
    if tokens[n] in ("are", "were"):
        return bool(after) and not after.endswith(("ed", "ly"))
    return True


# "What is each score multiplied by?": a question that ends on a preposition asks for that preposition's object.
_PREPOSITIONS = frozenset("to for of in on by with from into onto at about as after over under between through "
                          "within against towards".split())
_STRANDED_RE = re.compile(r"\b([a-z]+)\s*\?+\s*$")  # lower case: "the Sorting HOW TO?" names a title


def stranded_preposition(question: str) -> str | None:
    """The preposition a question ends on ("What does QLoRA quantise the base model to?" -> "to"), if any."""
    m = _STRANDED_RE.search(question)
    return m.group(1) if m and m.group(1) in _PREPOSITIONS else None


def completes_preposition(sentence: str, question_terms: set[str] | frozenset[str], preposition: str) -> bool:
    """Whether a question word is directly followed by ``preposition`` in ``sentence`` ("... a base model
    quantised to 4-bit NormalFloat"): the sentence then names the object the question asks for."""
    tokens = words(sentence)
    return any(b.lower() == preposition and set(content_terms(a)) & question_terms
               for a, b in itertools.pairwise(tokens))


def answer_type(question: str) -> str | None:
    """What the question asks for: ``"number"`` (how many / how large), ``"quantity"`` (what size / which
    version: written in digits), ``"level"`` (a number or a constant name), ``"time"`` (when), ``"name"``
    (who), or None (anything else)."""
    for pattern, kind in _ANSWER_TYPES:
        if pattern.search(question):
            return kind
    return None


def has_answer_type(sentence: str, kind: str | None, question: str = "") -> bool:
    """Whether ``sentence`` holds something of the ``kind`` the question asks for (None: always)."""
    if kind == "number":
        # "Contractors receive no paid vacation." answers "How many vacation days do contractors get?"
        return bool(_NUMBER_RE.search(sentence) or _ZERO_RE.search(sentence))
    if kind == "quantity":
        return bool(_DIGITS_RE.search(sentence))
    if kind == "level":
        asked = {w.lower() for w in words(question)}
        return bool(_DIGITS_RE.search(sentence)) or any(
            len(t) >= 3 and t.isupper() and t.isalpha() and t.lower() not in asked for t in words(sentence))
    if kind == "time":
        return bool(_TIME_RE.search(sentence))
    if kind == "name":
        asked = {w.lower() for w in words(question)}
        # A capitalised word that is not the sentence's first word and not already in the question.
        tokens = words(sentence)[1:]
        return any(t[0].isupper() and t.lower() not in asked and t.lower() not in STOPWORDS for t in tokens)
    return True


def is_heading_like(sentence: str) -> bool:
    """A heading, caption or label rather than a statement: it names a topic, it does not answer.

    "How to descale the Gaggia Classic", "2.1. Invoking the Interpreter", "Figure 3: Latency", "Note".
    A table or CSV row ("HNSW, hierarchical navigable small world, an approximate index") is not one.
    """
    s = sentence.strip()
    if not s:
        return True
    if _CAPTION_RE.match(s):
        return True
    if s.endswith((".", "!", "?", ";", ")", '"', "\u201d")) and not _SECTION_NUMBER_RE.fullmatch(s.split()[0]):
        return False
    if _FIELD_RE.match(s) and not _TITLE_START_RE.match(s):
        return False  # "Author : Andrew Dalke", "Release: 0.1": a field and its value state a fact
    ws = s.rstrip(":").split()
    if "," in s or len(ws) > 12:
        return False
    if _SECTION_NUMBER_RE.fullmatch(ws[0]) or len(ws) <= 6 or _TITLE_START_RE.match(s):
        return True  # "2.1. Invoking the Interpreter", "Key Functions", "How to descale the machine"
    # Longer unpunctuated lines are titles when most of their words are capitalised.
    capitalised = sum(w[0].isupper() for w in ws if w.lower() not in STOPWORDS)
    return capitalised >= 0.6 * max(1, sum(w.lower() not in STOPWORDS for w in ws))


def is_code(sentence: str) -> bool:
    """An interactive-session or shell line (">>> sorted(x)", "$ pip install"), an API signature
    ("json.loads(s, *, cls=None, object_hook=None)") or a list of API names, not prose."""
    return bool(_CODE_LINE_RE.match(sentence) or _SIGNATURE_RE.search(sentence) or sentence.rstrip().endswith("\u00b6")
                or _is_name_list(sentence))


def _is_name_list(sentence: str) -> bool:
    """A run of API names: the table of contents a manual's HTML page carries in its sidebar, flattened
    into text ("bisect_left() bisect_right() bisect() insort_left() insort()"). It names every function
    of the page, so it matches many questions while answering none."""
    tokens = sentence.split()
    calls = sum(t.rstrip(",;") .endswith("()") for t in tokens)
    return calls >= 4 and calls >= 0.4 * len(tokens)


def split_sentences(text: str) -> list[str]:
    """Sentences of a chunk: paragraphs re-joined across hard line wraps, list items, slide bullets and
    headings kept apart, Markdown headings, fences and interactive-session lines skipped."""
    units: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        current: list[str] = []
        for line in block.splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", "```", "|")) or is_code(stripped):
                if current:
                    units.append(" ".join(current))
                    current = []
                continue
            if current and (_BULLET_RE.match(line) or not _continues(current[-1], stripped)):
                units.append(" ".join(current))
                current = []
            current.append(_BULLET_RE.sub("", stripped) if not current else stripped)
        if current:
            units.append(" ".join(current))
    sentences: list[str] = []
    for unit in units:
        unit = unit.replace("**", "")  # Markdown bold; "__" is left alone, it is part of names like __init__
        pieces = _SENTENCE_END_RE.split(unit)
        merged: list[str] = []
        for piece in pieces:
            # Re-join a split made after an abbreviation ("e.g. LoRA").
            if merged and merged[-1].lower().endswith(_ABBREVIATIONS):
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        for sentence in merged:
            # Tables and slides flattened into one line have no capitalised sentence starts: cut long
            # runs at any full stop or semicolon, so one table row is one candidate.
            if len(sentence.split()) > _LONG_SENTENCE_WORDS:
                sentences.extend(p.strip() for p in _LOOSE_END_RE.split(sentence) if p.strip())
            elif sentence.strip():
                sentences.append(sentence.strip())
    return sentences


def _continues(previous: str, line: str) -> bool:
    """Whether ``line`` continues the sentence of ``previous`` (a hard-wrapped paragraph) rather than
    starting a new item (a slide bullet, a PDF heading, a line of a table or list without markers)."""
    if previous.endswith((".", "!", "?", ":")):
        return False
    if not line[0].isupper():
        return True  # lower case, digit or punctuation: the sentence goes on
    last = previous.rsplit(" ", 1)[-1].lower()
    return previous.endswith((",", ";", "-", "(")) or last in _JOINING_WORDS


# -- scoring answers against a gold answer (the answers bench, `tune eval`, the advisor's pilot) ---------------
_CITATION_MARKER_RE = re.compile(r"\[\s*\d+(?:\s*[,;\-]\s*\d+)*\s*\]")  # [1], [1, 3], [2-4]
_ARTICLE_RE = re.compile(r"\b(?:a|an|the)\b")
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}\b)")  # 1,200,000 -> 1200000
_PUNCTUATION_RE = re.compile(r"(?!(?<=\d)\.(?=\d))[^\w\s]|_")  # every mark but a decimal point


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation for scoring: lower case; citation markers, punctuation and articles removed.

    Punctuation is every non-word character, Unicode quotes and dashes included: documents write
    "Python’s" and answers copied from them must match a gold "Python's" (ASCII-only normalisation scored
    such a copy wrong). Punctuation becomes a space, so "32-bit" matches "32 bit"; but a number keeps its
    decimal point and loses its thousands commas, since "2.1" split into "2" and "1" made "1.2 million" a
    perfect match for "2.1 million" and any "1" a partial one.

    >>> normalize_answer("The “Monty Python’s” show [1].")
    'monty python s show'
    >>> normalize_answer("About 2.1 million, not 1,200,000.")
    'about 2.1 million not 1200000'
    """
    text = _CITATION_MARKER_RE.sub(" ", text.lower())
    text = _THOUSANDS_RE.sub("", text)
    text = _PUNCTUATION_RE.sub(" ", text)
    return " ".join(_ARTICLE_RE.sub(" ", text).split())


def answer_f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 of two answers after :func:`normalize_answer` (SQuAD: 1.0 when both are empty)."""
    from collections import Counter

    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or same == 0:
        return float(pred == ref)
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def holds_fact(answer: str, gold: str) -> bool:
    """Whether ``answer`` contains ``gold`` as a run of whole words, after :func:`normalize_answer`.

    >>> holds_fact("It raises ValueError [1].", "ValueError"), holds_fact("ValueErrors", "ValueError")
    (True, False)
    """
    g = normalize_answer(gold)
    return bool(g) and f" {g} " in f" {normalize_answer(answer)} "
