"""Robustness: how often each option ranks first when every weight is perturbed at once.

Each draw multiplies every weight by an independent factor drawn uniformly from [1 - spread, 1 + spread]
(default +/-30%), re-scores the eligible options and records first place (a firm preference keeps its
option first, ties keep the lever order as in :func:`.decide.decide`). The generator is seeded, so the
figure is reproducible. Weights that are 0 stay 0: a perturbation must not invent a concern nobody stated.

    >>> r = robustness({"a": 1.0, "b": 1.0}, {"a": {"x": 5, "y": 1}, "b": {"x": 1, "y": 4}}, ["x", "y"])
    >>> round(r["x"], 2), round(r["y"], 2)     # x wins unless the draws tilt a/b enough   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field


class RobustnessConfig(BaseModel):
    """Settings of the perturbation study; saved in the recommendation so the figure can be reproduced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spread: float = Field(0.3, gt=0, lt=1, description="relative half-width of the uniform weight factor")
    draws: int = Field(2000, ge=100, le=200_000, description="number of perturbed weight sets")
    seed: int = Field(0, ge=0, description="numpy random seed")


def robustness(
    weights: Mapping[str, float],
    table: Mapping[str, Mapping[str, float]],
    eligible: list[str],
    *,
    preferred: str | None = None,
    config: RobustnessConfig | None = None,
) -> dict[str, float]:
    """Share of draws (0..1) in which each eligible option ranks first; options in ``eligible`` order,
    which is also the tie-break order."""
    import numpy as np

    config = config or RobustnessConfig()
    if not eligible:
        return {}
    if preferred in eligible:
        return {o: float(o == preferred) for o in eligible}
    factors = list(table)
    w = np.array([weights[f] for f in factors], dtype=float)
    s = np.array([[table[f][o] for o in eligible] for f in factors], dtype=float)  # factors x options
    rng = np.random.default_rng(config.seed)
    draws = w * rng.uniform(1 - config.spread, 1 + config.spread, size=(config.draws, len(factors)))
    # The common positive factor 100 / (4 * sum w) does not change the order, so compare raw weighted sums;
    # round away float noise so exact ties keep the lever order (argmax takes the first maximum).
    sums = np.round(draws @ (s - 1.0), 9)
    wins = np.bincount(sums.argmax(axis=1), minlength=len(eligible))
    return {o: float(wins[i]) / config.draws for i, o in enumerate(eligible)}
