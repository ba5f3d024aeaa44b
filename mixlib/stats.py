"""Statistics for claims over seeds: a :class:`Stat` per sample, paired differences, and one table renderer.

A claim such as "manifold mixup beats ERM" rests on per-seed differences between runs that share
their seed (initial weights, mini-batches, data draw): :func:`paired_difference` summarises them
with Student's t interval for the mean. :func:`render_table` lays out any such numbers as text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral

from scipy import stats

__all__ = ["Stat", "summarize", "paired_difference", "over_draws", "p_value", "equivalence_p", "noninferiority_p",
           "holm", "simultaneous", "render_table"]


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation and 95 % confidence half-width of ``n`` values.

    The interval is Student's t interval for the mean, ``mean ± ci95``; with a single
    value the standard deviation and the interval are NaN.
    """

    mean: float
    std: float
    ci95: float
    n: int

    @property
    def low(self) -> float:
        """The lower end of the 95 % interval."""
        return self.mean - self.ci95

    @property
    def high(self) -> float:
        """The upper end of the 95 % interval."""
        return self.mean + self.ci95

    def excludes_zero(self) -> bool:
        """Whether the 95 % interval lies entirely on one side of 0."""
        return self.low > 0 or self.high < 0

    def interval(self, digits: int = 3) -> str:
        """``"+0.012 [+0.004, +0.020]"``: the signed mean and its 95 % interval, ``digits`` decimals."""
        digits = check_digits(digits)
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"

    def format(self, digits: int = 3, spread: str = "std") -> str:
        """``"mean ± spread"`` with ``digits`` decimals; ``spread`` is ``"std"`` or ``"ci95"``."""
        if spread not in ("std", "ci95"):
            raise ValueError(f"spread must be 'std' or 'ci95', got {spread!r}")
        digits = check_digits(digits)
        return f"{self.mean:.{digits}f} ± {getattr(self, spread):.{digits}f}"

    def __str__(self) -> str:
        return self.format()


def check_digits(digits: object) -> int:
    """Return ``digits`` if it is an int >= 0 (decimals shown), else raise."""
    if isinstance(digits, bool) or not isinstance(digits, Integral) or digits < 0:
        raise ValueError(f"digits must be an int >= 0 (decimals shown), got {digits!r}")
    return int(digits)


def _numbers(name: str, values: object) -> list[float]:
    """``values`` as a list of floats: numbers, one-element tensors or NumPy scalars."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a collection of numbers, got {type(values).__name__}")
    out = []
    for v in values:
        if isinstance(v, (str, bytes, complex)):
            raise TypeError(f"{name} must hold real numbers, got {v!r}")
        try:
            out.append(float(v))
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must hold real numbers, got {v!r}") from None
    return out


def summarize(values: Iterable[float]) -> Stat:
    """Summarise a sample: mean, standard deviation (n - 1 in the denominator) and t interval.

    Args:
        values: One or more finite numbers, for example one measurement per seed.

    Returns:
        The :class:`Stat` of the values.
    """
    xs = _numbers("values", values)
    if not xs:
        raise ValueError("values must contain at least one number")
    if not all(math.isfinite(v) for v in xs):
        raise ValueError(f"values must be finite, got {xs}")
    n = len(xs)
    mean = sum(xs) / n
    if n == 1:
        return Stat(mean, math.nan, math.nan, 1)
    std = math.sqrt(sum((v - mean) ** 2 for v in xs) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return Stat(mean, std, half, n)


def paired_difference(values: Iterable[float], baseline: Iterable[float]) -> Stat:
    """Summary of the per-seed differences ``values[i] - baseline[i]`` (a paired comparison).

    Pairing removes what the two runs of a seed share (initial weights, mini-batches, data
    split), so the interval is on the effect of the method alone: Student's t interval for the
    mean difference, 95 %, with ``n - 1`` degrees of freedom.

    Args:
        values: One number per seed for the method.
        baseline: One number per seed for the baseline, in the same seed order.
    """
    xs, bs = _numbers("values", values), _numbers("baseline", baseline)
    if len(xs) != len(bs):
        raise ValueError(f"values and baseline must have one number per seed each, got {len(xs)} and {len(bs)}")
    return summarize([x - b for x, b in zip(xs, bs, strict=True)])


def over_draws(differences: Sequence[Iterable[float]]) -> Stat:
    """A paired difference measured on several data draws, each with several seeds.

    ``differences[j]`` holds the per-seed differences on draw ``j``. Each draw is first reduced to
    its mean; the result is the mean of those draw means with Student's t interval over the draws
    (``n`` is the number of draws, ``n - 1`` degrees of freedom). A draw mean carries both sources of
    variation, the seeds within the draw and the draw itself (its split and its label noise), so
    the interval counts both; treating the draws x seeds runs as independent would count only the
    first and be too narrow when the effect changes from draw to draw.
    """
    if isinstance(differences, (str, bytes)) or not isinstance(differences, Sequence) or len(differences) < 2:
        raise ValueError("differences must hold the per-seed differences of at least two data draws")
    means = []
    for j, draw in enumerate(differences):
        values = _numbers(f"differences[{j}]", draw)
        if not values:
            raise ValueError(f"differences[{j}] is empty: every draw needs at least one seed")
        means.append(sum(values) / len(values))
    return summarize(means)


def p_value(stat: Stat) -> float:
    """Two-sided p-value of Student's t test that the mean behind ``stat`` is 0 (``n - 1`` df)."""
    if stat.n < 2 or not math.isfinite(stat.std):
        raise ValueError(f"a p-value needs at least two values, got n={stat.n}")
    if stat.std == 0:
        return 1.0 if stat.mean == 0 else 0.0
    t = stat.mean / (stat.std / math.sqrt(stat.n))
    return float(2 * stats.t.sf(abs(t), stat.n - 1))


def equivalence_p(stat: Stat, margin: float) -> float:
    """p-value of the two one-sided tests (TOST) that the mean lies inside ``(-margin, margin)``.

    Small means "the same, to within the margin": both ``mean <= -margin`` and ``mean >= margin``
    are rejected. The margin must be fixed before the data are seen.
    """
    se = _margin_test_se(stat, margin, "an equivalence test")
    if se == 0:
        return 0.0 if abs(stat.mean) < margin else 1.0
    lower = stats.t.sf((stat.mean + margin) / se, stat.n - 1)  # H0: mean <= -margin
    upper = stats.t.cdf((stat.mean - margin) / se, stat.n - 1)  # H0: mean >= +margin
    return float(max(lower, upper))


def noninferiority_p(stat: Stat, margin: float) -> float:
    """p-value of the one-sided test that the mean is above ``-margin`` ("not worse by the margin").

    Small means the difference behind ``stat`` is at least ``-margin``: H0, ``mean <= -margin``,
    is rejected by Student's t test with ``n - 1`` degrees of freedom.
    """
    se = _margin_test_se(stat, margin, "a non-inferiority test")
    if se == 0:
        return 0.0 if stat.mean > -margin else 1.0
    return float(stats.t.sf((stat.mean + margin) / se, stat.n - 1))


def _margin_test_se(stat: Stat, margin: object, test: str) -> float:
    """Check a margin test's arguments; return the standard error of the mean behind ``stat``."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin > 0:
        raise ValueError(f"margin must be a number > 0, got {margin!r}")
    if stat.n < 2 or not math.isfinite(stat.std):
        raise ValueError(f"{test} needs at least two values, got n={stat.n}")
    return stat.std / math.sqrt(stat.n)


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment of a family of p-values (same keys, adjusted values).

    Reject the claims whose adjusted p-value is below the level (0.05): the chance of any false
    rejection in the family is then at most the level, whatever the dependence between the tests.
    """
    if not isinstance(p_values, Mapping) or not p_values:
        raise ValueError("p_values must be a non-empty mapping of name -> p-value")
    for name, p in p_values.items():
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"p-value {name!r} must be a number in [0, 1], got {p!r}")
    order = sorted(p_values, key=lambda k: p_values[k])
    m, running, adjusted = len(order), 0.0, {}
    for i, name in enumerate(order):
        running = max(running, min(1.0, (m - i) * p_values[name]))
        adjusted[name] = running
    return {name: adjusted[name] for name in p_values}


def simultaneous(stat: Stat, family: int, level: float = 0.05) -> Stat:
    """``stat`` with its interval widened so that ``family`` such intervals hold together (Bonferroni).

    Each of the ``family`` intervals is Student's t interval at level ``1 - level / family``; the
    chance that *any* of them misses its mean is then at most ``level``. Use it to draw the intervals
    of a family whose verdicts come from :func:`holm`: an interval that excludes 0 here is a
    difference that Holm's procedure also finds (Holm rejects at least what Bonferroni rejects).
    The returned :class:`Stat` keeps ``mean``, ``std`` and ``n``; its ``ci95`` is the widened half-width.
    """
    if isinstance(family, bool) or not isinstance(family, int) or family < 1:
        raise ValueError(f"family must be the number of intervals in the family, an int >= 1, got {family!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    if stat.n < 2 or not math.isfinite(stat.std):
        raise ValueError(f"an interval needs at least two values, got n={stat.n}")
    half = float(stats.t.ppf(1 - level / (2 * family), stat.n - 1)) * stat.std / math.sqrt(stat.n)
    return Stat(stat.mean, stat.std, half, stat.n)


def render_table(names: Sequence[str], headings: Sequence[str], cells: Sequence[Sequence[str]], footer: str) -> str:
    """A plain-text table: a ``method`` column of ``names``, one right-aligned column per heading, a footer."""
    first = max(len("method"), *(len(m) for m in names))
    widths = [max(len(h), *(len(row[j]) for row in cells)) for j, h in enumerate(headings)]
    lines = ["method".ljust(first) + "".join(f"  {h:>{w}}" for h, w in zip(headings, widths, strict=True))]
    for name, row in zip(names, cells, strict=True):
        lines.append(name.ljust(first) + "".join(f"  {c:>{w}}" for c, w in zip(row, widths, strict=True)))
    return "\n".join([*lines, footer])
