"""Confidence for figures and comparisons of a few trials: intervals, verdicts, trials needed.

A trial (one run of a configuration) is the unit of replication: its per-second samples
are correlated with each other, the trials are not. Throughput and latency are positive
and their spread grows with their size, so both are compared on a log scale:

- a configuration's figure is the geometric mean of its trials with a 95% interval from
  Student's t on the log values (`estimate`);
- a comparison of two configurations is the ratio of their geometric means with a 95%
  interval from Welch's t-test on the log values (`scipy.stats.ttest_ind`,
  `equal_var=False`, and its `confidence_interval`), which does not assume equal spread;
- a comparison reads as a difference only when its interval excludes "no change" AND
  the estimate is at least the smallest effect that matters here (`threshold`, 5% by
  default): the second condition keeps a real but tiny shift, or a drift between two
  runs of one build, from reading as a change (asv's rule of significance and a factor);
- when the interval includes "no change", the verdict says so and how many trials per
  configuration would detect the threshold with 80% power (noncentral t, the spread
  pooled from both sides).

A table that compares many configurations at once (`experiments compare A B`: every
configuration, three figures each) asks whether *anything* changed. Each of its m intervals
is then at 1 - 5%/m (Bonferroni, `family_confidence`), so that all of them hold together
with 95% confidence: at 95% each, 18 rows of two runs of one build show a false "better" or
"worse" about half the time (measured on two `make report` runs: p99 +8%, "worse").

With n < 6 trials no distribution-free interval for a median reaches 95%, which is why
the intervals are those of the (geometric) mean; the report shows medians beside them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
THRESHOLD = 0.05  # the smallest relative change treated as real
POWER = 0.80
MAX_TRIALS = 1000  # beyond this, "more trials" is not an answer
FAMILY_METHOD = ("each of the table's {m} intervals is at {level} (Bonferroni), so that all "
                 "of them hold together with 95% confidence")
METHOD = ("geometric mean with a 95% interval from Student's t on log values; ratios with "
          "Welch's t-test on log values (scipy.stats); a difference needs its interval to "
          "exclude no change and an estimate of at least {threshold:.0%}")


def _logs(values: Sequence[float]) -> np.ndarray:
    array = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if (array <= 0).any():
        raise ValueError("figures compared on a log scale must be positive")
    return np.log(array)


@dataclass(frozen=True)
class Estimate:
    """One configuration's figure over its trials."""

    n: int
    median: float
    mean: float  # geometric mean
    low: float | None  # 95% interval of the geometric mean; None with one trial
    high: float | None
    cv: float | None  # coefficient of variation of the trials (sample sd / mean)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    logs = _logs(values)
    n = len(logs)
    if n == 0:
        raise ValueError("no values")
    raw = np.exp(logs)
    mean = float(np.exp(logs.mean()))
    if n == 1:
        return Estimate(1, float(raw[0]), mean, None, None, None)
    half = float(sps.t.ppf((1 + confidence) / 2, n - 1) * logs.std(ddof=1) / math.sqrt(n))
    cv = float(raw.std(ddof=1) / raw.mean())
    return Estimate(n, float(np.median(raw)), mean, float(np.exp(logs.mean() - half)),
                    float(np.exp(logs.mean() + half)), cv)


@dataclass(frozen=True)
class Comparison:
    """B against A: `ratio` = B / A of the geometric means, with its interval."""

    metric: str
    n_a: int
    n_b: int
    ratio: float
    low: float | None
    high: float | None
    verdict: str  # better | worse | small | same | undecided
    higher_is_better: bool
    threshold: float
    trials_needed: int | None  # per configuration, to detect `threshold` with 80% power
    confidence: float = CONFIDENCE  # of this interval: higher in a family (`family_confidence`)

    @property
    def decided(self) -> bool:
        """Whether the trials tell B from A by at least the threshold."""
        return self.verdict in ("better", "worse")

    def change(self) -> str:
        """'+12% (95% CI +8% to +16%)', or '+12% (one trial each: no interval)'."""
        text = _percent(self.ratio)
        if self.low is None or self.high is None:
            return f"{text} (too few trials for an interval)"
        return f"{text} ({level(self.confidence)} CI {_percent(self.low)} to {_percent(self.high)})"

    def sentence(self, subject: str, against: str) -> str:
        """'<subject> against <against>: events/s +12% (95% CI +8% to +16%), better.'"""
        head = f"{subject} against {against}: {self.metric} {self.change()}"
        if self.verdict in ("better", "worse"):
            return f"{head}, {self.verdict}."
        if self.verdict == "small":
            return (f"{head}: a real difference, below the {self.threshold:.0%} this report "
                    "treats as one that matters.")
        if self.verdict == "same":
            return f"{head}: no difference of {self.threshold:.0%} or more."
        more = (f"about {self.trials_needed} trials per configuration would detect "
                f"{self.threshold:.0%}" if self.trials_needed is not None
                else f"more than {MAX_TRIALS} trials would be needed to detect {self.threshold:.0%}")
        return (f"{head}: no difference detectable with {min(self.n_a, self.n_b)} trial(s); "
                f"{more}.")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "change": self.change()}


def level(confidence: float) -> str:
    """0.95 -> '95%', 0.99722 -> '99.7%'."""
    return f"{confidence * 100:.3g}%"


def family_confidence(m: int, confidence: float = CONFIDENCE) -> float:
    """The level of each of m intervals that hold together with `confidence` (Bonferroni)."""
    return 1 - (1 - confidence) / max(m, 1)


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.0f}%" if abs(ratio - 1) >= 0.01 else f"{(ratio - 1) * 100:+.1f}%"


def trials_needed(sd_log: float, threshold: float = THRESHOLD, power: float = POWER,
                  confidence: float = CONFIDENCE) -> int | None:
    """Trials per configuration for a two-sided t-test on log values, equal n, to detect a
    change of `threshold` with `power`; None beyond MAX_TRIALS."""
    if sd_log <= 0:
        return 2
    effect = math.log1p(threshold) / sd_log

    def enough(n: int) -> bool:
        df = 2 * n - 2
        crit = sps.t.ppf((1 + confidence) / 2, df)
        nc = effect * math.sqrt(n / 2)
        # The far tail underflows to nan in scipy's nct: it is then 0.
        far = float(np.nan_to_num(sps.nct.cdf(-crit, df, nc)))
        return bool(sps.nct.sf(crit, df, nc) + far >= power)

    # Power grows with n: double n until it is enough, then bisect (a few evaluations, not
    # up to a thousand; and never at an n far past the answer, where nct's tails underflow).
    low, high = 1, 2  # enough(low) is taken as false
    while not enough(high):
        if high >= MAX_TRIALS:
            return None
        low, high = high, min(2 * high, MAX_TRIALS)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


def compare(a: Sequence[float], b: Sequence[float], metric: str = "events/s", *,
            higher_is_better: bool = True, threshold: float = THRESHOLD,
            confidence: float = CONFIDENCE) -> Comparison:
    """B against A, on the trials of each (see the module docstring for the method)."""
    la, lb = _logs(a), _logs(b)
    if len(la) == 0 or len(lb) == 0:
        raise ValueError("each side needs at least one trial")
    ratio = float(np.exp(lb.mean() - la.mean()))
    low = high = None
    sd_parts = [x.std(ddof=1) for x in (la, lb) if len(x) > 1]
    sd_log = float(math.sqrt(np.mean(np.square(sd_parts)))) if sd_parts else None
    if len(la) > 1 and len(lb) > 1:
        if sd_log == 0:
            low = high = ratio
        else:
            with warnings.catch_warnings():
                # Nearly identical trials: scipy warns of precision loss; the interval is
                # then as narrow as the trials, which is the right answer.
                warnings.simplefilter("ignore", RuntimeWarning)
                ci = sps.ttest_ind(lb, la, equal_var=False).confidence_interval(confidence)
            low, high = float(np.exp(ci.low)), float(np.exp(ci.high))
    needed = trials_needed(sd_log, threshold, confidence=confidence) if sd_log is not None else None
    if low is None or high is None:
        verdict = "undecided"
    elif low > 1 or high < 1:
        if abs(math.log(ratio)) < math.log1p(threshold):
            verdict = "small"
        else:
            verdict = "better" if (ratio > 1) == higher_is_better else "worse"
    elif 1 / (1 + threshold) < low and high < 1 + threshold:
        verdict = "same"
    else:
        verdict = "undecided"
    return Comparison(metric, len(la), len(lb), ratio, low, high, verdict, higher_is_better,
                      threshold, needed, confidence)
