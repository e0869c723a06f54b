"""A small template grammar of business-news English, so the demo corpus reads like WSJ text: a
grammar, not a text file, gives unlimited sentences from (seed, i) free of licensing questions."""

from __future__ import annotations

from functools import partial

import numpy as np

_W = str.split  # word lists below are whitespace-separated for compactness
_P = partial(str.split, sep="|")  # and phrase lists |-separated


NAMES = _W(
    "Baker Chen Davis Fischer Garcia Harris Jackson Kowalski Lopez Martin Murphy Nakamura "
    "Olsen Patel Quinn Robinson Schmidt Thompson Vaughn Walker Young Zimmerman Brooks Foster"
)
COMPANIES = _P(
    "General Motors|the Chase bank|Texas Instruments|Boeing|a Chicago insurer|the airline|"
    "the steel maker|the utility|a Boston brokerage|the chemical group|the retailer|"
    "the software company|a Dallas oil producer|the food giant|the publisher|"
    "a Japanese electronics firm|the drug maker|the mining concern"
)
SUBJECTS = _P(
    "the company|the chairman|the board|analysts|investors|the treasury|"
    "the federal reserve|a spokesman|the union|economists|the government|traders|"
    "the chief executive|congress|the agency|shareholders|the lawyers|regulators|"
    "the auditors|the committee|bond dealers|the pension fund"
)
ADJECTIVES = _W(
    "sharp modest steady unexpected weak strong quarterly annual national foreign domestic "
    "heavy light recent previous major minor fresh huge small broad narrow early late rising "
    "falling rapid cautious profitable risky stable volatile industrial commercial federal "
    "global local private public long short high low net total average similar separate certain "
    "written little usual"
)
NOUNS = _W(
    "profit loss revenue growth decline rise drop gain price rate yield share stock bond "
    "dividend merger offer bid deal contract loan debt deficit surplus budget tax tariff "
    "export import output demand supply market index fund bank plant factory office store "
    "product service pipeline refinery airline charge earnings payment balance reserve "
    "inventory forecast estimate report survey ruling lawsuit settlement proposal plan "
    "strategy venture unit division subsidiary currency dollar yen mark economy recession "
    "inflation unemployment wage pension insurance property building shipment order cotton "
    "decision measure television mountain bottle"
)
VERBS_PAST = _W(
    "reported announced rejected approved expected predicted denied confirmed completed "
    "delayed reduced raised cut doubled posted disclosed estimated revised proposed "
    "blocked backed criticized defended examined reviewed questioned welcomed ignored"
)
VERBS_BASE = _W(
    "buy sell acquire raise cut reduce expand close open review delay approve block "
    "finance restructure reconsider boost trim"
)
SAY = _W("said added noted argued warned insisted suggested conceded explained")
TIMES = _P(
    "last week|on Tuesday|on Friday|yesterday|this morning|last year|in the third quarter|"
    "in the first half|since January|by the end of March|earlier this month|"
    "over the past decade|in late trading|next spring"
)
PLACES = ["New York", "Manhattan"] + _W(
    "London Tokyo Chicago Boston Detroit Houston Frankfurt Paris Washington Ohio Texas "
    "California Canada Mexico Brazil Germany Japan Europe Asia"
)
PREPS = _W("in for of at from against despite after before during within")
ADVERBS = _W("sharply slightly quickly quietly formally nearly almost already still recently")


def _pick(rng: np.random.Generator, words: list[str]) -> str:
    return words[int(rng.integers(len(words)))]


def _number(rng: np.random.Generator) -> str:
    kind = int(rng.integers(4))
    if kind == 0:
        return f"{int(rng.integers(2, 99))} percent"
    if kind == 1:
        return f"{int(rng.integers(1, 900))} million dollars"
    if kind == 2:
        return f"{rng.integers(1, 30)}.{rng.integers(1, 10)} billion dollars"
    return f"{int(rng.integers(1, 100)) * 100} jobs"


def _noun_phrase(rng: np.random.Generator) -> str:
    det = _pick(rng, ["the", "a", "its", "their", "this"])
    words = (
        f"{_pick(rng, ADJECTIVES)} {_pick(rng, NOUNS)}" if rng.random() < 0.6 else _pick(rng, NOUNS)
    )
    if det == "a" and words[0] in "aeiou":
        det = "an"
    return f"{det} {words}"


def _actor(rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.25:
        return f"{_pick(rng, ['Mr.', 'Mrs.', 'Ms.', 'Doctor'])} {_pick(rng, NAMES)}"
    if r < 0.5:
        return _pick(rng, COMPANIES)
    return _pick(rng, SUBJECTS)


def _clause(rng: np.random.Generator) -> str:
    kind = int(rng.integers(5))
    if kind == 0:
        return f"{_actor(rng)} {_pick(rng, VERBS_PAST)} {_noun_phrase(rng)} {_pick(rng, TIMES)}"
    if kind == 1:
        return (
            f"{_noun_phrase(rng)} {_pick(rng, ['rose', 'fell', 'climbed', 'slipped'])} "
            f"{_number(rng)} {_pick(rng, TIMES)}"
        )
    if kind == 2:
        return (
            f"{_actor(rng)} {_pick(rng, ['agreed', 'plans', 'refused', 'hopes'])} to "
            f"{_pick(rng, VERBS_BASE)} {_noun_phrase(rng)} {_pick(rng, PREPS)} "
            f"{_pick(rng, PLACES)}"
        )
    if kind == 3:
        return (
            f"{_noun_phrase(rng)} {_pick(rng, PREPS)} {_pick(rng, PLACES)} was "
            f"{_pick(rng, ADVERBS)} {_pick(rng, VERBS_PAST)}"
        )
    return f"{_actor(rng)} {_pick(rng, ['owns', 'lost', 'gained', 'owes'])} {_number(rng)}"


def make_sentence(seed: int, index: int) -> str:
    """Sentence `index` of the corpus drawn with `seed` (independent of how many are drawn)."""
    rng = np.random.default_rng([seed, index, 1])
    text = _clause(rng)
    if rng.random() < 0.35:
        text = f"{text}, {_actor(rng)} {_pick(rng, SAY)}"
    elif rng.random() < 0.3:
        text = f"{text}, {_pick(rng, ['and', 'but', 'while'])} {_clause(rng)}"
    return text[0].upper() + text[1:] + "."
