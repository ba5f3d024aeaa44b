"""A table-driven fuzz of mixlib's public API: odd inputs must give clear errors, valid ones must work.

Every public function in :data:`SPECS` has a small valid baseline call, and every argument a kind
(``"x"``: a model's input batch, ``"labels"``, ``"lam"``, ``"seed"``, ...). Each kind lists its
mutations (wrong types, bools for numbers, NaN, empty and 0-d tensors, wrong shapes and dtypes,
labels out of range, bad generators and seeds, meta tensors, ...), and each mutation declares
what it expects: ``"error"`` (the input is wrong and must raise) or ``"ok"`` (it is valid and must
work). A case is one mutation of one argument of one function, all other arguments at baseline.

Outcomes:

- ``clear``: a ``TypeError`` or ``ValueError`` raised from a frame inside ``mixlib/`` whose message
  names the argument (or, for a mismatch, one of the arguments involved);
- ``vague``: a ``TypeError``/``ValueError`` from inside ``mixlib/`` whose message names none of them;
- ``deep``: any other exception, or one raised from inside torch, NumPy, scikit-learn or SciPy;
- ``silent``: returned normally where an error was expected;
- ``late``: a training function raised the expected error only after the weights had changed;
- ``false_alarm``: raised on a valid input;
- ``wrong``: returned on a valid input, but not what the equivalent baseline input gives;
- ``hang``: ran past :data:`TIME_LIMIT_S`;
- ``ok``: a valid input worked;
- ``n/a``: the function or argument does not exist in the library under test.

``clear`` and ``ok`` pass; the rest but ``n/a`` are failures. Run ``python tests/fuzz_api.py``
for counts by outcome and by function (``-v`` lists the failures, ``-k TEXT`` keeps the functions
whose name contains TEXT). With ``PYTHONPATH=/another/checkout`` it fuzzes that copy of mixlib.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import re
import signal
import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch import nn

TIME_LIMIT_S = 5.0  # CPU seconds per case (CPU time, so that a busy machine does not fake a hang)
B, D, C = 6, 4, 3  # batch size, input width and classes of the baseline data
PASS = ("clear", "ok")
FAIL = ("vague", "deep", "silent", "late", "false_alarm", "wrong", "hang", "harness")
OUTCOMES = PASS + FAIL + ("n/a",)

os.environ.setdefault("MIXLIB_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")  # the plot functions draw on a figure that is never shown


# ----------------------------------------------------------------------------------------------
# The table's vocabulary.


@dataclass(frozen=True)
class M:
    """One mutation: ``make(base, kwargs)`` returns the new value of the argument.

    ``same(base, kwargs)``, for an ``"ok"`` mutation, returns an input that must give the same
    result (for example lam shaped ``(B,)`` for lam shaped ``(B, 1)``).
    """

    label: str
    make: Callable[[Any, dict], Any]
    expect: str
    names: tuple[str, ...] = ()
    same: Callable[[Any, dict], Any] | None = None


@dataclass(frozen=True)
class A:
    """An argument: its kind, a factory for its baseline value and adjustments to its kind's mutations.

    Attributes:
        kind: key of :data:`KINDS` (``"custom"`` for none).
        base: ``base()`` returns a fresh baseline value.
        null: ``None`` is a valid value.
        ok / err: labels whose expectation becomes ``"ok"`` / ``"error"``.
        skip: labels left out.
        extra: mutations of this argument only.
        names: other names an error message may use for this argument.
        pair: the mismatched-batch mutation applies (another argument shares the batch).
        via: for an argument passed through ``**kwargs``, the function that takes it.
        only_labels: keep only these of the kind's mutations (and ``extra``).
    """

    kind: str
    base: Callable[[], Any]
    null: bool = False
    ok: tuple[str, ...] = ()
    err: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    extra: tuple[M, ...] = ()
    names: tuple[str, ...] = ()
    pair: bool = True
    via: str | None = None
    only_labels: tuple[str, ...] | None = None


@dataclass
class F:
    """A public function: where it lives, its arguments at baseline, and how to call it.

    ``target`` is ``"module.name"`` or ``"module.Class.method"`` (the bound object is the argument
    ``"self"``). ``call(fn, kwargs)`` replaces ``fn(**kwargs)``; ``guard`` names the argument
    holding the model(s) a training function must not have changed before it raises; ``only``
    restricts which arguments are mutated; ``cases`` are whole-call cases ``(label, kwargs ->
    kwargs, expect)``; ``check(result, kwargs)`` recomputes the baseline's answer by hand.
    """

    target: str
    args: dict[str, A]
    label: str | None = None
    call: Callable[[Callable, dict], Any] | None = None
    guard: str | None = None
    only: tuple[str, ...] | None = None
    cases: tuple[tuple[str, Callable[[dict], dict], str], ...] = ()
    check: Callable[[Any, dict], bool] | None = None

    @property
    def name(self) -> str:
        return self.label or self.target


@dataclass
class Case:
    func: F
    arg: str  # "-" for the baseline and whole-call cases
    label: str
    expect: str
    kwargs: Callable[[], dict]
    names: tuple[str, ...]
    same: Callable[[], dict] | None = None

    @property
    def id(self) -> str:
        return f"{self.func.name}|{self.arg}|{self.label}"


@dataclass
class Result:
    id: str
    func: str
    arg: str
    label: str
    expect: str
    outcome: str
    detail: str = ""


# ----------------------------------------------------------------------------------------------
# The library under test, resolved lazily (PYTHONPATH picks the copy).


class NotApplicable(Exception):
    pass


def lib(path: str) -> Any:
    """``lib("train.fit")`` is ``mixlib.train.fit``; raises NotApplicable where it does not exist."""
    parts = path.split(".")
    try:
        obj: Any = importlib.import_module(f"mixlib.{parts[0]}")
    except ImportError as problem:
        raise NotApplicable(str(problem)) from None
    for part in parts[1:]:
        if not hasattr(obj, part):
            raise NotApplicable(f"mixlib.{path} does not exist")
        obj = getattr(obj, part)
    return obj


def mlp(*args: Any, **kwargs: Any) -> nn.Module:
    return lib("manifold.mlp")(*args, **kwargs)


# ----------------------------------------------------------------------------------------------
# Baseline values. Each call returns fresh objects (models are trained in place).


def _g(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def x_() -> torch.Tensor:
    return torch.randn(B, D, generator=_g(1))


def x2_() -> torch.Tensor:
    return torch.randn(B, D, generator=_g(2))


def y_() -> torch.Tensor:
    return torch.tensor([0, 1, 2, 0, 1, 2])


def y2_() -> torch.Tensor:
    return torch.tensor([1, 2, 0, 2, 0, 1])


def perm_() -> torch.Tensor:
    return torch.tensor([1, 0, 3, 2, 5, 4])


def logits_() -> torch.Tensor:
    return torch.randn(B, C, generator=_g(3))


def probs_() -> torch.Tensor:
    return torch.softmax(logits_(), dim=1)


def target_() -> torch.Tensor:
    eye = torch.eye(C)
    return 0.3 * eye[y_()] + 0.7 * eye[y2_()]


def reg_(n: int = B) -> torch.Tensor:
    return torch.randn(n, generator=_g(4))


def model_() -> nn.Module:
    torch.manual_seed(0)
    return mlp(D, [5], C)


def model2_() -> nn.Module:
    """Two hidden layers, mixing allowed at layers 0 and 1 only (layer 2 exists but is not eligible)."""
    torch.manual_seed(0)
    return mlp(D, [5, 5], C, eligible_layers=[0, 1])


def split_() -> Any:
    return lib("data.two_moons")(n=16, seed=0)


def regression_split_() -> Any:
    return lib("data.regression_1d")(n=16, seed=0)


def h_() -> torch.Tensor:
    return torch.randn(12, 5, generator=_g(5))


def hlabels_() -> torch.Tensor:
    return torch.tensor([0, 1, 2] * 4)


def comparison_() -> Any:
    rows = [
        {"method": m, "seed": s, "test_accuracy": 0.5 + 0.1 * s + (0.05 if m == "mix" else 0.0) + 0.01 * s * s,
         "test_nll": 1.0 - 0.1 * s}
        for m in ("ERM", "mix") for s in range(3)
    ]
    return lib("experiments.Comparison")(rows=rows)


_TRAINED: dict[str, Any] = {}


def _trained_comparison() -> Any:
    """A small trained comparison (kept models), built once and copied for each case."""
    if "comparison" not in _TRAINED:
        _TRAINED["comparison"] = lib("experiments.compare_methods")(
            _two_d_model, split_(), seeds=(0, 1), methods=_COMPARE_METHODS, epochs=1, batch_size=4)
    c = _TRAINED["comparison"]
    return type(c)(rows=[dict(r) for r in c.rows], models=dict(c.models), histories=dict(c.histories))


def stat_() -> Any:
    return lib("stats.Stat")(0.5, 0.1, 0.2, 3)


def nan_at(t: torch.Tensor) -> torch.Tensor:
    t = t.clone() if t.is_floating_point() else t.float()
    t.view(-1)[0] = float("nan")
    return t


def inf_at(t: torch.Tensor, sign: float = 1.0) -> torch.Tensor:
    t = t.clone() if t.is_floating_point() else t.float()
    t.view(-1)[0] = sign * math.inf
    return t


def _infs() -> list[M]:
    """+inf and -inf: the same check as NaN wherever NaN is checked."""
    return [_m("inf", inf_at), _m("minus_inf", lambda b: inf_at(b, -1.0))]


def set_first(t: torch.Tensor, value: Any) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = value
    return t


def noncontiguous(t: torch.Tensor) -> torch.Tensor:
    return t.t().contiguous().t() if t.dim() == 2 else t


# ----------------------------------------------------------------------------------------------
# The kinds of argument and their mutations.


def _m(label: str, make: Callable[[Any], Any], expect: str = "error", **kw: Any) -> M:
    return M(label, lambda b, kwargs: make(b), expect, **kw)


def _types() -> list[M]:
    return [
        _m("str", lambda b: "abc"),
        _m("list", lambda b: b.tolist()),
        _m("None", lambda b: None),
        _m("numpy", lambda b: b.numpy()),
    ]


def _tensor_common() -> list[M]:
    return _types() + [
        _m("0d", lambda b: b.reshape(-1)[0].clone()),
        _m("meta", lambda b: b.to("meta")),
        _m("mismatch", lambda b: b[:-1].clone()),
        _m("empty", lambda b: b[:0].clone()),
    ]


KINDS: dict[str, list[M]] = {
    # A model's input batch (float32, (B, D)).
    "x": _tensor_common() + [
        _m("int64", lambda b: b.long()),
        _m("bool", lambda b: b > 0),
        _m("complex", lambda b: b.to(torch.complex64)),
        _m("float16", lambda b: b.half()),
        _m("bfloat16", lambda b: b.bfloat16()),
        _m("float64", lambda b: b.double()),
        _m("extra_dim", lambda b: b[:, None]),
        _m("wide", lambda b: torch.cat([b, b[:, :1]], 1), names=("model",)),
        _m("narrow", lambda b: b[:, :-1].clone(), names=("model",)),
        _m("nan", nan_at),
        *_infs(),
        _m("requires_grad", lambda b: b.clone().requires_grad_(), "ok"),
        _m("noncontiguous", noncontiguous, "ok"),
    ],
    # Any floating-point batch, any trailing shape (mixing, losses on raw tensors).
    "t": _tensor_common() + [
        _m("int64", lambda b: b.long()),
        _m("bool", lambda b: b > 0),
        _m("complex", lambda b: b.to(torch.complex64)),
        _m("float16", lambda b: b.half(), "ok"),
        _m("bfloat16", lambda b: b.bfloat16(), "ok"),
        _m("float64", lambda b: b.double(), "ok"),
        _m("nan", nan_at),
        *_infs(),
        _m("requires_grad", lambda b: b.clone().requires_grad_(), "ok"),
        _m("noncontiguous", noncontiguous, "ok"),
    ],
    # Integer class labels (B,) in [0, C).
    "labels": _tensor_common() + [
        _m("float", lambda b: b.float()),
        _m("onehot_float", lambda b: torch.eye(int(b.max()) + 1)[b]),
        _m("B1", lambda b: b[:, None].clone()),
        _m("BB", lambda b: b[:, None].expand(len(b), len(b)).clone()),
        _m("minus1", lambda b: set_first(b, -1)),
        _m("C", lambda b: set_first(b, C)),
        _m("minus100", lambda b: set_first(b, -100)),
        _m("bool", lambda b: b > 0),
        _m("int32", lambda b: b.int(), "ok", same=lambda b, kw: b),
        _m("uint8", lambda b: b.to(torch.uint8), "ok", same=lambda b, kw: b),
    ],
    # Probability rows (B, C): soft targets.
    "target": _tensor_common() + [
        _m("int64", lambda b: b.long()),
        _m("labels", lambda b: b.argmax(1)),
        _m("wide", lambda b: torch.cat([b, b[:, :1]], 1)),
        _m("1d", lambda b: b[:, 0].clone()),
        _m("nan", nan_at),
        *_infs(),
        _m("negative", lambda b: b - 0.5),
        _m("float64", lambda b: b.double(), "ok"),
    ],
    # Logits (B, C).
    "logits": _tensor_common() + [
        _m("int64", lambda b: b.long()),
        _m("1d", lambda b: b[:, 0].clone()),
        _m("3d", lambda b: b[:, None].clone()),
        _m("nan", nan_at),
        *_infs(),
        _m("narrow", lambda b: b[:, :-1].clone(), names=("y", "y2", "labels")),
        _m("float64", lambda b: b.double(), "ok"),
        _m("float16", lambda b: b.half(), "ok"),
        _m("requires_grad", lambda b: b.clone().requires_grad_(), "ok"),
    ],
    # Softmax probabilities (B, C).
    "probs": _tensor_common() + [
        _m("int64", lambda b: b.long()),
        _m("1d", lambda b: b[:, 0].clone()),
        _m("3d", lambda b: b[:, None].clone()),
        _m("nan", nan_at),
        *_infs(),
        _m("logits", lambda b: b.log() * 3),
        _m("float64", lambda b: b.double(), "ok"),
    ],
    # A mixing weight in [0, 1]: a number, or one per example shaped (B,) or (B, 1).
    "lam": [
        _m("minus0.1", lambda b: -0.1),
        _m("1.1", lambda b: 1.1),
        _m("nan", lambda b: math.nan),
        _m("inf", lambda b: math.inf),
        _m("bool", lambda b: True),
        _m("str", lambda b: "0.5"),
        _m("None", lambda b: None),
        _m("list", lambda b: [0.3] * B),
        _m("numpy_array", lambda b: np.full(B, 0.3)),
        _m("int0", lambda b: 0, "ok", same=lambda b, kw: 0.0),
        _m("int1", lambda b: 1, "ok", same=lambda b, kw: 1.0),
        _m("np_float32", lambda b: np.float32(0.25), "ok", same=lambda b, kw: 0.25),
        _m("fraction", lambda b: Fraction(1, 4), "ok", same=lambda b, kw: 0.25),
        _m("tensor_0d", lambda b: torch.tensor(0.25), "ok", same=lambda b, kw: 0.25),
        _m("tensor_B", lambda b: torch.linspace(0, 1, B), "ok"),
        _m("tensor_B1", lambda b: torch.linspace(0, 1, B)[:, None], "ok",
           same=lambda b, kw: torch.linspace(0, 1, B)),
        _m("tensor_B_float64", lambda b: torch.linspace(0, 1, B).double(), "ok"),
        _m("tensor_B_requires_grad", lambda b: torch.linspace(0, 1, B).requires_grad_(), "ok"),
        _m("tensor_B2", lambda b: torch.full((B, 2), 0.5)),
        _m("tensor_BB", lambda b: torch.full((B, B), 0.5)),
        _m("tensor_short", lambda b: torch.full((B - 1,), 0.5)),
        _m("tensor_int", lambda b: torch.zeros(B, dtype=torch.long)),
        _m("tensor_nan", lambda b: nan_at(torch.full((B,), 0.5))),
        _m("tensor_outside", lambda b: torch.linspace(-1, 2, B)),
        _m("tensor_meta", lambda b: torch.full((B,), 0.5).to("meta")),
    ],
    # A pairing: LongTensor (B,) with values in [0, B).
    "perm": _types() + [
        _m("0d", lambda b: torch.tensor(0)),
        _m("meta", lambda b: b.to("meta")),
        _m("float", lambda b: b.float()),
        _m("int32", lambda b: b.int()),
        _m("out_of_range", lambda b: set_first(b, B)),
        _m("minus1", lambda b: set_first(b, -1)),
        _m("B1", lambda b: b[:, None].clone()),
        _m("short", lambda b: b[:-1].clone()),
        _m("empty", lambda b: b[:0].clone()),
        _m("repeated", lambda b: torch.zeros_like(b), "ok"),
    ],
    "generator": [
        _m("None", lambda b: None, "ok"),
        _m("seeded", lambda b: _g(7), "ok"),
        _m("numpy_generator", lambda b: np.random.default_rng(0)),
        _m("random_state", lambda b: np.random.RandomState(0)),
        _m("int", lambda b: 0),
        _m("str", lambda b: "gen"),
    ],
    "seed": [
        _m("zero", lambda b: 0, "ok"),
        _m("large_ok", lambda b: 2**31 - 1, "ok"),
        _m("2**32", lambda b: 2**32, "ok"),
        _m("np_int64", lambda b: np.int64(3), "ok", same=lambda b, kw: 3),
        _m("minus1", lambda b: -1),
        _m("2**63", lambda b: 2**63),
        _m("2**64", lambda b: 2**64),
        _m("bool", lambda b: True),
        _m("float", lambda b: 1.5),
        _m("float_integral", lambda b: 2.0),
        _m("str", lambda b: "0"),
        _m("None", lambda b: None),
        _m("tensor", lambda b: torch.tensor(3)),
    ],
    # An int >= 1.
    "pos_int": [
        _m("zero", lambda b: 0),
        _m("minus1", lambda b: -1),
        _m("bool", lambda b: True),
        _m("float", lambda b: 1.5),
        _m("float_integral", lambda b: float(b) if b is not None else 2.0),
        _m("str", lambda b: "3"),
        _m("None", lambda b: None),
        _m("nan", lambda b: math.nan),
        _m("inf", lambda b: math.inf),
        _m("np_int64", lambda b: np.int64(b if b is not None else 2), "ok",
           same=lambda b, kw: b if b is not None else 2),
    ],
    # A finite number > 0.
    "pos_float": [
        _m("zero", lambda b: 0.0),
        _m("minus1", lambda b: -1.0),
        _m("nan", lambda b: math.nan),
        _m("inf", lambda b: math.inf),
        _m("minus_inf", lambda b: -math.inf),
        _m("bool", lambda b: True),
        _m("str", lambda b: "1"),
        _m("None", lambda b: None),
        _m("np_float32", lambda b: np.float32(b), "ok", same=lambda b, kw: float(np.float32(b))),
        _m("int", lambda b: max(1, int(b)), "ok"),
    ],
    # A finite number >= 0.
    "nonneg_float": [
        _m("zero", lambda b: 0, "ok"),
        _m("minus1", lambda b: -1.0),
        _m("nan", lambda b: math.nan),
        _m("inf", lambda b: math.inf),
        _m("bool", lambda b: True),
        _m("str", lambda b: "0.1"),
        _m("None", lambda b: None),
        _m("np_float64", lambda b: np.float64(b), "ok", same=lambda b, kw: b),
    ],
    # A number strictly between 0 and 1.
    "fraction": [
        _m("zero", lambda b: 0.0),
        _m("one", lambda b: 1.0),
        _m("minus", lambda b: -0.1),
        _m("above", lambda b: 1.5),
        _m("nan", lambda b: math.nan),
        _m("inf", lambda b: math.inf),
        _m("bool", lambda b: True),
        _m("str", lambda b: "0.5"),
        _m("None", lambda b: None),
        _m("np_float32", lambda b: np.float32(b), "ok", same=lambda b, kw: float(np.float32(b))),
    ],
    # A number in [0, 1).
    "fraction0": [
        _m("zero", lambda b: 0, "ok"),
        _m("one", lambda b: 1.0),
        _m("minus", lambda b: -0.1),
        _m("nan", lambda b: math.nan),
        _m("inf", lambda b: math.inf),
        _m("bool", lambda b: True),
        _m("str", lambda b: "0.1"),
        _m("None", lambda b: None),
        _m("np_float64", lambda b: np.float64(0.1), "ok", same=lambda b, kw: 0.1),
    ],
    # One of a few strings.
    "choice": [
        _m("bogus", lambda b: "bogus"),
        _m("other_case", lambda b: b.swapcase()),
        _m("None", lambda b: None),
        _m("int", lambda b: 1),
        _m("list", lambda b: [b]),
    ],
    "flag": [
        _m("str", lambda b: "yes"),
        _m("None", lambda b: None),
        _m("int", lambda b: 1),
    ],
    # A model (nn.Module).
    "model": [
        _m("str", lambda b: "abc"),
        _m("None", lambda b: None),
        _m("function", lambda b: (lambda t: t)),
    ],
    "device": [
        _m("cpu", lambda b: "cpu", "ok"),
        _m("torch_device", lambda b: torch.device("cpu"), "ok"),
        _m("bogus", lambda b: "bogus"),
        _m("int", lambda b: 3),
        _m("meta", lambda b: "meta"),
        _m("cuda", lambda b: "cuda", "ok" if torch.cuda.is_available() else "error"),
    ],
    "custom": [],
}


def _seq(label: str, value: Callable[[], Any], expect: str = "error", **kw: Any) -> M:
    return M(label, lambda b, kwargs: value(), expect, **kw)


LAYER = (
    _seq("minus1", lambda: -1),
    _seq("too_big", lambda: 3),
    _seq("bool", lambda: True),
    _seq("float", lambda: 1.5),
    _seq("str", lambda: "1"),
    _seq("np_int64", lambda: np.int64(1), "ok", same=lambda b, kw: 1),
    _seq("zero", lambda: 0, "ok"),
)
LAYER_SETS = (
    _seq("empty", lambda: []),
    _seq("minus1", lambda: [-1]),
    _seq("too_big", lambda: [9]),
    _seq("bool", lambda: [True]),
    _seq("float", lambda: [0.0]),
    _seq("str", lambda: "01"),
    _seq("int", lambda: 1),
    _seq("list", lambda: [0, 1], "ok"),
    _seq("range", lambda: range(2), "ok"),
    _seq("repeated", lambda: [0, 0, 1], "ok"),
    _seq("numpy", lambda: np.array([0, 1]), "ok"),
)
VALUES = (
    _seq("empty", lambda: []),
    _seq("nan", lambda: [0.5, math.nan]),
    _seq("inf", lambda: [0.5, math.inf]),
    _seq("str", lambda: "abc"),
    _seq("None", lambda: None),
    _seq("str_items", lambda: ["a", "b", "c"]),
    _seq("int", lambda: 5),
    _seq("complex", lambda: [1 + 2j, 1.0, 2.0]),
    _seq("nested", lambda: [[0.5], [0.6], [0.7]]),
    _seq("tensor", lambda: torch.tensor([0.5, 0.6, 0.7]), "ok", same=lambda b, kw: [0.5, 0.6, 0.7]),
    _seq("tensor_2d", lambda: torch.tensor([[0.5, 0.6, 0.7]])),
    _seq("numpy", lambda: np.array([0.5, 0.6, 0.7]), "ok", same=lambda b, kw: [0.5, 0.6, 0.7]),
    _seq("generator", lambda: (v for v in [0.5, 0.6, 0.7]), "ok", same=lambda b, kw: [0.5, 0.6, 0.7]),
)


# Fractions held out that leave a class without a test (or a training) example of n = 16.
TEST_SIZES = (
    _seq("tiny", lambda: 0.01), _seq("huge", lambda: 0.99), _seq("smallest", lambda: 2 / 16, "ok"),
    _seq("largest", lambda: 14 / 16, "ok"),
)

# ----------------------------------------------------------------------------------------------
# The table: every public function, a valid baseline call and the kinds of its arguments.


def _call_with_model_forward(fn: Callable, kw: dict) -> Any:
    """mix_at is a context manager: enter it and run the model inside."""
    with fn(**kw):
        return kw["model"](x_())


def _call_list(fn: Callable, kw: dict) -> Any:
    return list(fn(**kw))


def _two_models() -> list[nn.Module]:
    torch.manual_seed(0)
    return [mlp(D, [5], C), mlp(D, [5], C)]


def _lossfn_ok(model: nn.Module, x: torch.Tensor, y: torch.Tensor, g: Any) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(x), y)


def _lossfn_vector(model: nn.Module, x: torch.Tensor, y: torch.Tensor, g: Any) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(x), y, reduction="none")


def _measure_ok(model: nn.Module, data: Any) -> dict:
    return {"width": 2.0}


def _two_d_model() -> nn.Module:
    torch.manual_seed(0)
    return mlp(2, [4], 2)


def _lam() -> A:
    return A("lam", lambda: 0.3)


def _labels(base: Callable[[], torch.Tensor] = y_, **kw: Any) -> A:
    return A("labels", base, **kw)


def _fit_args(method: str) -> dict[str, A]:
    """fit's arguments at a baseline that trains one epoch of a tiny model."""
    manifold = "ok" if method == "manifold" else "error"  # layers and block_grad are for manifold mixup
    return {
        "model": A("model", model_, extra=(
            _seq("linear", lambda: nn.Linear(D, C), "ok" if method != "manifold" else "error"),
        )),
        "x": A("x", x_),
        "y": _labels(),
        "method": A("choice", lambda: method),
        "alpha": A("pos_float", lambda: 1.0),
        "loss": A("choice", lambda: "ce", null=True, extra=(
            _seq("bce", lambda: "bce", "ok"), _seq("mse", lambda: "mse", "ok"))),
        "label_smoothing": A("fraction0", lambda: 0.0),
        "layers": A("custom", lambda: None, null=True, extra=LAYER_SETS[:6] + (
            _seq("int", lambda: 1, manifold), _seq("list", lambda: [0, 1], manifold),
            _seq("np_int64", lambda: np.int64(1), manifold, same=lambda b, kw: 1),
            _seq("None", lambda: None, "ok"),
        )),
        "block_grad": A("flag", lambda: False, extra=(_seq("true", lambda: True, manifold),)),
        "terms": A("choice", lambda: "all", extra=(_seq("mean_needs_mse", lambda: "mean"),)),
        "epochs": A("pos_int", lambda: 1),
        "batch_size": A("pos_int", lambda: 4, extra=(_seq("larger_than_data", lambda: 100, "ok"),)),
        "lr": A("pos_float", lambda: 0.01),
        "weight_decay": A("nonneg_float", lambda: 0.0),
        "seed": A("seed", lambda: 0),
        # x_test and y_test come together: one of them None is an error
        "x_test": A("x", x2_, names=("y_test",)),
        "y_test": _labels(y2_, names=("x_test",)),
        "loss_fn": A("custom", lambda: None, null=True, extra=(
            _seq("str", lambda: "ce"),
            _seq("returns_vector", lambda: _lossfn_vector),
            _seq("returns_str", lambda: (lambda m, x, y, g: "loss")),
            _seq("callable", lambda: _lossfn_ok, "ok"),
        )),
        "eval_every": A("pos_int", lambda: 1),
        "progress": A("flag", lambda: False, null=True),
        "device": A("device", lambda: None, null=True),
    }


def _mixed_loss_args(method: str) -> dict[str, A]:
    return {
        "model": A("model", model_),
        "x": A("x", x_),
        "y": _labels(),
        "method": A("choice", lambda: method),
        "alpha": A("pos_float", lambda: 1.0),
        "generator": A("generator", lambda: _g(0)),
        "loss": A("choice", lambda: "ce", null=True),
    }


_REG = {"names": ("pred",)}


def _flatness_args(center: bool = True, lone: str = "ok", num_classes: bool = False) -> dict[str, A]:
    """h and labels; ``lone`` is the expectation for a class with a single example (label C).

    With ``num_classes`` the baseline passes ``num_classes=C``, so label C is out of range: an error.
    Half precision is valid: measured in a wider dtype, returned in h's.
    """
    args = {
        "h": A("t", h_),
        "labels": _labels(hlabels_, ok=("C",) if lone == "ok" and not num_classes else ()),
    }
    if center:
        args["center"] = A("flag", lambda: False)
    if num_classes:
        args["num_classes"] = A("pos_int", lambda: C, null=True, extra=(
            _seq("too_small", lambda: C - 1, names=("labels",)),))
    return args


def _without_num_classes_lone_class(kw: dict) -> dict:
    """Without num_classes a label C is just one more class (with one example): valid."""
    return {**kw, "num_classes": None, "labels": set_first(kw["labels"], C)}


def _no_rows(kw: dict) -> dict:
    return {**kw, "h": kw["h"][:0], "labels": kw["labels"][:0]}


_EMPTY_ROWS = (("all_empty", _no_rows, "error"),)
_LONE = (("lone_class_without_num_classes", _without_num_classes_lone_class, "ok"), *_EMPTY_ROWS)


def _close(a: Any, b: Any) -> bool:
    return _same(a if isinstance(a, torch.Tensor) else torch.tensor(float(a)),
                 b if isinstance(b, torch.Tensor) else torch.tensor(float(b)))


def _accuracy_by_hand(value: Any, kw: dict) -> bool:
    with torch.no_grad():
        return _close(value, (kw["model"](kw["x"]).argmax(1) == kw["y"]).float().mean())


def _mixup_by_hand(value: Any, kw: dict) -> bool:
    lam, perm = kw["lam"], kw["perm"]
    return _same(value, (lam * kw["x"] + (1 - lam) * kw["x"][perm], lam * kw["y"] + (1 - lam) * kw["y"][perm]))


def _mix_by_hand(value: Any, kw: dict) -> bool:
    return _same(value, kw["lam"] * kw["t"] + (1 - kw["lam"]) * kw["t"][kw["perm"]])


def _mixed_ce_by_hand(value: Any, kw: dict) -> bool:
    ce = torch.nn.functional.cross_entropy
    lam = kw["lam"]
    return _close(value, lam * ce(kw["logits"], kw["y"]) + (1 - lam) * ce(kw["logits"], kw["y2"]))


def _bce_by_hand(value: Any, kw: dict) -> bool:
    return _close(value, nn.BCELoss()(torch.softmax(kw["logits"], 1), kw["target"]))


def _soft_ce_by_hand(value: Any, kw: dict) -> bool:
    return _close(value, -(kw["target"] * torch.log_softmax(kw["logits"], 1)).sum(1).mean())


def _squared_by_hand(value: Any, kw: dict) -> bool:
    lam = kw["lam"]
    residual = lam * kw["y"] + (1 - lam) * kw["y2"] - kw["pred"]
    return _close(value, 0.5 * residual.pow(2).sum(1).mean())


def _nll_by_hand(value: Any, kw: dict) -> bool:
    return _close(value, torch.nn.functional.cross_entropy(kw["logits"].double(), kw["labels"]))


def _one_hot_by_hand(value: Any, kw: dict) -> bool:
    return _same(value, torch.eye(kw["num_classes"])[kw["labels"]])


_COMPARE_METHODS = {"ERM": {"method": "erm"}, "mix": {"method": "input", "alpha": 1.0}}


def _unknown_epoch(kw: dict) -> dict:
    """A misspelt keyword (epoch for epochs), passed on through ``**kwargs``."""
    return {**kw, "epoch": 1}


_MISSPELT = (("unknown_argument_epoch", _unknown_epoch, "error"),)


def _chord_cases() -> tuple:
    """One pair given as 1-D tensors (a model that wants (B, D) cannot take it); a model of scalars can."""
    def one_pair(kw: dict) -> dict:
        return {**kw, "x": kw["x"][0], "x2": kw["x2"][0]}

    def scalar_inputs(kw: dict) -> dict:
        return {**kw, "model": lambda t: torch.stack([t, -t], 1), "x": kw["x"][:, 0], "x2": kw["x2"][:, 0]}

    def no_pairs(kw: dict) -> dict:
        return {**kw, "x": kw["x"][:0], "x2": kw["x2"][:0]}

    return (("one_pair_1d", one_pair, "error"), ("scalar_inputs_1d", scalar_inputs, "ok"),
            ("all_empty", no_pairs, "error"))


def ax_() -> Any:
    import matplotlib.pyplot as plt

    return plt.figure().add_subplot()


def _call_plot(fn: Callable, kw: dict) -> Any:
    import matplotlib.pyplot as plt

    try:
        return fn(**kw)
    finally:
        plt.close("all")


def _ax() -> A:
    return A("custom", ax_, extra=(_seq("str", lambda: "ax"), _seq("None", lambda: None)))


def _spectra() -> dict:
    return {"ERM": torch.tensor([3.0, 2.0, 1.0]), "mix": [2.0, 1.0]}


def _points2_() -> torch.Tensor:
    return torch.randn(B, 2, generator=_g(8))


def _labels2_() -> torch.Tensor:
    return torch.tensor([0, 1] * (B // 2))


SPECS: list[F] = [
    # mixing
    F("mixing.sample_lambda", {
        "alpha": A("pos_float", lambda: 1.0),
        "size": A("custom", lambda: None, null=True, extra=(
            _seq("int", lambda: 3, "ok"), _seq("tuple", lambda: (2, 3), "ok"), _seq("zero", lambda: 0, "ok"),
            _seq("minus1", lambda: -1), _seq("float", lambda: 1.5), _seq("str", lambda: "3"),
            _seq("bool", lambda: True), _seq("negative_in_tuple", lambda: (2, -1)),
            _seq("np_int64", lambda: np.int64(3), "ok"),
        )),
        "generator": A("generator", lambda: _g(0)),
    }),
    F("mixing.random_pairing", {"n": A("pos_int", lambda: B), "generator": A("generator", lambda: _g(0))}),
    F("mixing.mix", {"t": A("t", x_, pair=False, names=("perm",)), "lam": _lam(), "perm": A("perm", perm_)},
      check=_mix_by_hand),
    F("mixing.mixup", {
        "x": A("t", x_, names=("perm",)),
        "y": A("target", target_, ok=("negative", "1d", "wide")),
        "lam": _lam(),
        "perm": A("perm", perm_),
    }, check=_mixup_by_hand),
    F("mixing.one_hot", {
        "labels": _labels(pair=False, ok=("empty",)),
        "num_classes": A("pos_int", lambda: C, extra=(_seq("too_small", lambda: 2, names=("labels",)),)),
        "dtype": A("custom", lambda: torch.float32, extra=(
            _seq("float64", lambda: torch.float64, "ok"), _seq("int64", lambda: torch.int64),
            _seq("bool", lambda: torch.bool), _seq("str", lambda: "float32"), _seq("None", lambda: None),
        )),
    }, check=_one_hot_by_hand),
    F("mixing.soft_cross_entropy", {
        "logits": A("logits", logits_, names=("target",)),
        "target": A("target", target_, names=("logits",), extra=(
            _seq("rows_sum_2", lambda: torch.tensor([[1.0, 1.0, 0.0]] * B)),
            _seq("rows_sum_3", lambda: torch.ones(B, C)),
            _seq("one_row_sums_2", lambda: torch.cat([torch.tensor([[1.0, 1.0, 0.0]]), target_()[1:]])),
        )),
        "reduction": A("choice", lambda: "mean", extra=(_seq("none", lambda: "none", "ok"),)),
    }, check=_soft_ce_by_hand),
    F("mixing.bce_on_softmax", {
        "logits": A("logits", logits_, names=("target",)),
        "target": A("target", target_, names=("logits",)),
        "reduction": A("choice", lambda: "mean", extra=(_seq("sum", lambda: "sum", "ok"),)),
    }, check=_bce_by_hand),
    F("mixing.mixed_cross_entropy", {
        "logits": A("logits", logits_, names=("y", "y2")),
        "y": _labels(names=("logits", "y2")),
        "y2": _labels(y2_, names=("logits", "y")),
        "lam": _lam(),
        "reduction": A("choice", lambda: "mean", extra=(_seq("none", lambda: "none", "ok"),)),
    }, check=_mixed_ce_by_hand),
    F("mixing.mixed_squared_loss", {
        "pred": A("t", lambda: torch.randn(B, C, generator=_g(6)), names=("y", "y2")),
        "y": A("target", target_, ok=("negative", "float64"), **_REG),
        "y2": A("target", lambda: target_().flip(0), ok=("negative", "float64"), **_REG),
        "lam": _lam(),
        "reduction": A("choice", lambda: "mean"),
    }, check=_squared_by_hand, cases=(
        ("batch_of_one", lambda kw: {**kw, "pred": kw["pred"][:1], "y": kw["y"][:1], "y2": kw["y2"][:1]}, "ok"),
        ("batch_of_one_scalar_targets", lambda kw: {**kw, "pred": torch.randn(1, 1), "y": torch.randn(1),
                                                    "y2": torch.randn(1)}, "ok"),
        ("B1_pred_B_targets", lambda kw: {**kw, "pred": torch.randn(B, 1), "y": reg_(), "y2": reg_()}, "ok"),
        ("B_pred_B_targets", lambda kw: {**kw, "pred": torch.randn(B), "y": reg_(), "y2": reg_()}, "ok"),
        ("all_empty", lambda kw: {**kw, "pred": kw["pred"][:0], "y": kw["y"][:0], "y2": kw["y2"][:0]}, "error"),
    )),
    # manifold
    F("manifold.StagedNet", {
        "blocks": A("custom", lambda: [nn.Sequential(nn.Linear(D, 5), nn.ReLU())], extra=(
            _seq("str", lambda: "abc"), _seq("None", lambda: None), _seq("ints", lambda: [1, 2]),
            _seq("one_module", lambda: nn.Linear(D, 5)), _seq("empty", lambda: [], "ok"),
            _seq("sequential", lambda: nn.Sequential(nn.Linear(D, 5), nn.ReLU()), "ok"),
        )),
        "head": A("model", lambda: nn.Linear(5, C), extra=(_seq("int", lambda: 3),)),
        "eligible_layers": A("custom", lambda: None, null=True, extra=LAYER_SETS),
    }),
    F("manifold.mlp", {
        "in_dim": A("pos_int", lambda: D),
        "hidden": A("custom", lambda: [5], extra=(
            _seq("int", lambda: 5, "ok"), _seq("tuple", lambda: (5, 5), "ok"), _seq("empty", lambda: [], "ok"),
            _seq("zero_width", lambda: [5, 0]), _seq("negative_width", lambda: [5, -1]), _seq("str", lambda: "5"),
            _seq("float", lambda: 5.0), _seq("None", lambda: None), _seq("bool", lambda: [True]),
            _seq("float_width", lambda: [5.0]), _seq("np_int64", lambda: np.int64(5), "ok"),
        )),
        "out_dim": A("pos_int", lambda: C),
        "activation": A("choice", lambda: "relu", extra=(_seq("tanh", lambda: "tanh", "ok"),)),
        "eligible_layers": A("custom", lambda: None, null=True, extra=LAYER_SETS),
    }),
    F("manifold.StagedNet.forward_mixed", {
        "self": A("custom", model2_),
        "x": A("x", x_, pair=False, ok=("extra_dim",), names=("perm",)),
        "layer": A("custom", lambda: 1, extra=LAYER + (_seq("not_eligible", lambda: 2), _seq("None", lambda: None))),
        "lam": _lam(),
        "perm": A("perm", perm_),
    }),
    F("manifold.StagedNet.features", {
        "self": A("custom", model2_),
        "x": A("x", x_, pair=False, ok=("empty", "extra_dim")),
        "layer": A("custom", lambda: 1, null=True, extra=LAYER + (
            _seq("not_eligible", lambda: 2, "ok"), _seq("None", lambda: None, "ok"))),
    }),
    F("manifold.StagedNet.forward_from", {
        "self": A("custom", model2_),
        "h": A("x", lambda: torch.randn(B, 5), pair=False, ok=("empty", "extra_dim")),
        "layer": A("custom", lambda: 1, skip=("zero",), extra=LAYER + (
            _seq("not_eligible", lambda: 2, "ok"), _seq("None", lambda: None))),
    }),
    F("manifold.StagedNet.sample_layer", {"self": A("custom", model2_), "generator": A("generator", lambda: _g(0))}),
    F("manifold.mix_at", {
        "model": A("model", model_),
        "name": A("custom", lambda: "blocks.0", extra=(
            _seq("missing", lambda: "nope"), _seq("int", lambda: 3), _seq("None", lambda: None),
            _seq("output", lambda: "", "ok"),
        )),
        "lam": _lam(),
        "perm": A("perm", perm_),
    }, call=_call_with_model_forward),
    # gradients
    F("gradients.gradient_terms", {
        "features": A("model", lambda: nn.Sequential(nn.Linear(D, 5), nn.Tanh())),
        "head": A("model", lambda: nn.Linear(5, 1), extra=(
            _seq("two_outputs", lambda: nn.Linear(5, 2)), _seq("sequential", lambda: nn.Sequential(nn.Linear(5, 1))),
            _seq("wrong_width", lambda: nn.Linear(6, 1), names=("features",)),
        )),
        "x": A("x", x_, names=("x2", "features")),
        "x2": A("x", x2_, names=("x", "features")),
        "y": A("t", reg_, names=("y2",), ok=("float64",)),
        "y2": A("t", lambda: reg_().flip(0), names=("y",), ok=("float64",)),
        "lam": _lam(),
    }),
    F("gradients.four_terms", {
        "features": A("model", lambda: nn.Sequential(nn.Linear(D, 5), nn.Tanh())),
        "head_fn": A("model", lambda: nn.Linear(5, 1), names=("head",), extra=(
            _seq("two_outputs", lambda: nn.Linear(5, 2)), _seq("wrong_width", lambda: nn.Linear(6, 1)),
        )),
        "x": A("x", x_, names=("x2", "features"), only_labels=("float64", "wide", "nan", "inf", "mismatch")),
        "x2": A("x", x2_, names=("x", "features"), only_labels=("float64", "wide", "nan", "inf", "mismatch")),
        "y": A("t", reg_, names=("y2",), ok=("float64",), only_labels=("int64", "nan", "inf", "mismatch", "None")),
        "y2": A("t", lambda: reg_().flip(0), names=("y",), ok=("float64",),
                only_labels=("int64", "nan", "inf", "mismatch", "None")),
        "lam": _lam(),
    }),
    F("gradients.mixing_constant", {"alpha": A("pos_float", lambda: 1.0)}),
    F("gradients.expected_mmix_loss", {
        "residuals": A("t", reg_, pair=False, skip=("float16", "bfloat16")),
        "alpha": A("pos_float", lambda: 1.0),
        "batch_size": A("pos_int", lambda: None, null=True, extra=(_seq("too_big", lambda: B + 1),)),
    }),
    F("gradients.mmix_loss_monte_carlo", {
        "residuals": A("t", reg_, pair=False, skip=("float16", "bfloat16")),
        "alpha": A("pos_float", lambda: 1.0),
        "n_draws": A("pos_int", lambda: 5),
        "generator": A("generator", lambda: _g(0)),
        "batch_size": A("pos_int", lambda: None, null=True, extra=(_seq("too_big", lambda: B + 1),)),
    }),
    # flatness
    F("flatness.class_singular_values", _flatness_args(num_classes=True), cases=_LONE),
    F("flatness.flattening_summary", _flatness_args(num_classes=True), cases=_LONE),
    F("flatness.class_dimension", {
        **_flatness_args(center=False, lone="error"),
        "measure": A("choice", lambda: "participation_ratio"),
        "reduction": A("choice", lambda: "mean", extra=(_seq("none", lambda: "none", "ok"),)),
    }, cases=_EMPTY_ROWS),
    F("flatness.chord_outputs", {
        "model": A("model", model_, ok=("function",)),
        "x": A("x", x_, names=("x2",), ok=("float16", "bfloat16")),  # promoted to x2's dtype
        "x2": A("x", x2_, names=("x",), ok=("float16", "bfloat16")),
        "n_points": A("pos_int", lambda: 5, extra=(_seq("one", lambda: 1),)),
    }, cases=_chord_cases()),
    F("flatness.chord_nonlinearity", {
        "model": A("model", model_, ok=("function",)),
        "x": A("x", x_, names=("x2",), ok=("float16", "bfloat16")),  # promoted to x2's dtype
        "x2": A("x", x2_, names=("x",), ok=("float16", "bfloat16")),
        "n_points": A("pos_int", lambda: 5),
        "transform": A("custom", lambda: "softmax", null=True, extra=(
            _seq("bogus", lambda: "bogus"), _seq("int", lambda: 3), _seq("None", lambda: None, "ok"),
            _seq("callable", lambda: torch.tanh, "ok"),
        )),
        "reduction": A("choice", lambda: "mean"),
    }, cases=_chord_cases()),
    # metrics
    F("metrics.logits", {"model": A("model", model_), "x": A("x", x_, pair=False, ok=("empty",))}),
    F("metrics.probabilities", {"model": A("model", model_), "x": A("x", x_, pair=False, ok=("empty",))}),
    F("metrics.accuracy", {"model": A("model", model_), "x": A("x", x_, names=("y",)),
                           "y": _labels(names=("x",))}, check=_accuracy_by_hand),
    F("metrics.nll", {"logits": A("logits", logits_, names=("labels",)), "labels": _labels(names=("logits",))},
      check=_nll_by_hand),
    F("metrics.ece", {"probs": A("probs", probs_, names=("labels",)), "labels": _labels(names=("probs",)),
                      "n_bins": A("pos_int", lambda: 15)}),
    F("metrics.reliability", {"probs": A("probs", probs_, names=("labels",)), "labels": _labels(names=("probs",)),
                              "n_bins": A("pos_int", lambda: 10)}),
    F("metrics.classification_report", {
        "model": A("model", model_), "x": A("x", x_, names=("y",)), "y": _labels(names=("x",)),
        "n_bins": A("pos_int", lambda: 15),
    }),
    F("metrics.grid", {
        "x": A("x", lambda: torch.randn(B, 2, generator=_g(8)), pair=False, ok=("float64", "float16", "bfloat16")),
        "resolution": A("pos_int", lambda: 5),
        "margin": A("nonneg_float", lambda: 0.5),
    }),
    F("metrics.confidence_away_from_data", {
        "model": A("model", _two_d_model),
        "x_train": A("x", lambda: torch.randn(B, 2, generator=_g(8)), pair=False, names=("points",),
                     skip=("float64", "float16", "bfloat16")),
        "points": A("x", lambda: 10 * torch.randn(8, 2, generator=_g(9)), pair=False, names=("x_train",),
                    skip=("requires_grad",)),
        "min_distance": A("pos_float", lambda: 0.5),
        "threshold": A("fraction", lambda: 0.99),
    }),
    F("metrics.mean_confidence", {
        "logits": A("logits", logits_, pair=False, skip=("narrow", "float16"), ok=("empty",)),
        "temperature": A("pos_float", lambda: 1.0),
    }),
    F("metrics.temperature_for_confidence", {
        "logits": A("logits", logits_, pair=False, skip=("narrow", "float16")),
        "confidence": A("fraction", lambda: 0.6, extra=(_seq("below_chance", lambda: 0.2),)),
        "tol": A("pos_float", lambda: 1e-6),
    }),
    # data
    F("data.two_moons", {
        "n": A("pos_int", lambda: 16, extra=(_seq("too_small", lambda: 4),)),
        "noise": A("nonneg_float", lambda: 0.1),
        "test_size": A("fraction", lambda: 0.5, extra=TEST_SIZES),
        "seed": A("seed", lambda: 0, err=("2**32",)),
    }),
    F("data.spirals", {
        "n": A("pos_int", lambda: 16, extra=(_seq("too_small", lambda: 4, names=("num_classes",)),)),
        "turns": A("pos_float", lambda: 1.5),
        "noise": A("nonneg_float", lambda: 0.05),
        "num_classes": A("pos_int", lambda: 2, extra=(_seq("one", lambda: 1),)),
        "test_size": A("fraction", lambda: 0.5, extra=TEST_SIZES),
        "seed": A("seed", lambda: 0, err=("2**32",)),
    }),
    F("data.regression_1d", {
        "n": A("pos_int", lambda: 16),
        "noise": A("nonneg_float", lambda: 0.1),
        "test_size": A("fraction", lambda: 0.5, extra=(  # one test example is enough without classes
            _seq("tiny", lambda: 0.01, "ok"), _seq("huge", lambda: 0.99), _seq("largest", lambda: 15 / 16, "ok"))),
        "seed": A("seed", lambda: 0, err=("2**32",)),
    }),
    F("data.digits", {  # loading the images takes ~0.1 s: a few mutations only
        "test_size": A("fraction", lambda: 0.3, only_labels=("zero", "one", "nan", "str", "np_float32"), extra=(
            _seq("tiny", lambda: 0.001), _seq("huge", lambda: 0.999))),
        "seed": A("seed", lambda: 0, err=("2**32",), only_labels=("minus1", "2**32", "2**64", "np_int64", "str")),
        "per_class": A("pos_int", lambda: None, null=True, extra=(_seq("too_many", lambda: 1000),)),
    }),
    F("data.Split", {
        "x_train": A("x", x_, names=("y_train", "x_test")),
        "y_train": _labels(names=("x_train",)),
        "x_test": A("x", x2_, names=("y_test", "x_train")),
        "y_test": _labels(y2_, names=("x_test",)),
        "num_classes": A("pos_int", lambda: C, extra=(_seq("too_few", lambda: 2, names=("y_train", "y_test")),)),
    }),
    F("data.corrupt_labels", {
        "split": A("custom", split_, extra=(
            _seq("str", lambda: "digits"), _seq("None", lambda: None), _seq("dict", lambda: {"x_train": 1}),
            _seq("regression", regression_split_),
        )),
        "fraction": A("fraction0", lambda: 0.25),
        "seed": A("seed", lambda: 0, err=("2**32",)),
    }),
    # batches only reorders: it reads no values (no scan for NaN or for labels out of range), but
    # the features must be floating point and the targets int64 class labels (B,) or float
    # regression targets (B,) (the two kinds of Split.y_train).
    F("data.batches", {
        "x": A("t", x_, names=("y",), ok=("nan", "inf", "minus_inf"), skip=("meta",)),
        "y": _labels(names=("x",), ok=("float", "minus1", "C", "minus100"), skip=("meta",), extra=(
            _seq("regression", reg_, "ok"), _seq("regression_B1", lambda: reg_()[:, None], "ok"),
            _seq("soft_targets", target_), _seq("complex", lambda: y_().to(torch.complex64)),
        )),
        "batch_size": A("pos_int", lambda: 4),
        "generator": A("generator", lambda: _g(0)),
    }, call=_call_list),
    # train
    F("train.fit", _fit_args("erm"), label="train.fit[erm]", guard="model", cases=_MISSPELT,
      only=tuple(a for a in _fit_args("erm") if a != "alpha")),  # alpha is documented as ignored for ERM
    F("train.fit", _fit_args("input"), label="train.fit[input]", guard="model",
      only=("x", "y", "alpha", "loss", "label_smoothing", "layers", "block_grad", "seed", "x_test", "y_test")),
    F("train.fit", _fit_args("manifold"), label="train.fit[manifold]", guard="model",
      only=("model", "x", "y", "alpha", "loss", "layers", "block_grad", "terms", "seed")),
    F("train.fit", {**_fit_args("input"), "y": A("t", lambda: reg_(), ok=("float64",), skip=("float16", "bfloat16")),
                    "model": A("model", lambda: mlp(D, [5], 1)), "loss": A("choice", lambda: "mse", null=True),
                    "x_test": A("custom", lambda: None), "y_test": A("custom", lambda: None)},
      label="train.fit[regression]", guard="model", only=("y", "loss", "model")),
    F("train.evaluate", {"model": A("model", model_), "x": A("x", x_, names=("y",)), "y": _labels(names=("x",))},
      check=_accuracy_by_hand),
    F("train.mixed_loss", _mixed_loss_args("input"), label="train.mixed_loss[input]"),
    F("train.mixed_loss", _mixed_loss_args("manifold"), label="train.mixed_loss[manifold]",
      only=("x", "y", "generator")),
    # ensemble
    F("ensemble.fit_ensemble", {
        "models": A("custom", _two_models, extra=(
            _seq("empty", lambda: []), _seq("str", lambda: "abc"), _seq("None", lambda: None),
            _seq("same_twice", lambda: [model_()] * 2), _seq("one_linear", lambda: [model_(), nn.Linear(D, C)]),
            _seq("different_widths", lambda: [model_(), mlp(D, [6], C)]), _seq("single_model", model_),
            _seq("tuple", lambda: tuple(_two_models()), "ok"),
        )),
        "x": A("x", x_),
        "y": _labels(),
        "seeds": A("custom", lambda: [0, 1], extra=(
            _seq("short", lambda: [0]), _seq("minus1", lambda: [0, -1]), _seq("2**64", lambda: [0, 2**64]),
            _seq("bool", lambda: [0, True]), _seq("str", lambda: "01"), _seq("None", lambda: None),
            _seq("float", lambda: [0, 1.5]), _seq("tuple", lambda: (0, 1), "ok"), _seq("range", lambda: range(2), "ok"),
            _seq("numpy", lambda: np.array([0, 1]), "ok"), _seq("repeated", lambda: [3, 3], "ok"),
        )),
        "method": A("choice", lambda: "input", via="train.fit"),
        "alpha": A("pos_float", lambda: 1.0, via="train.fit"),
        "epochs": A("pos_int", lambda: 1, via="train.fit"),
        "batch_size": A("pos_int", lambda: 4, via="train.fit"),
        "progress": A("flag", lambda: False, null=True, via="train.fit"),
        "x_test": A("x", x2_, names=("y_test",), via="train.fit"),
        "y_test": _labels(y2_, names=("x_test",), via="train.fit"),
    }, guard="models", cases=_MISSPELT),
    # experiments
    F("stats.summarize", {"values": A("custom", lambda: [0.5, 0.6, 0.7], extra=VALUES + (
        _seq("one_value", lambda: [0.5], "ok"),))}),
    F("stats.paired_difference", {
        "values": A("custom", lambda: [0.5, 0.6, 0.7], extra=VALUES + (
            _seq("short", lambda: [0.5, 0.6], names=("baseline",)),)),
        "baseline": A("custom", lambda: [0.4, 0.6, 0.9], extra=VALUES),
    }),
    F("experiments.compare_methods", {
        "build": A("custom", lambda: _two_d_model, extra=(
            _seq("str", lambda: "mlp"), _seq("model", _two_d_model), _seq("returns_str", lambda: (lambda: "m")),
            _seq("wrong_input_width", lambda: (lambda: mlp(3, [4], 2)), names=("x", "data", "model")),
            _seq("not_stackable", lambda: (lambda: nn.Linear(2, 2)), "ok"),
        )),
        "data": A("custom", split_, extra=(
            _seq("str", lambda: "digits"), _seq("None", lambda: None), _seq("dict", lambda: {"x_train": 1}),
            _seq("regression", regression_split_, names=("y", "data", "model")),
        )),
        "seeds": A("custom", lambda: (0, 1), extra=(
            _seq("empty", lambda: []), _seq("minus1", lambda: [-1]), _seq("2**64", lambda: [2**64]),
            _seq("str_items", lambda: ["a"]), _seq("repeated", lambda: [0, 0]), _seq("str", lambda: "01"),
            _seq("None", lambda: None), _seq("int", lambda: 5), _seq("float", lambda: [1.5]),
            _seq("bool", lambda: [True]), _seq("numpy", lambda: np.array([0, 1]), "ok"),
        )),
        "methods": A("custom", lambda: dict(_COMPARE_METHODS), extra=(
            _seq("empty", lambda: {}), _seq("bogus_method", lambda: {"a": {"method": "bogus"}}),
            _seq("sets_seed", lambda: {"a": {"method": "erm", "seed": 1}}), _seq("str", lambda: "erm"),
            _seq("negative_alpha", lambda: {"a": {"method": "input", "alpha": -1.0}}, names=("alpha",)),
            _seq("unknown_option", lambda: {"a": {"method": "erm", "epoch": 3}}, names=("epoch",)),
            _seq("int_name", lambda: {1: {"method": "erm"}}),
        )),
        "measure": A("custom", lambda: None, null=True, extra=(
            _seq("str", lambda: "acc"), _seq("returns_number", lambda: (lambda m, d: 3.0)),
            _seq("returns_str_value", lambda: (lambda m, d: {"w": "a"})),
            _seq("reserved_key", lambda: (lambda m, d: {"seed": 1.0})),
            _seq("callable", lambda: _measure_ok, "ok"),
        )),
        "keep_models": A("flag", lambda: True),
        "device": A("device", lambda: None, null=True, skip=("cuda",)),
        "vectorize": A("flag", lambda: True),
        "epochs": A("pos_int", lambda: 1, via="train.fit", skip=("np_int64",)),
        "batch_size": A("pos_int", lambda: 4, via="train.fit", skip=("np_int64",)),
    }, cases=_MISSPELT),
    F("experiments.Comparison.paired", {
        "self": A("custom", comparison_),
        "baseline": A("choice", lambda: "ERM"),
        "metric": A("choice", lambda: "test_accuracy"),
    }),
    F("experiments.Comparison.paired_table", {
        "self": A("custom", comparison_),
        "baseline": A("choice", lambda: "ERM"),
        "metrics": A("custom", lambda: None, null=True, extra=(
            _seq("str", lambda: "test_accuracy"), _seq("bogus", lambda: ["bogus"]), _seq("int", lambda: 3),
            _seq("list", lambda: ["test_nll"], "ok"), _seq("empty", lambda: []),
        )),
        "digits": A("custom", lambda: 3, extra=(
            _seq("minus1", lambda: -1), _seq("float", lambda: 1.5), _seq("str", lambda: "3"),
            _seq("None", lambda: None), _seq("bool", lambda: True), _seq("zero", lambda: 0, "ok"),
        )),
    }),
    F("experiments.Comparison.values", {
        "self": A("custom", comparison_),
        "method": A("choice", lambda: "ERM"),
        "metric": A("choice", lambda: "test_accuracy"),
    }),
    F("experiments.Comparison.table", {
        "self": A("custom", comparison_),
        "metrics": A("custom", lambda: None, null=True, extra=(
            _seq("str", lambda: "test_accuracy"), _seq("bogus", lambda: ["bogus"]), _seq("int", lambda: 3),
            _seq("list", lambda: ["test_nll"], "ok"), _seq("empty", lambda: []),
        )),
        "labels": A("custom", lambda: None, null=True, extra=(
            _seq("mapping", lambda: {"test_nll": "NLL"}, "ok"), _seq("str", lambda: "NLL"), _seq("int", lambda: 3),
        )),
        "digits": A("custom", lambda: 3, extra=(
            _seq("minus1", lambda: -1), _seq("float", lambda: 1.5), _seq("str", lambda: "3"),
            _seq("None", lambda: None), _seq("bool", lambda: True), _seq("zero", lambda: 0, "ok"),
        )),
        "spread": A("choice", lambda: "std", extra=(_seq("ci95", lambda: "ci95", "ok"),)),
    }),
    F("experiments.temperature_control", {
        "comparison": A("custom", lambda: _trained_comparison(), extra=(
            _seq("str", lambda: "ERM"), _seq("None", lambda: None),
            _seq("without_models", lambda: comparison_(), names=("keep_models", "model")),
        )),
        "data": A("custom", split_, extra=(
            _seq("str", lambda: "digits"), _seq("None", lambda: None), _seq("regression", regression_split_),
        )),
        "method": A("choice", lambda: "ERM", names=("method", "comparison")),
        "match": A("choice", lambda: "mix", names=("match", "comparison")),
        "name": A("custom", lambda: None, null=True, extra=(
            _seq("str", lambda: "scaled", "ok"), _seq("int", lambda: 3), _seq("taken", lambda: "mix"),
        )),
    }),
    F("stats.Stat.format", {
        "self": A("custom", stat_),
        "digits": A("custom", lambda: 3, extra=(
            _seq("minus1", lambda: -1), _seq("float", lambda: 1.5), _seq("str", lambda: "3"),
            _seq("None", lambda: None), _seq("bool", lambda: True), _seq("zero", lambda: 0, "ok"),
        )),
        "spread": A("choice", lambda: "std", extra=(_seq("ci95", lambda: "ci95", "ok"),)),
    }),
    # seeding
    F("seeding.seed_everything", {"seed": A("seed", lambda: 0)}),
    F("seeding.make_generator", {"seed": A("seed", lambda: 0)}),
    # expansion_limits and the subspace measurements of flatness
    F("expansion_limits.commuting_gap", {
        "head": A("model", lambda: nn.Linear(5, C), ok=("function",)),
        "u": A("t", lambda: torch.randn(B, 5), names=("v",), err=("float16", "bfloat16", "float64")),
        "v": A("t", lambda: torch.randn(B, 5), names=("u",), err=("float16", "bfloat16", "float64")),
        "lam": _lam(),
    }),
    F("flatness.directions_for_energy", {**_flatness_args(center=False, num_classes=True),
                                         "energy": A("fraction", lambda: 0.9)}, cases=_LONE),
    F("flatness.class_subspaces", {**_flatness_args(center=False, num_classes=True),
                                   "energy": A("fraction", lambda: 0.99)}, cases=_LONE),
    F("flatness.share_outside", {
        "points": A("t", lambda: torch.randn(B, 5), pair=False, skip=("float16", "bfloat16"), ok=("empty",)),
        "mean": A("t", lambda: torch.zeros(5), pair=False, skip=("float16", "bfloat16")),
        "basis": A("t", lambda: torch.eye(5)[:, :2].clone(), pair=False, skip=("float16", "bfloat16")),
    }),
    F("flatness.nearest_distance", {
        "points": A("t", lambda: torch.randn(B, 5), pair=False, skip=("float16", "bfloat16"), ok=("empty",)),
        "reference": A("t", lambda: torch.randn(8, 5), pair=False, skip=("float16", "bfloat16")),
        "allowed": A("custom", lambda: None, null=True, extra=(
            _seq("mask", lambda: torch.ones(B, 8, dtype=torch.bool), "ok"),
            _seq("float_mask", lambda: torch.ones(B, 8)),
            _seq("wrong_shape", lambda: torch.ones(B, 7, dtype=torch.bool)), _seq("str", lambda: "all"),
        )),
    }),
    # plot: tensors in, as everywhere else (a list or an array is refused, not converted); what is
    # drawn only may be any floating dtype, what goes through the model must have its dtype
    F("plot.decision_boundary", {
        "ax": _ax(),
        "model": A("model", _two_d_model),
        "x": A("x", _points2_, names=("y",), skip=("requires_grad",), ok=("float16", "bfloat16", "float64")),
        "y": _labels(_labels2_, names=("x",), extra=(_seq("three_classes", lambda: y_(), names=("model",)),)),
        "resolution": A("pos_int", lambda: 10),
        "margin": A("nonneg_float", lambda: 0.5),
        "colorbar": A("flag", lambda: True),
    }, call=_call_plot),
    F("plot.representation_scatter", {
        "ax": _ax(),
        "h": A("t", _points2_, names=("y",), extra=(_seq("three_columns", lambda: torch.randn(B, 3)),)),
        "y": _labels(_labels2_, names=("h",), ok=("C",)),
    }, call=_call_plot),
    F("plot.singular_value_spectra", {
        "ax": _ax(),
        "spectra": A("custom", _spectra, extra=(
            _seq("list", lambda: list(_spectra().values())), _seq("tensor", lambda: torch.tensor([3.0, 2.0])),
            _seq("str", lambda: "ERM"), _seq("None", lambda: None), _seq("empty", lambda: {}),
            _seq("values_nan", lambda: {"ERM": [1.0, math.nan]}), _seq("values_str", lambda: {"ERM": "abc"}),
            _seq("values_2d", lambda: {"ERM": torch.ones(2, 2)}), _seq("values_empty", lambda: {"ERM": []}),
            _seq("values_float16", lambda: {"ERM": torch.tensor([3.0, 2.0]).half()}, "ok"),
            _seq("values_bfloat16", lambda: {"ERM": torch.tensor([3.0, 2.0]).bfloat16()}, "ok"),
            _seq("values_numpy", lambda: {"ERM": np.array([3.0, 2.0])}, "ok"),
        )),
        "top": A("pos_int", lambda: 20),
    }, call=_call_plot),
]


# ----------------------------------------------------------------------------------------------
# Generating the cases.


def _mutations(spec: F, arg: str, a: A) -> list[M]:
    out: dict[str, M] = {}
    for m in KINDS[a.kind] + list(a.extra):
        if m.label in a.skip or (m.label == "mismatch" and not a.pair):
            continue
        if a.only_labels is not None and m.label not in a.only_labels and m not in a.extra:
            continue
        expect = m.expect
        if m.label in a.ok or (m.label == "None" and a.null):
            expect = "ok"
        elif m.label in a.err:
            expect = "error"
        out[m.label] = M(m.label, m.make, expect, m.names, m.same)
    return list(out.values())


def cases(specs: list[F] | None = None) -> list[Case]:
    """Every case of the table: a baseline per function, then each mutation of each argument."""
    result = []
    for spec in specs if specs is not None else SPECS:
        def baseline(spec: F = spec) -> dict:
            return {name: a.base() for name, a in spec.args.items()}

        result.append(Case(spec, "-", "baseline", "ok", baseline, ()))
        for label, change, expect in spec.cases:
            result.append(Case(spec, "-", label, expect, lambda b=baseline, c=change: c(b()), tuple(spec.args)))
        paired = tuple(name for name, a in spec.args.items() if a.pair and a.kind in KINDS and name != "self")
        for arg, a in spec.args.items():
            if spec.only is not None and arg not in spec.only:
                continue
            for m in _mutations(spec, arg, a):
                names = (arg, *a.names, *m.names) + (paired if m.label in ("mismatch", "empty") else ())

                def kwargs(b=baseline, arg=arg, m=m) -> dict:
                    kw = b()
                    kw[arg] = m.make(kw[arg], kw)
                    return kw

                same = None
                if m.same is not None:
                    def same(b=baseline, arg=arg, m=m) -> dict:
                        kw = b()
                        kw[arg] = m.same(kw[arg], kw)
                        return kw

                result.append(Case(spec, arg, m.label, m.expect, kwargs, names, same))
    return result


# ----------------------------------------------------------------------------------------------
# Running and classifying.


class _Timeout(BaseException):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


_LIBRARY_DIRS = (f"{os.sep}torch{os.sep}", f"{os.sep}numpy{os.sep}", f"{os.sep}sklearn{os.sep}",
                 f"{os.sep}scipy{os.sep}")


def _raised_in(exc: BaseException) -> str:
    tb = exc.__traceback__
    filename = "?"
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return filename


# Errors raised by torch's C++ argument parser and kernels have no Python frame of their own, so
# they look as if mixlib raised them; their wording gives them away.
_FROM_TORCH = re.compile(
    r"[\w.]+\(\) received an invalid combination of arguments|[\w.]+\(\): argument '|mat1 and mat2 "
    r"|Tensor\.item\(\)|\"\w+\" not implemented for|expected scalar type|Overflow when unpacking"
)


def _in_mixlib(filename: str) -> bool:
    return f"{os.sep}mixlib{os.sep}" in filename and not any(d in filename for d in _LIBRARY_DIRS)


def _names(message: str, names: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", message) for n in names)


def _resolve(spec: F) -> tuple[Callable, inspect.Signature | None]:
    fn = lib(spec.target)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None
    return fn, signature


def _accepts(signature: inspect.Signature | None, name: str) -> bool:
    if signature is None:
        return True
    params = signature.parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _invoke(spec: F, fn: Callable, kw: dict) -> Any:
    if "self" in kw:
        obj = kw.pop("self")
        return getattr(obj, fn.__name__)(**kw)
    if spec.call is not None:
        return spec.call(fn, kw)
    return fn(**kw)


def _weights(value: Any) -> list[torch.Tensor] | None:
    models = value if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(m, nn.Module) for m in models):
        return None
    return [p.detach().clone() for m in models for p in m.parameters()]


def _unchanged(before: torch.Tensor, after: torch.Tensor) -> bool:
    """A weight that moved device (to meta, say: its values are gone) counts as changed."""
    return before.device == after.device and not after.is_meta and torch.equal(before, after)


def _same(a: Any, b: Any) -> bool:
    """Whether two results agree (tensors to float tolerance, NaN equal to NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
            return False
        if a.is_floating_point() or b.is_floating_point():
            return torch.allclose(a.double(), b.double(), atol=1e-6, rtol=1e-5, equal_nan=True)
        return torch.equal(a, b)
    if isinstance(a, float) or isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    if isinstance(a, nn.Module):
        return isinstance(b, nn.Module) and _same(list(a.state_dict().values()), list(b.state_dict().values()))
    if isinstance(a, torch.Generator):
        return isinstance(b, torch.Generator) and torch.equal(a.get_state(), b.get_state())
    return a == b


def _call(spec: F, fn: Callable, kw: dict) -> Any:
    torch.manual_seed(0)
    return _invoke(spec, fn, kw)


def run_case(case: Case) -> Result:
    spec = case.func

    def result(outcome: str, detail: str = "") -> Result:
        return Result(case.id, spec.name, case.arg, case.label, case.expect, outcome, detail)

    try:
        fn, signature = _resolve(spec)
    except NotApplicable as why:
        return result("n/a", str(why))
    if case.arg != "-":
        via = spec.args[case.arg].via
        try:
            if via is not None and not _accepts(_resolve(F(via, {}))[1], case.arg):
                return result("n/a", f"{via} has no argument {case.arg}")
        except NotApplicable as why:
            return result("n/a", str(why))
        if not _accepts(signature, case.arg):
            return result("n/a", f"{spec.target} has no argument {case.arg}")

    def build(factory: Callable[[], dict]) -> dict:
        kw = factory()
        for name in list(kw):
            a = spec.args.get(name)
            missing = not _accepts(signature, name)
            if not missing and a is not None and a.via is not None:
                missing = not _accepts(_resolve(F(a.via, {}))[1], name)
            if missing and name != case.arg:
                del kw[name]  # an argument the library under test does not have: leave it at its default
        return kw

    torch.manual_seed(0)
    try:
        kw = build(case.kwargs)
        inputs = build(case.kwargs) if spec.check is not None and case.label == "baseline" else None
    except Exception as exc:  # a mistake in the table, not in the library
        return result("harness", f"building the arguments failed: {type(exc).__name__}: {exc}")
    before = _weights(kw.get(spec.guard)) if spec.guard else None
    old = signal.signal(signal.SIGPROF, _alarm)
    signal.setitimer(signal.ITIMER_PROF, TIME_LIMIT_S)
    try:
        value = _call(spec, fn, kw)
        if case.expect == "ok" and case.same is not None:
            reference = _call(spec, fn, build(case.same))
            if not _same(value, reference):
                return result("wrong", "differs from the equivalent input's result")
        if inputs is not None and not spec.check(value, inputs):
            return result("wrong", "differs from the value computed by hand")
    except _Timeout:
        return result("hang", f"ran past {TIME_LIMIT_S} s of CPU time")
    except Exception as exc:
        where = _raised_in(exc)
        detail = f"{type(exc).__name__}: {str(exc)[:300]} [{os.path.basename(where)}]"
        if case.expect == "ok":
            return result("false_alarm", detail)
        if not isinstance(exc, (TypeError, ValueError)) or not _in_mixlib(where) or _FROM_TORCH.match(str(exc)):
            return result("deep", detail)
        if before is not None:
            after = _weights(kw.get(spec.guard))
            if after is not None and not all(_unchanged(p, q) for p, q in zip(before, after, strict=True)):
                return result("late", detail)
        if not _names(str(exc), case.names):
            return result("vague", detail)
        return result("clear", detail)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)
    if case.expect == "error":
        return result("silent", f"returned {type(value).__name__}")
    return result("ok")


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def counts(self) -> Counter:
        return Counter(r.outcome for r in self.results)

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if r.outcome in FAIL]

    def by_function(self) -> dict[str, Counter]:
        table: dict[str, Counter] = defaultdict(Counter)
        for r in self.results:
            table[r.func][r.outcome] += 1
        return dict(table)


def run(only: str | None = None) -> Report:
    """Run every case (or those of the functions whose name contains ``only``) and classify them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    state = torch.random.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    report = Report()
    importlib.import_module("torch._dynamo")  # imported lazily by the optimisers: not under the time limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            specs = [s for s in SPECS if only is None or only in s.name]
            for case in cases(specs):
                report.results.append(run_case(case))
    finally:
        torch.set_num_threads(threads)
        torch.random.set_rng_state(state)
        torch.use_deterministic_algorithms(deterministic)
    return report


def format_report(report: Report, verbose: bool = False) -> str:
    counts = report.counts
    lines = [f"{len(report.results)} cases: " + ", ".join(f"{k} {counts[k]}" for k in OUTCOMES if counts[k])]
    shown = [k for k in OUTCOMES if counts[k]]
    width = max(len(f) for f in report.by_function())
    lines.append("function".ljust(width) + "".join(f" {k:>11}" for k in shown))
    for func, c in report.by_function().items():
        lines.append(func.ljust(width) + "".join(f" {c[k] if c[k] else '.':>11}" for k in shown))
    if verbose:
        lines.append("")
        for r in report.failures:
            lines.append(f"{r.outcome:>11}  {r.id}  (expect {r.expect})  {r.detail}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    only = argv[argv.index("-k") + 1] if "-k" in argv else None
    import mixlib

    print(f"mixlib from {os.path.dirname(mixlib.__file__)}")
    report = run(only)
    print(format_report(report, verbose))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
