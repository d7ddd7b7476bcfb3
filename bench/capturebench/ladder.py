"""
Stepping a contender up through rising rates until it drops frames.

A contender's score is the highest rate at which it received every frame
with zero kernel drops.  A failed step is repeated once (this machine may
be busy with other work) and counts as passed if the repeat passes; a step
that failed while other programs sent much on ``lo`` is repeated up to three
times, after a pause.  After
the first failure one step halfway between the last pass and the failure
refines the score.  When the generator cannot reach a step's rate the climb
stops there: the score is then a lower bound, "generator-limited at N pps".
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .contenders import Step
from .generator import Generator

RATES = [1_000, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 25_000, 50_000, 75_000,
         100_000, 125_000, 150_000, 175_000, 200_000, 250_000, 300_000, 350_000,
         400_000, 500_000, 600_000, 700_000, 800_000, 1_000_000, 1_250_000, 1_500_000,
         2_000_000, 3_000_000]
#: Fewer, wider steps for a quick run.
QUICK_RATES = [1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 150_000, 200_000,
               300_000, 400_000, 600_000, 800_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000]


@dataclass
class Score:
    """
    What a climb found.
    """

    label: str
    steps: list[Step] = field(default_factory=list)
    best: Optional[Step] = None  # the highest passing step
    failed: Optional[Step] = None  # the lowest failing step
    generator_limit: Optional[float] = None  # pps, when the generator was the limit
    exhausted: bool = False  # passed every step of the ladder

    @property
    def rate(self) -> float:
        """
        The highest zero-drop rate in pps (L{Step.rate}), 0 if none.
        """
        return self.best.rate if self.best else 0.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def climb(label: str, step: Callable[[Generator, float, float], Step], generator: Generator,
          start: float, seconds: float, refine: bool = True, retry: bool = True,
          rates: list[int] = RATES) -> Score:
    """
    Step C{label} up through C{rates} from C{start} pps, each step C{seconds} long.

    :param step: runs one step: (generator, rate, seconds) -> L{Step}.
    """
    score = Score(label)

    def attempt(rate: float) -> Step:
        tries = 0
        while True:
            result = step(generator, rate, seconds)
            tries += 1
            score.steps.append(result)
            log(f"  {label}: {result.line()}")
            if result.ok:
                return result
            if result.disturbed and tries < 4:
                log(f"  {label}: other traffic on lo; repeating the step in 5 s")
                time.sleep(5)
            elif retry and tries == 1 and not result.generator_limited:
                log(f"  {label}: repeating the step once")
            else:
                return result

    for rate in (r for r in rates if r >= start):
        result = attempt(rate)
        if result.ok:
            score.best = result
        else:
            score.failed = result
        if result.generator_limited:
            score.generator_limit = result.achieved
            return score
        if not result.ok:
            break
    else:
        score.exhausted = True
    if refine and score.best and score.failed:
        middle = round((score.best.requested + score.failed.requested) / 2, -3)
        if score.best.requested < middle < score.failed.requested:
            result = attempt(middle)
            if result.ok:
                score.best = result
            elif result.generator_limited:
                score.generator_limit = result.achieved
    return score
