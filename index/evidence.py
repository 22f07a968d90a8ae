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

from loophole.config import ConfigError, format_validation_error, read_yaml_mapping

# The features, in the order the decision model's coefficients are stored.
FEATURES = (
    "similarity",      # the decisive unit's similarity to the examples, on the pattern's own scale
    "over_counters",   # the same, on a scale where 0 is where the pattern's near misses sit
    "rivalry",         # that similarity less the best other pattern's: which pattern the page is about
    "margin",          # how much nearer the examples than the counter-examples that unit is
    "support",         # the next strongest units: evidence repeated or spread over lines
    "types_unit",      # how fully the strongest units name the entity types an example names
    "types_page",      # the same over the whole page
    "telling_unit",    # the share of the types that tell the examples from the counter-examples, in those units
    "telling_page",    # the same over the whole page
    "keywords",        # the pattern's keywords on the page (distinct ones, up to KEYWORDS_COUNTED)
    "excluded",        # the most similar unit rules the pattern's own terms out ("不接受英伟达")
    "genre_news",      # reporting and analysis cues (bylines, "据报道", "said")
    "genre_primary",   # the stronger of the two below: the page is itself an offer or a notice
    "genre_offer",     # seller cues (prices, carts, 客服, top-up)
    "genre_notice",    # procurement cues (项目编号, 预算金额, tender)
    "genre_other",     # manuals, job ads, policy explainers
    "own_site",        # served from a named company's own site: its own voice
)
TOP_UNITS = 5
KEYWORDS_COUNTED = 6
MIN_SCALE = 0.05


@dataclass(frozen=True)
class PatternProfile:
    """What a pattern's own examples say about it, measured once when the library loads."""

    example_types: tuple[frozenset[str], ...]   # the entity types each example names
    positive_level: float     # mean similarity of an example to the nearest other example
    background_level: float   # mean similarity of ordinary web text to the nearest example
    counter_level: float = 0.0   # mean similarity of a counter-example to the nearest example
    telling: tuple[tuple[str, float], ...] = ()   # entity types named more by examples than by counter-examples

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
    return PatternProfile(tuple(example_types), positive, ordinary, near, telling_types(example_types, counter_types))


def telling_types(example_types: Sequence[frozenset[str]],
                  counter_types: Sequence[frozenset[str]]) -> tuple[tuple[str, float], ...]:
    """Entity types weighted by how much more often the examples name them than the counter-examples
    (smoothed log-odds, positive part): for a reseller pattern, relay and account-shop wording and
    US model names; a PRC tie that near misses name as often weighs little."""
    weights = []
    for kind in sorted(frozenset().union(*example_types) if example_types else frozenset()):
        in_examples = (sum(kind in types for types in example_types) + 1) / (len(example_types) + 2)
        in_counters = (sum(kind in types for types in counter_types) + 1) / (len(counter_types) + 2)
        weight = math.log(in_examples / in_counters)
        if weight > 0:
            weights.append((kind, round(weight, 4)))
    return tuple(weights)


def telling_share(profile: PatternProfile, types: set[str] | frozenset[str]) -> float:
    """The weighted share of the pattern's telling types that ``types`` name."""
    total = sum(weight for _, weight in profile.telling)
    return sum(weight for kind, weight in profile.telling if kind in types) / total if total else 0.0


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

    def features(self) -> dict[str, float]:
        offer = max(self.scores.get(kind, 0.0) for kind in ("reseller-ad", "vendor-marketing", "cloud-listing"))
        notice = self.scores.get("procurement-notice", 0.0)
        return {"genre_news": math.log1p(self.scores.get("news-commentary", 0.0)),
                "genre_primary": math.log1p(max(offer, notice)),
                "genre_offer": math.log1p(offer),
                "genre_notice": math.log1p(notice),
                "genre_other": math.log1p(self.scores.get("other", 0.0)),
                "own_site": float(self.own_site)}


@dataclass(frozen=True)
class Decisive:
    """The unit that decided, and the features of the page for the pattern."""

    best: int
    ranked: list[int]
    features: dict[str, float]


def page_features(profile: PatternProfile, units: UnitScores, unit_types: Sequence[set[str]],
                  page_types: set[str], keyword_share: float, genre: PageGenre) -> Decisive:
    """The features of one page for one pattern (see FEATURES)."""
    adjusted = units.adjusted
    ranked = [int(i) for i in np.argsort(-adjusted)]
    best = ranked[0]
    top = ranked[:TOP_UNITS]
    raw_best = int(np.argmax(units.positive))
    support = float(np.mean(adjusted[ranked[1:3]])) if len(ranked) > 1 else float(adjusted[best])
    features = {
        "similarity": float(profile.normalise(float(adjusted[best]))),
        "over_counters": float(profile.over_counters(float(adjusted[best]))),
        "rivalry": 0.0,    # set once every pattern has been scored (with_rivalry)
        "margin": float(np.clip((units.positive[best] - units.negative[best]) / profile.scale, -2.0, 2.0)),
        "support": float(profile.normalise(support)),
        "types_unit": max(type_cover(profile, unit_types[i]) for i in top),
        "types_page": type_cover(profile, page_types),
        "telling_unit": max(telling_share(profile, unit_types[i]) for i in top),
        "telling_page": telling_share(profile, page_types),
        "keywords": keyword_share,
        "excluded": float(not units.usable[raw_best]),
        **genre.features(),
    }
    return Decisive(best, ranked, features)


def feature_vector(features: dict[str, float]) -> np.ndarray:
    return np.array([features[name] for name in FEATURES], dtype=np.float64)


def with_rivalry(decisives: list[Decisive]) -> list[Decisive]:
    """Each pattern's similarity against the strongest other pattern's on the same page: a page
    about a reseller's Azure OpenAI accounts resembles the US-cloud-services examples too, but
    less than the reseller ones. With one pattern there is no rival: 0."""
    sims = [d.features["similarity"] for d in decisives]
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
