r"""The gradient of the manifold-mixup squared loss, split into four terms.

Take a feature extractor :math:`F` (any network, parameters :math:`\theta`), an affine head
:math:`G(z) = w^\top z + b` with one output, and the loss to minimise

.. math::

    \ell = \tfrac12 \big(\lambda y + (1-\lambda) y' - G(\lambda F(x) + (1-\lambda) F(x'))\big)^2 .

Because :math:`G` is affine and the weights sum to one, :math:`G` commutes with the mixing, so
the residual of the mix is the mix of the residuals :math:`e = y - G(F(x))` and
:math:`e' = y' - G(F(x'))`. With :math:`g(x) = \partial G(F(x)) / \partial\theta`,

.. math::

    \nabla_\theta \ell = -(\lambda e + (1-\lambda) e')\,(\lambda g(x) + (1-\lambda) g(x')),

four terms: two *ordinary* ones, :math:`-\lambda^2 e\, g(x)` and :math:`-(1-\lambda)^2 e' g(x')`,
which are ERM gradients, and two *cross* ones, :math:`-\lambda(1-\lambda) e' g(x)` and
:math:`-\lambda(1-\lambda) e\, g(x')`, in which the direction for one example is scaled by the
error on its partner. All four vanish once the original pairs are fit (:math:`e = e' = 0`).

Averaged over :math:`\lambda \sim \mathrm{Beta}(\alpha, \alpha)` and a random pairing, the loss
itself is a rescaled ERM loss plus a penalty on the batch's mean residual
(:func:`expected_mmix_loss`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

from mixlib._checks import (
    check_affine_head,
    check_batch_size,
    check_callable,
    check_lam_shape,
    check_model_input,
    check_module,
    check_one_per_example,
    check_positive,
    check_positive_int,
    check_residuals,
    check_same_batch,
    check_tensor,
)
from mixlib.mixing import Lam, random_pairing, sample_lambda

__all__ = [
    "FOUR_TERM_KEYS",
    "gradient_terms",
    "four_terms",
    "mixing_constant",
    "expected_mmix_loss",
    "mmix_loss_monte_carlo",
]

# The keys of the four terms in the mapping that gradient_terms returns (beside "autograd").
FOUR_TERM_KEYS = ("ordinary_x", "ordinary_x2", "cross_x", "cross_x2")


def gradient_terms(
    features: nn.Module,
    head: nn.Linear,
    x: torch.Tensor,
    x2: torch.Tensor,
    y: torch.Tensor,
    y2: torch.Tensor,
    lam: Lam,
) -> dict[str, torch.Tensor]:
    r"""The four terms of the manifold-mixup gradient with respect to the parameters of ``features``.

    The loss is ``1/2 (lam y + (1-lam) y2 - head(lam features(x) + (1-lam) features(x2)))^2``, summed
    over the batch and minimised. With residuals ``e = y - head(features(x))``,
    ``e2 = y2 - head(features(x2))`` and ``g(x)`` the gradient of ``head(features(x))`` with respect
    to the parameters of ``features``, the four terms, each summed over the batch, are

    - ``"ordinary_x"`` = ``-lam^2 e g(x)``,
    - ``"ordinary_x2"`` = ``-(1-lam)^2 e2 g(x2)``,
    - ``"cross_x"`` = ``-lam (1-lam) e2 g(x)``: direction ``g(x)``, scaled by the partner's residual,
    - ``"cross_x2"`` = ``-lam (1-lam) e g(x2)``,

    and ``"autograd"`` is the gradient of the loss computed by autograd through the mixed
    forward pass, independently of the terms. The four terms add up to it.

    Each term is a weighted sum of the per-example gradients ``g(x_i)``, which is a single
    vector-Jacobian product of the batch's outputs with the weights as cotangent: no per-example
    gradients are formed, and the cost is a few backward passes, not B of them.

    Args:
        features: The feature extractor F, any module mapping a batch to shape ``(B, d)``. It is
            run once on ``x`` and once on ``x2``, so it should treat examples independently and
            deterministically (call ``features.eval()`` if it has batch norm or dropout).
        head: The affine head G, an ``nn.Linear(d, 1)``. It is held fixed: the gradients are with
            respect to the parameters of ``features`` only.
        x: The examples, shape ``(B, ...)``.
        x2: Their partners, shape ``(B, ...)``.
        y: Targets of ``x``, shape ``(B,)`` or ``(B, 1)``.
        y2: Targets of ``x2``, same shape.
        lam: Mixing weight in [0, 1]: a number or a tensor of shape ``(B,)``.

    Returns:
        A dict with keys ``"ordinary_x"``, ``"ordinary_x2"``, ``"cross_x"``, ``"cross_x2"`` and
        ``"autograd"``, each a flat vector over the parameters of ``features``, concatenated in the
        order of ``features.parameters()``. The ``.grad`` fields of the parameters are untouched.

    Raises:
        TypeError: If ``head`` is not an ``nn.Linear`` or a tensor is not floating point.
        ValueError: If ``head`` has more than one output, on mismatched batch sizes, bad shapes,
            ``lam`` outside [0, 1] or NaN.
    """
    check_module("features", features)
    check_affine_head(head)

    def G(z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != head.in_features:
            raise ValueError(
                f"features must map a batch to shape (B, {head.in_features}) to feed head, got {tuple(z.shape)}"
            )
        return head(z).squeeze(-1)

    return four_terms(features, G, x, x2, y, y2, lam)


def four_terms(
    features: nn.Module,
    head_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    x2: torch.Tensor,
    y: torch.Tensor,
    y2: torch.Tensor,
    lam: Lam,
) -> dict[str, torch.Tensor]:
    """The four terms by the affine-head formula, and the autograd gradient, for any head function.

    The computation behind :func:`gradient_terms` (where ``head_fn`` is an affine map, so the
    terms add up to ``"autograd"``) and :func:`mixlib.expansion_limits.linearised_gradient_terms`
    (where it may be nonlinear, so they need not). ``head_fn`` maps features of shape ``(B, d)``
    to ``(B,)`` or ``(B, 1)`` outputs and is held fixed. Arguments and result as in
    :func:`gradient_terms`.
    """
    check_module("features", features)
    check_callable("head_fn", head_fn)
    x, x2 = check_tensor("x", x, min_dim=1), check_tensor("x2", x2, min_dim=1)
    y, y2 = check_tensor("y", y, min_dim=1), check_tensor("y2", y2, min_dim=1)
    batch = check_same_batch(x=x, x2=x2, y=y, y2=y2)
    check_model_input("x", x, features)
    check_model_input("x2", x2, features)
    y, y2 = check_one_per_example("y", y, batch), check_one_per_example("y2", y2, batch)
    lam = check_lam_shape(lam, batch)
    if isinstance(lam, torch.Tensor):  # drawn on the CPU, perhaps; the data may be elsewhere
        lam = lam.to(y.device, y.dtype)

    # Detached copies of the parameters, so that gradients are taken without touching .grad.
    theta = {name: p.detach().requires_grad_(True) for name, p in features.named_parameters()}
    params = list(theta.values())  # in the order of features.parameters()
    if not theta:
        raise ValueError("features has no parameters to differentiate")

    def F(inputs: torch.Tensor) -> torch.Tensor:
        return functional_call(features, theta, (inputs,))

    def G(z: torch.Tensor) -> torch.Tensor:
        try:
            out = head_fn(z)
        except RuntimeError as problem:
            raise ValueError(f"head_fn cannot be applied to features of shape {tuple(z.shape)}: {problem}") from None
        if out.shape not in ((batch,), (batch, 1)):
            raise ValueError(f"head must return one output per example, got shape {tuple(out.shape)}")
        return out.reshape(batch)

    try:
        z, z2 = F(x), F(x2)
    except RuntimeError as problem:  # a shape that does not fit the network: say which input
        raise ValueError(f"features cannot be applied to x of shape {tuple(x.shape)} and x2 of shape "
                         f"{tuple(x2.shape)}: {problem}") from None
    lam_z = lam.unsqueeze(-1) if isinstance(lam, torch.Tensor) else lam

    def flat_grad(output: torch.Tensor, cotangent: torch.Tensor | None = None) -> torch.Tensor:
        """The vector-Jacobian product cotangent^T d(output)/d(theta), flattened."""
        # materialize_grads: a parameter that does not influence the output gets zeros, not None.
        grads = torch.autograd.grad(output, params, cotangent, retain_graph=True, materialize_grads=True)
        return torch.cat([g.reshape(-1) for g in grads])

    # The reference: autograd through the mixed forward pass.
    mixed_residual = lam * y + (1 - lam) * y2 - G(lam_z * z + (1 - lam_z) * z2)
    loss = 0.5 * mixed_residual.pow(2).sum()
    result = {"autograd": flat_grad(loss)}

    # The terms: sum_i w_i g(x_i) is the vector-Jacobian product of the outputs G(F(x)) with cotangent w.
    out, out2 = G(z), G(z2)
    e, e2 = (y - out).detach(), (y2 - out2).detach()
    result["ordinary_x"] = flat_grad(out, -lam**2 * e)
    result["cross_x"] = flat_grad(out, -lam * (1 - lam) * e2)
    result["ordinary_x2"] = flat_grad(out2, -((1 - lam) ** 2) * e2)
    result["cross_x2"] = flat_grad(out2, -lam * (1 - lam) * e)
    return {key: result[key] for key in (*FOUR_TERM_KEYS, "autograd")}


def mixing_constant(alpha: float) -> float:
    """The constant ``c = E[a (1 - a)] = alpha / (2 (2 alpha + 1))`` for ``a ~ Beta(alpha, alpha)``.

    It weighs the cross terms: ``E[a^2] = E[(1 - a)^2] = 1/2 - c``. It grows from 0 (``alpha -> 0``,
    no mixing) to 1/4 (``alpha -> infinity``, ``a = 1/2`` always).
    """
    alpha = check_positive("alpha", alpha)
    return alpha / (2 * (2 * alpha + 1))


def expected_mmix_loss(residuals: torch.Tensor, alpha: float, batch_size: int | None = None) -> float:
    """The manifold-mixup squared loss with an affine head, in expectation over the mixing.

    For residuals ``e`` of the original examples under an affine head, the mixed residual of the
    pair ``(i, perm[i])`` is ``a e_i + (1 - a) e_perm[i]``. Averaging ``1/2`` its square over
    ``a ~ Beta(alpha, alpha)``, a uniformly random permutation ``perm`` (self-pairs included) and
    the batch gives

        ``(1 - 2c) mean(e^2) / 2 + c mean(e)^2``,  with ``c = mixing_constant(alpha)``:

    a rescaled ERM loss plus a penalty on the batch's mean residual, which a bias can zero.

    With ``batch_size = B`` the ``N`` residuals are a data set, and each step draws a mini-batch of
    ``B`` of them without replacement and pairs within it. The penalty is then on the mini-batch's
    mean, and averaging it over the mini-batches adds the variance of a sample mean:

        ``(1 - 2c) mean(e^2) / 2 + c (mean(e)^2 + var(e) (N - B) / (B (N - 1)))``,

    with ``var(e)`` the population variance ``mean((e - mean(e))^2)``.

    Args:
        residuals: The residuals ``y - G(F(x))`` of a batch (or of the data set), any shape (flattened).
        alpha: The Beta parameter, > 0.
        batch_size: Mini-batch size ``B`` (1 <= B <= N); ``None`` (the default) means ``B = N``,
            one batch holding every residual.

    Returns:
        The expected loss per example, as a float.

    Raises:
        ValueError: If ``alpha <= 0``, the residuals are empty or ``batch_size`` is out of range.
    """
    e = check_residuals(residuals)
    b = check_batch_size(batch_size, len(e))
    c = mixing_constant(alpha)
    n = len(e)
    mean_sq = e.mean() ** 2
    if b < n:  # the variance of the mean of b of n residuals drawn without replacement
        mean_sq = mean_sq + (e - e.mean()).pow(2).mean() * (n - b) / (b * (n - 1))
    return float((1 - 2 * c) * e.pow(2).mean() / 2 + c * mean_sq)


def mmix_loss_monte_carlo(
    residuals: torch.Tensor,
    alpha: float,
    n_draws: int,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> float:
    """Monte Carlo estimate of :func:`expected_mmix_loss` by sampling the mixing.

    Each draw samples ``lam ~ Beta(alpha, alpha)`` and a pairing with
    :func:`mixlib.mixing.random_pairing`, as one training batch would, and computes
    ``mean_i 1/2 (lam e_i + (1 - lam) e_perm[i])^2``; the draws are averaged.

    It mixes the *residuals*, not features: no network is involved. With an affine head the
    residual of mixed features is the mix of the residuals (the head commutes with the mixing),
    so this is then the manifold-mixup loss of the batch; with any other head it is not.

    Args:
        residuals: The residuals ``y - G(F(x))`` of a batch, any shape (flattened).
        alpha: The Beta parameter, > 0.
        n_draws: Number of (lam, pairing) draws, >= 1.
        generator: Optional ``torch.Generator`` for repeatable estimates.
        batch_size: ``None`` (default): every draw mixes the whole batch. An int ``B``: every draw
            first picks ``B`` of the residuals without replacement (a mini-batch), then pairs
            within it, as in :func:`expected_mmix_loss` with the same ``batch_size``.

    Returns:
        The average loss over the draws, as a float.

    Raises:
        ValueError: If ``alpha <= 0``, ``n_draws < 1``, the residuals are empty or ``batch_size`` is
            out of range.
        TypeError: If ``generator`` is not a ``torch.Generator``.
    """
    e = check_residuals(residuals)
    b = check_batch_size(batch_size, len(e))
    n_draws = check_positive_int("n_draws", n_draws)
    if batch_size is None:
        lams = sample_lambda(alpha, size=n_draws, generator=generator).double().to(e.device)
        perms = torch.stack([random_pairing(len(e), generator) for _ in range(n_draws)]).to(e.device)
        mixed = lams[:, None] * e + (1 - lams[:, None]) * e[perms]  # (n_draws, n)
        return float((0.5 * mixed.pow(2)).mean())
    lams = sample_lambda(alpha, size=n_draws, generator=generator).double().to(e.device)
    batches = torch.stack([torch.randperm(len(e), generator=generator)[:b] for _ in range(n_draws)]).to(e.device)
    perms = torch.stack([random_pairing(b, generator) for _ in range(n_draws)]).to(e.device)
    eb = e[batches]  # (n_draws, b)
    mixed = lams[:, None] * eb + (1 - lams[:, None]) * eb.gather(1, perms)
    return float((0.5 * mixed.pow(2)).mean())
