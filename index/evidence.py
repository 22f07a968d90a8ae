"""What a page shows for one pattern, as a few numbers that mean the same for every pattern.

Why pattern-agnostic: one decision model (index.decision) is learned from labelled pages of all
patterns together and must also serve a pattern added as a YAML file, with no pages of its own.
So no number here depends on a pattern's id or on hand-set cue lists: similarities are scaled by
the pattern's own profile (how close its examples sit to one another, how close ordinary text
comes to them), and entity types are compared with the types its own examples name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from extract.kind import EVIDENCE_KINDS
from ground.config import ConfigError, format_validation_error, read_yaml_mapping

# The features, in the order the decision model's coefficients are stored.
FEATURES = (
    "over_counters",   # the decisive unit's similarity to the examples: 0 where the pattern's near
                       # misses sit, 1 where its examples sit to one another
    "rivalry",         # that unit's similarity less the best other pattern's: which pattern the page is about
    "margin",          # how much nearer the examples than the counter-examples that unit is
    "breadth",         # the five strongest units on the same scale: an offer told in many lines
    "types_unit",      # how fully the strongest units name the entity types an example names
    "types_page",      # the same over the whole page
    "types_over_counters",   # types_page less how fully the counter-examples themselves cover the examples'
                             # types: for a pattern whose near misses name the same things, naming them says little
    "keywords",        # the share of the pattern's keywords the page names (up to KEYWORDS_COUNTED of them)
    "excluded",        # the most similar unit rules the pattern's own terms out ("不接受英伟达")
    "near_miss",       # how much nearer a counter-example than any example some unit is: the page says
                       # what the near misses say (a report, a domestic offer) somewhere
    "reporting",       # the reporting text model (index.textmodel.REPORTING): news and commentary read so
    "genre_news",      # reporting and analysis cues (bylines, "据报道", "said")
    "genre_primary",   # offer or notice cues (prices, 客服, 项目编号, 预算金额)
    "news_lead",       # how far the reporting cues outweigh the offer and notice cues
    "genre_other",     # manuals, job ads, policy explainers
    "own_site",        # served from a named company's own site: its own voice
    "provider_site",   # served from a US cloud's, model maker's or chip maker's own site (docs, price lists)
    "api_endpoint",    # the opening gives a model-API address on a third party's host (index.endpoints)
    "own_endpoint",    # ... on the page's own site: the page documents its own API service
    "example_text",    # the pattern's own sentence-trained text model on the page's opening (every pattern)
    "text",            # the pattern's page text model (index.textmodel), where it has one
    "evidence_text",   # the page reads as evidence of some pattern given only as a YAML file: a text model
                       # fitted on such patterns' pages (index.textmodel.NEW_PATTERN_EVIDENCE); generic weights only
)
# Not a weight's feature: the input of a pattern's stage (index.decision.Stage), the logit of its text model
# fitted with real pages (index.textmodel.real_target), joined only for patterns that have a stage.
REAL_TEXT = "real_text"
TOP_UNITS = 5
KEYWORDS_COUNTED = 4
MIN_SCALE = 0.05


@dataclass(frozen=True)
class PatternProfile:
    """What a pattern's own examples say about it, measured once when the library loads."""

    example_types: tuple[frozenset[str], ...]   # the entity types each example names
    positive_level: float     # mean similarity of an example to the nearest other example
    background_level: float   # mean similarity of ordinary web text to the nearest example
    counter_level: float = 0.0   # mean similarity of a counter-example to the nearest example
    counter_cover: float = 0.0   # how fully a counter-example covers the examples' entity types, on average

    @property
    def scale(self) -> float:
        return max(self.positive_level - self.background_level, MIN_SCALE)

    def normalise(self, similarity: np.ndarray | float) -> np.ndarray | float:
        """0 where ordinary text sits, 1 where the pattern's own examples sit to one another."""
        return (similarity - self.background_level) / self.scale

    def over_counters(self, similarity: float) -> float:
        """0 where the pattern's near misses sit, 1 where its examples sit to one another: the
        author's counter-examples mark where evidence ends, and a pattern calibrates itself by them."""
        level = max(self.counter_level, self.background_level)
        return (similarity - level) / max(self.positive_level - level, MIN_SCALE)

    @property
    def named_types(self) -> frozenset[str]:
        return frozenset().union(*self.example_types) if self.example_types else frozenset()


def build_profile(examples: np.ndarray, counters: np.ndarray, background: np.ndarray,
                  example_types: Sequence[frozenset[str]],
                  counter_types: Sequence[frozenset[str]] = ()) -> PatternProfile:
    """Leave-one-out similarity among the examples gives the level of true evidence; the
    background sentences' nearest-example similarity gives the level of text about nothing."""
    if len(examples) > 1:
        among = examples @ examples.T
        np.fill_diagonal(among, -np.inf)
        positive = float(among.max(axis=1).mean())
    else:
        positive = 1.0
    ordinary = float((background @ examples.T).max(axis=1).mean()) if len(background) else 0.0
    near = float((counters @ examples.T).max(axis=1).mean()) if len(counters) else ordinary
    profile = PatternProfile(tuple(example_types), positive, ordinary, near)
    if not counter_types:
        return profile
    cover = sum(type_cover(profile, types) for types in counter_types) / len(counter_types)
    return PatternProfile(tuple(example_types), positive, ordinary, near, cover)


def type_cover(profile: PatternProfile, types: set[str] | frozenset[str]) -> float:
    """How fully ``types`` cover the entity types the examples name, on average over the examples:
    a line naming a police buyer and an NVIDIA chip covers an example that names both; one naming
    only the chip covers half. This is what hand-written cue lists used to say, read off the examples."""
    covers = [len(wanted & types) / len(wanted) for wanted in profile.example_types if wanted]
    return sum(covers) / len(covers) if covers else 0.0


@dataclass(frozen=True)
class UnitScores:
    """Per scoring unit, for one pattern."""

    positive: np.ndarray      # similarity to the nearest example
    negative: np.ndarray      # similarity to the nearest counter-example (0 without any)
    nearest: np.ndarray       # index of the nearest example
    usable: np.ndarray        # False for units that rule the pattern out or were vetoed by analysts
    vetoed: np.ndarray | None = None   # True for units an analyst dismissed before (the same evidence again)

    @property
    def repeats_dismissed(self) -> bool:
        """Whether the unit most like the examples is one an analyst already dismissed."""
        return self.vetoed is not None and bool(self.vetoed[int(np.argmax(self.positive))])

    @property
    def adjusted(self) -> np.ndarray:
        """Similarity less how much nearer a counter-example the unit is; unusable units sink."""
        value = self.positive - np.maximum(0.0, self.negative - self.positive)
        return np.where(self.usable, value, -1.0)


@dataclass(frozen=True)
class PageGenre:
    """The page-level facts every pattern shares: genre cue scores and whose voice it is."""

    scores: dict[str, float]
    own_site: bool = False
    provider_site: bool = False
    api_endpoint: bool = False
    own_endpoint: bool = False

    def features(self) -> dict[str, float]:
        primary = max(self.scores.get(kind, 0.0) for kind in EVIDENCE_KINDS)
        news = math.log1p(self.scores.get("news-commentary", 0.0))
        return {"genre_news": news,
                "genre_primary": math.log1p(primary),
                "news_lead": max(0.0, news - math.log1p(primary)),
                "genre_other": math.log1p(self.scores.get("other", 0.0)),
                "own_site": float(self.own_site),
                "provider_site": float(self.provider_site),
                "api_endpoint": float(self.api_endpoint),
                "own_endpoint": float(self.own_endpoint)}


@dataclass(frozen=True)
class Decisive:
    """The unit that decided, and the features of the page for the pattern."""

    best: int
    ranked: list[int]
    features: dict[str, float]


def page_features(profile: PatternProfile, units: UnitScores, unit_types: Sequence[set[str]],
                  page_types: set[str], genre: PageGenre, keywords: int = 0, text: float = 0.0,
                  example_text: float = 0.0, reporting: float = 0.0, evidence_text: float = 0.0) -> Decisive:
    """The features of one page for one pattern (see FEATURES)."""
    adjusted = units.adjusted
    ranked = [int(i) for i in np.argsort(-adjusted)]
    best = ranked[0]
    top = ranked[:TOP_UNITS]
    raw_best = int(np.argmax(units.positive))
    features = {
        "over_counters": float(profile.over_counters(float(adjusted[best]))),
        "rivalry": float(profile.normalise(float(adjusted[best]))),   # made relative in with_rivalry
        "margin": float(np.clip((units.positive[best] - units.negative[best]) / profile.scale, -2.0, 2.0)),
        "breadth": float(np.mean([profile.over_counters(float(adjusted[i])) for i in top])),
        "types_unit": max(type_cover(profile, unit_types[i]) for i in top),
        "types_page": type_cover(profile, page_types),
        "types_over_counters": type_cover(profile, page_types) - profile.counter_cover,
        "keywords": min(keywords, KEYWORDS_COUNTED) / KEYWORDS_COUNTED,
        "excluded": float(not units.usable[raw_best]),
        "near_miss": float(np.clip(np.max(units.negative - units.positive) / profile.scale, 0.0, 2.0)),
        "reporting": logit_feature(reporting),
        **genre.features(),
        "example_text": float(np.clip(example_text, -3.0, 3.0)),
        "text": text,
        "evidence_text": logit_feature(evidence_text),
    }
    return Decisive(best, ranked, features)


def logit_feature(logit: float) -> float:
    """A text model's logit as a feature: clipped, so one page of unusual length cannot outweigh the rest."""
    return float(np.clip(logit, -8.0, 8.0))


def with_rivalry(decisives: list[Decisive]) -> list[Decisive]:
    """Each pattern's similarity against the strongest other pattern's on the same page: a page
    about a reseller's Azure OpenAI accounts resembles the US-cloud-services examples too, but
    less than the reseller ones. With one pattern there is no rival: 0."""
    sims = [d.features["rivalry"] for d in decisives]
    out = []
    for i, decisive in enumerate(decisives):
        others = sims[:i] + sims[i + 1:]
        rivalry = sims[i] - max(others) if others else 0.0
        out.append(Decisive(decisive.best, decisive.ranked, {**decisive.features, "rivalry": rivalry}))
    return out


class BackgroundFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = "0"
    sentences: list[str] = Field(min_length=5)


def load_background(path: Path) -> list[str]:
    """The ordinary sentences of seeds/background.yaml (see PatternProfile.background_level)."""
    try:
        return BackgroundFile.model_validate(read_yaml_mapping(path)).sentences
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from exc
