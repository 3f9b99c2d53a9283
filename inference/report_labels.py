"""What a radiology report says of a finding: positive, negative or uncertain.

The report is the ground truth the AI is monitored against (sensitivity, PPV).
A small NegEx/ConText-style rule set, not a language model: each mention of a
finding's terms in a sentence is read with the negation and uncertainty cues
around it, and the tests pin every rule. medspaCy or negspacy would bring spaCy
and its models into every web and worker process for two findings' worth of
vocabulary; this stays plain Python and explains each label (the cue it found).

Plain Python, no Django: the AI monitoring and its tests use it directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from inference.vocabulary import ReportLabel

#: Cues before a term that negate it ("no acute hemorrhage").
NEGATION_BEFORE = (
    "no evidence of",
    "no evidence for",
    "no sign of",
    "no signs of",
    "no findings of",
    "negative for",
    "free of",
    "absence of",
    "without",
    "rules out",
    "ruled out",
    "no",
    "not",
    "nor",
)
#: Cues after a term that negate it ("hemorrhage is not seen").
NEGATION_AFTER = (
    "is not seen",
    "are not seen",
    "not seen",
    "is not identified",
    "are not identified",
    "not identified",
    "not demonstrated",
    "is absent",
    "are absent",
    "is excluded",
    "has resolved",
    "have resolved",
    "resolved",
    "ruled out",
)
#: Cues on either side that make a mention uncertain ("possible fracture",
#: "fracture cannot be excluded"). Read before the negations, so "cannot be
#: excluded" is uncertain, not negated.
UNCERTAIN_BEFORE = (
    "cannot exclude",
    "can not exclude",
    "cannot rule out",
    "can not rule out",
    "differential includes",
    "questionable",
    "possible",
    "possibly",
    "probable",
    "suspicious for",
    "suspected",
    "concern for",
    "concerning for",
    "suggestive of",
    "suggesting",
    "may represent",
    "may reflect",
    "equivocal for",
    "versus",
    "vs",
    "likely",
)
UNCERTAIN_AFTER = (
    "cannot be excluded",
    "can not be excluded",
    "cannot be ruled out",
    "can not be ruled out",
    "not excluded",
    "is not excluded",
    "is questioned",
    "is suspected",
    "is possible",
    "is equivocal",
    "versus",
    "vs",
)
#: Phrases that look like negations but are not ("no change in the hematoma").
PSEUDO_NEGATIONS = (
    "no change",
    "no interval change",
    "no significant change",
    "no significant interval change",
    "not significantly changed",
    "no increase",
    "no significant increase",
    "not only",
)
#: Words that end a cue's reach within a sentence ("no fracture, but a bleed").
TERMINATORS = (
    "but",
    "however",
    "although",
    "though",
    "except",
    "aside from",
    "apart from",
    "which",
    "and there is",
    "there is",
    "there are",
)
#: A report's sections, the one that decides first.
IMPRESSION_HEADINGS = ("impression", "conclusion", "opinion", "summary")

_SENTENCE_END = re.compile(r"(?<!\d)[.;!?](?!\d)|\n+")
_HEADING = re.compile(r"^\s*([A-Za-z ]{3,30}):", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Mention:
    """One mention of a finding in a sentence, and how the report qualifies it."""

    label: ReportLabel
    term: str
    cue: str  # the cue that decided the label; "" for a plain positive


@dataclass(frozen=True, slots=True)
class Labelled:
    """A finding's label in one report, with the mentions that decided it."""

    label: ReportLabel
    mentions: tuple[Mention, ...]
    section: str  # "impression" or "body": where the deciding mentions are

    @property
    def explanation(self) -> str:
        """Why, in words a monitor can check (no patient detail: report words)."""
        if not self.mentions:
            return "not mentioned in the report"
        deciding = next(m for m in self.mentions if m.label == self.label)
        if deciding.cue:
            return f'"{deciding.cue}" {deciding.term} ({self.section})'
        return f"{deciding.term} ({self.section})"


def _phrase_pattern(phrases: Iterable[str]) -> re.Pattern[str]:
    # Longest first, so "no evidence of" wins over "no".
    ordered = sorted(set(phrases), key=len, reverse=True)
    alternatives = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in ordered)
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


_NEG_BEFORE = _phrase_pattern(NEGATION_BEFORE)
_NEG_AFTER = _phrase_pattern(NEGATION_AFTER)
_UNC_BEFORE = _phrase_pattern(UNCERTAIN_BEFORE)
_UNC_AFTER = _phrase_pattern(UNCERTAIN_AFTER)
_PSEUDO = _phrase_pattern(PSEUDO_NEGATIONS)
_TERMINATOR = _phrase_pattern(TERMINATORS)


def terms_pattern(terms: Sequence[str]) -> re.Pattern[str]:
    """A finding's terms as one pattern; each matches its plural ("-s"/"-es") too."""
    if not terms:
        raise ValueError("a finding needs at least one report term")
    ordered = sorted({t.strip().lower() for t in terms if t.strip()}, key=len)
    alternatives = "|".join(
        re.escape(t).replace(r"\ ", r"\s+") + "(?:e?s)?" for t in reversed(ordered)
    )
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


def _sections(text: str) -> tuple[str, str]:
    """(impression, the rest): the impression is what the radiologist concludes."""
    headings = list(_HEADING.finditer(text))
    impression: list[str] = []
    rest: list[str] = []
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        body = text[heading.end() : end]
        name = heading.group(1).strip().lower()
        (impression if name in IMPRESSION_HEADINGS else rest).append(body)
    before_first = text[: headings[0].start()] if headings else text
    return "\n".join(impression), "\n".join([before_first, *rest])


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _last_cue(pattern: re.Pattern[str], window: str) -> str:
    """The cue nearest the term in the words before it, unless a terminator or
    a pseudo-negation stands between them."""
    cues = list(pattern.finditer(window))
    if not cues:
        return ""
    cue = cues[-1]
    between = window[cue.end() :]
    if _TERMINATOR.search(between):
        return ""
    if _PSEUDO.search(window[cue.start() :]):
        return ""
    return cue.group(0).lower()


def _first_cue(pattern: re.Pattern[str], window: str) -> str:
    """The cue nearest the term in the words after it, up to a terminator."""
    stop = _TERMINATOR.search(window)
    reach = window[: stop.start()] if stop else window
    cue = pattern.search(reach)
    return cue.group(0).lower() if cue else ""


def _mentions(sentence: str, terms: re.Pattern[str]) -> list[Mention]:
    found = []
    for match in terms.finditer(sentence):
        before, after = sentence[: match.start()], sentence[match.end() :]
        term = match.group(0).lower()
        uncertain = _last_cue(_UNC_BEFORE, before) or _first_cue(_UNC_AFTER, after)
        if uncertain:
            found.append(Mention(ReportLabel.UNCERTAIN, term, uncertain))
            continue
        negated = _last_cue(_NEG_BEFORE, before) or _first_cue(_NEG_AFTER, after)
        if negated:
            found.append(Mention(ReportLabel.NEGATIVE, term, negated))
            continue
        found.append(Mention(ReportLabel.POSITIVE, term, ""))
    return found


def _decide(mentions: Sequence[Mention]) -> ReportLabel:
    labels = {m.label for m in mentions}
    for label in (ReportLabel.POSITIVE, ReportLabel.UNCERTAIN, ReportLabel.NEGATIVE):
        if label in labels:
            return label
    return ReportLabel.NOT_MENTIONED


def label_report(text: str, terms: Sequence[str]) -> Labelled:
    """What ``text`` says of the finding named by ``terms``.

    The impression decides when it mentions the finding; the rest of the report
    only when it does not. Within the deciding part, one positive mention makes
    the finding positive, else one uncertain mention makes it uncertain, else a
    negated mention makes it negative; no mention at all is "not mentioned".
    """
    pattern = terms_pattern(terms)
    impression, body = _sections(text)
    for section, part in (("impression", impression), ("body", body)):
        mentions = [m for s in _sentences(part) for m in _mentions(s, pattern)]
        if mentions:
            return Labelled(_decide(mentions), tuple(mentions), section)
    return Labelled(ReportLabel.NOT_MENTIONED, (), "")
