"""Controlled comparisons: one architecture, several training methods, several seeds.

A claim such as "manifold mixup beats ERM on digits" is only as good as the spread behind
it. :func:`compare_methods` trains the same architecture once per method and seed, with
the same initial weights and mini-batches for every method at a given seed, measures each
trained model, and returns a :class:`Comparison` that summarises every measurement as
mean, standard deviation and a 95 % confidence interval over the seeds.

The default methods follow the manifold-mixup paper (Verma et al., arXiv 1806.05236):
ERM, input mixup with ``alpha = 1`` and manifold mixup with ``alpha = 2``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._checks import check_choice, check_flag, check_seeds
from .data import Split
from .ensemble import fit_ensemble, stackable
from .metrics import classification_report, logits, mean_confidence, nll, reliability, score, temperature_for_confidence
from .recipe import METHODS, Recipe
from .seeding import seed_everything
from .stats import Stat, check_digits, paired_difference, render_table, summarize
from .train import FIT_KEYWORDS, History, check_fit_arguments, evaluate, fit

__all__ = ["PAPER_METHODS", "Comparison", "compare_methods", "temperature_control"]

#: The three methods of the manifold-mixup paper, with its mixing parameters.
PAPER_METHODS: dict[str, dict[str, Any]] = {
    "ERM": {"method": "erm"},
    "input mixup": {"method": "input", "alpha": 1.0},
    "manifold mixup": {"method": "manifold", "alpha": 2.0},
}

# Arguments of fit that compare_methods sets itself, per method or per seed.
_RESERVED = {"model", "x", "y", "method", "alpha", "seed", "x_test", "y_test"}

Measure = Callable[[nn.Module, Split], Mapping[str, float]]


@dataclass
class Comparison:
    """What :func:`compare_methods` measured: one row per (method, seed).

    Attributes:
        rows: One dict per trained model, with keys ``"method"``, ``"seed"`` and one key per
            measurement (always ``"test_accuracy"`` for classification or ``"test_mse"`` for
            regression, plus whatever ``measure`` returned).
        models: The trained models by ``(method, seed)`` (empty if ``keep_models=False``).
        histories: The training histories by ``(method, seed)``.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    models: dict[tuple[str, int], nn.Module] = field(default_factory=dict)
    histories: dict[tuple[str, int], History] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        """Method names, in the order they were run."""
        return list(dict.fromkeys(row["method"] for row in self.rows))

    @property
    def metrics(self) -> list[str]:
        """Measurement names, in the order they first appear."""
        names = [k for row in self.rows for k in row if k not in ("method", "seed")]
        return list(dict.fromkeys(names))

    def values(self, method: str, metric: str) -> list[float]:
        """The values of ``metric`` for ``method``, one per seed, in seed order."""
        check_choice("method", method, self.methods)
        check_choice("metric", metric, self.metrics)
        return [row[metric] for row in self.rows if row["method"] == method]

    def summary(self) -> dict[str, dict[str, Stat]]:
        """``{method: {metric: Stat}}`` over the seeds."""
        return {m: {k: summarize(self.values(m, k)) for k in self.metrics} for m in self.methods}

    def table(
        self,
        metrics: Iterable[str] | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        digits: int = 3,
        spread: str = "std",
    ) -> str:
        """A plain-text table: one row per method, one ``mean ± spread`` column per metric.

        Args:
            metrics: Which measurements, in order (default: all).
            labels: Column headings to use instead of the metric names.
            digits: Decimals shown.
            spread: ``"std"`` (standard deviation over the seeds) or ``"ci95"``.
        """
        metrics = self._check_metrics(metrics)
        if labels is not None and not isinstance(labels, Mapping):
            raise TypeError(f"labels must be a mapping from metric to heading, got {type(labels).__name__}")
        labels = dict(labels or {})
        digits = check_digits(digits)
        summary = self.summary()
        cells = [[summary[m][k].format(digits, spread) for k in metrics] for m in self.methods]
        n = "/".join(map(str, sorted({s.n for per in summary.values() for s in per.values()})))
        footer = f"(mean ± {'std' if spread == 'std' else '95% CI'} over {n} seeds)"
        return render_table(self.methods, [labels.get(k, k) for k in metrics], cells, footer)

    def seeds(self, method: str) -> list[int]:
        """The seeds of ``method``'s runs, in order."""
        return [row["seed"] for row in self.rows if row["method"] == method]

    def paired(self, baseline: str, metric: str) -> dict[str, Stat]:
        """``{method: Stat}`` of per-seed differences ``method - baseline`` on ``metric``.

        Each method is paired with the baseline seed by seed (same initial weights and
        mini-batches); the :class:`~mixlib.stats.Stat`'s ``ci95`` is the half-width of the 95 % Student-t
        interval for the mean difference. The baseline itself is left out.
        """
        self._check_baseline(baseline)
        check_choice("metric", metric, self.metrics)
        base = dict(zip(self.seeds(baseline), self.values(baseline, metric), strict=True))
        out: dict[str, Stat] = {}
        for method in self.methods:
            if method == baseline:
                continue
            mine = dict(zip(self.seeds(method), self.values(method, metric), strict=True))
            if set(mine) != set(base):
                raise ValueError(f"{method!r} and {baseline!r} were run on different seeds; they cannot be paired")
            order = sorted(base)
            out[method] = paired_difference([mine[s] for s in order], [base[s] for s in order])
        return out

    def _check_metrics(self, metrics: object) -> list[str]:
        if isinstance(metrics, str) or not (metrics is None or isinstance(metrics, Iterable)):
            raise TypeError(f"metrics must be a list of metric names (or None for all), got {metrics!r}")
        metrics = list(self.metrics if metrics is None else metrics)
        if not metrics:
            raise ValueError("metrics must name at least one metric (or be None for all)")
        for k in metrics:
            check_choice("metrics: each metric", k, self.metrics)
        return metrics

    def _check_baseline(self, baseline: object) -> None:
        check_choice("baseline method", baseline, self.methods)

    def paired_table(self, baseline: str, metrics: Iterable[str] | None = None, *, digits: int = 3) -> str:
        """A plain-text table of paired differences to ``baseline``: ``mean [low, high]`` per metric.

        The brackets are the 95 % Student-t interval of the mean per-seed difference; an interval
        that excludes 0 is marked with ``*``.
        """
        self._check_baseline(baseline)
        digits = check_digits(digits)
        metrics = self._check_metrics(metrics)
        diffs = {k: self.paired(baseline, k) for k in metrics}
        methods = [m for m in self.methods if m != baseline]

        cells = [[diffs[k][m].interval(digits) + ("*" if diffs[k][m].excludes_zero() else " ") for k in metrics]
                 for m in methods]
        n = len(self.seeds(baseline))
        footer = f"(method - {baseline}, mean over {n} paired seeds [95% t interval]; * excludes 0)"
        return render_table(methods, [f"Δ {k}" for k in metrics], cells, footer)

    def merge(self, other: Comparison) -> Comparison:
        """A new comparison with the runs of ``self`` followed by those of ``other``.

        Use it to put methods that need different models (for example different eligible
        layers) in one table.
        """
        if not isinstance(other, Comparison):
            raise TypeError(f"other must be a Comparison, got {type(other).__name__}")
        mine = {(row["method"], row["seed"]) for row in self.rows}
        twice = sorted(mine & {(row["method"], row["seed"]) for row in other.rows})
        if twice:
            raise ValueError(f"both comparisons have runs for {twice}; rename the methods of one of them")
        return Comparison(
            rows=[dict(row) for row in self.rows + other.rows],
            models={**self.models, **other.models},
            histories={**self.histories, **other.histories},
        )

    def __repr__(self) -> str:
        seeds = sorted({row["seed"] for row in self.rows})
        return f"Comparison(methods={self.methods}, seeds={seeds}, metrics={self.metrics})"


def _check_methods(methods: Mapping[str, Mapping[str, Any] | Recipe]) -> dict[str, dict[str, Any]]:
    """Each method as fit arguments: a :class:`~mixlib.recipe.Recipe` becomes ``{"recipe": it}``."""
    if not isinstance(methods, Mapping) or not methods:
        raise ValueError("methods must be a non-empty mapping from a name to a Recipe or fit arguments")
    specs = {}
    for name, spec in methods.items():
        if not isinstance(name, str):
            raise TypeError(f"methods must be keyed by names (strings), got the key {name!r}")
        if isinstance(spec, Recipe):
            spec = {"recipe": spec}
        if not isinstance(spec, Mapping) or ("recipe" not in spec and spec.get("method") not in METHODS):
            raise ValueError(
                f"methods[{name!r}] must be a Recipe or a mapping with 'method' in {METHODS} (and optionally "
                f"'alpha' or other fit arguments), got {spec!r}"
            )
        clash = set(spec) & (_RESERVED - {"method", "alpha"})
        if clash:
            raise ValueError(f"methods[{name!r}] must not set {sorted(clash)}: compare_methods sets them")
        specs[name] = dict(spec)
    return specs


def compare_methods(
    build: Callable[[], nn.Module],
    data: Split,
    *,
    seeds: Iterable[int] = (0, 1, 2),
    methods: Mapping[str, Mapping[str, Any] | Recipe] = PAPER_METHODS,
    measure: Measure | None = None,
    keep_models: bool = True,
    device: torch.device | str | None = None,
    vectorize: bool = True,
    track_test: bool = False,
    **fit_kwargs: Any,
) -> Comparison:
    """Train ``build()`` with each method and seed, and measure every trained model.

    For every seed, every method starts from the same initial weights
    (``seed_everything(seed)`` before ``build()``) and sees the same shuffled mini-batches
    (``fit(..., seed=seed)``), so the methods differ only in their loss, and
    :meth:`Comparison.paired` can compare them seed by seed.

    When ``build()`` returns a :func:`~mixlib.manifold.mlp` network and no ``loss_fn`` is given,
    all seeds of a method are trained at once as a vectorised ensemble
    (:func:`mixlib.ensemble.fit_ensemble`), which gives the same models as separate runs.

    Args:
        build: Makes a fresh, untrained model (a :class:`~mixlib.manifold.StagedNet` for
            manifold mixup), for example ``lambda: mlp(64, [128, 128], 10)``.
        data: The train/test split; the model is trained on the training part.
        seeds: The seeds, at least one; use ten or more for a claim about the methods.
        methods: ``{name: Recipe}`` or ``{name: fit arguments}``, the latter with a ``"method"`` in
            ``("erm", "input", "manifold", "target")`` (``"target"``: target-only mixing, the mixed
            targets of input mixup on the unmixed inputs) and any other field of :class:`~mixlib.recipe.Recipe`
            or argument of :func:`~mixlib.train.fit` (``alpha``, ``loss``, ``layers``, ``lr``, ...);
            default :data:`PAPER_METHODS`.
        measure: Optional ``measure(model, data) -> {name: number}``, called on each trained
            model (in eval mode) for extra measurements.
        keep_models: Keep the trained models in :attr:`Comparison.models`.
        device: Where to train (default: where ``build()`` puts the model).
        vectorize: Train the seeds of a method as one ensemble when possible (``False`` forces
            one :func:`~mixlib.train.fit` call per seed).
        track_test: Record the test metric in the histories at every evaluation (pass
            ``eval_every`` too), for learning curves; the test set never influences training.
        **fit_kwargs: Passed to :func:`~mixlib.train.fit` for every run (``epochs``,
            ``batch_size``, ``lr``, ...), except the arguments set here (``method``,
            ``alpha``, ``seed``, the data).

    Returns:
        A :class:`Comparison` with one row per (method, seed): ``test_accuracy``, ``test_nll`` and
        ``test_ece`` for classification (ECE with 15 bins), ``test_mse`` for regression, and
        whatever ``measure`` returns.
    """
    if isinstance(build, nn.Module) or not callable(build):
        raise TypeError(f"build must be a function that returns a new model, got {type(build).__name__}")
    if not isinstance(data, Split):
        raise TypeError(f"data must be a mixlib Split (for example mixlib.digits()), got {type(data).__name__}")
    seeds = check_seeds(seeds, distinct=True)
    methods = _check_methods(methods)
    if measure is not None and not callable(measure):
        raise TypeError(f"measure must be callable, got {type(measure).__name__}")
    for name, flag in (("keep_models", keep_models), ("vectorize", vectorize), ("track_test", track_test)):
        check_flag(name, flag)
    clash = set(fit_kwargs) & _RESERVED
    if clash:
        raise ValueError(f"do not pass {sorted(clash)}: compare_methods sets them (use methods= for method/alpha)")
    check_fit_arguments(fit_kwargs, {"recipe", *FIT_KEYWORDS, "fast"})  # fast: fit_ensemble's (vectorize=True)
    fit_kwargs.setdefault("eval_every", 10**9)  # evaluate once, after the last epoch
    fit_kwargs.setdefault("progress", False)
    if device is not None:
        fit_kwargs["device"] = device
    if track_test:
        fit_kwargs.update(x_test=data.x_test, y_test=data.y_test)

    result = Comparison()
    for name, spec in methods.items():
        models = []
        for seed in seeds:
            seed_everything(seed)
            model = build()
            if not isinstance(model, nn.Module):
                raise TypeError(f"build() must return an nn.Module, got {type(model).__name__}")
            models.append(model)
        kwargs = {**fit_kwargs, **dict(spec)}
        if vectorize and "loss_fn" not in kwargs and all(stackable(m) for m in models):
            histories = fit_ensemble(models, data.x_train, data.y_train, seeds=seeds, **kwargs)
        else:
            pairs = zip(models, seeds, strict=True)
            histories = [fit(m, data.x_train, data.y_train, seed=s, **kwargs) for m, s in pairs]
        for seed, model, history in zip(seeds, models, histories, strict=True):
            result.rows.append(_measure_row(name, seed, model, data, measure))
            result.histories[(name, seed)] = history
            if keep_models:
                result.models[(name, seed)] = model
    return result


def _measure_row(name: str, seed: int, model: nn.Module, data: Split, measure: Measure | None) -> dict[str, Any]:
    model.eval()
    row: dict[str, Any] = {"method": name, "seed": seed}
    if data.num_classes is None:
        row["test_mse"] = evaluate(model, data.x_test, data.y_test)
    else:
        report = classification_report(model, data.x_test, data.y_test)
        row.update(test_accuracy=report["accuracy"], test_nll=report["nll"], test_ece=report["ece"])
    if measure is not None:
        extra = measure(model, data)
        if not isinstance(extra, Mapping):
            raise TypeError(f"measure must return a mapping of name -> number, got {type(extra).__name__}")
        for key, value in extra.items():
            if key in ("method", "seed"):
                raise ValueError(f"measure must not return the reserved key {key!r}")
            if isinstance(value, torch.Tensor):
                value = value.detach()
            try:
                row[key] = float(value)  # numbers, one-element tensors, numpy scalars
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(f"measure must return numbers, got {value!r} for {key!r}") from None
    return row


def temperature_control(
    comparison: Comparison, data: Split, method: str, match: str, name: str | None = None
) -> Comparison:
    """``method``'s models, temperature-scaled to ``match``'s mean test confidence, as a new method.

    For each seed, the logits of ``method``'s model are divided by the temperature at which their
    mean top probability on the test set equals that of ``match``'s model of the same seed
    (:func:`mixlib.metrics.temperature_for_confidence`). Accuracy cannot change (no prediction
    does); NLL and ECE can. If ``match`` beats ``method`` only on NLL or ECE, and the scaled
    models close the gap, the gain was confidence, not a better model.

    Args:
        comparison: A :class:`Comparison` with kept models for ``method`` and ``match``; it is
            not changed.
        data: The split it was trained on.
        method: The method whose models are rescaled (for example ``"ERM"``).
        match: The method whose confidence they are matched to.
        name: The new method's name; default ``"<method> at <match>'s confidence"``.

    Returns:
        A new :class:`Comparison` with one row per seed for the new method (and no models):
        ``comparison.merge(temperature_control(comparison, ...))`` puts it beside the others.
    """
    if not isinstance(comparison, Comparison):
        raise TypeError(f"comparison must be a Comparison, got {type(comparison).__name__}")
    if not isinstance(data, Split) or data.num_classes is None:
        raise TypeError("data must be the classification Split the comparison was trained on")
    check_choice("method", method, comparison.methods)
    check_choice("match", match, comparison.methods)
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a string or None, got {type(name).__name__}")
    name = name or f"{method} at {match}'s confidence"
    if name in comparison.methods:
        raise ValueError(f"name {name!r} is already a method of the comparison; choose another")
    seeds = comparison.seeds(method)
    if sorted(seeds) != sorted(comparison.seeds(match)):
        raise ValueError(f"{method!r} and {match!r} were run on different seeds")
    result = Comparison()
    for seed in seeds:
        for m in (method, match):
            if (m, seed) not in comparison.models:
                raise ValueError(f"no model kept for ({m!r}, seed {seed}); run compare_methods with keep_models=True")
        scores = logits(comparison.models[(method, seed)], data.x_test).double()
        target = mean_confidence(logits(comparison.models[(match, seed)], data.x_test))
        scaled = scores / temperature_for_confidence(scores, target)
        y = data.y_test.to(scaled.device)
        result.rows.append({
            "method": name, "seed": seed,
            "test_accuracy": float(score(scaled, y)),
            "test_nll": nll(scaled, y),
            "test_ece": reliability(torch.softmax(scaled, 1), y, 15).ece,
        })
    return result
