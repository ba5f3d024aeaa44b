r"""An explicit stand-in for input mixup: label smoothing plus a curvature penalty on the inputs.

Mixing an input with a random partner moves it by :math:`\delta = (1-\lambda)(x_j - x_i)`. To
second order, and with the loss's Hessian in the outputs replaced by its Gauss-Newton part
:math:`J^\top H J` (:math:`J` the Jacobian of the logits in the input, :math:`H = \mathrm{diag}(p) -
pp^\top` the softmax Hessian), a random move adds :math:`\tfrac12\,\mathbb E[\delta^\top J^\top H J
\delta]` to the loss. :class:`InputCurvature` is that term for an *isotropic* move of the same mean
squared size as mixup's, :math:`\tfrac12 s^2 \operatorname{tr}(J^\top H J)` with
:math:`s^2 = \mathbb E[(1-\lambda)^2]\,\mathbb E\|x_j - x_i\|^2 / d`, estimated without bias from one
backward pass: for :math:`k \sim p`, the vector :math:`v = e_k - p` has covariance :math:`H`, so
:math:`\mathbb E\|\nabla_x (v^\top f)\|^2 = \operatorname{tr}(J^\top H J)`.

Together with label smoothing matched to mixup's soft targets it is an explicit regulariser in the
spirit of Carratino et al. (2022) and Zhang et al. (2021), who read mixup as label smoothing plus a
penalty on the network's input gradients; the isotropic move is this module's simplification
(mixup moves points towards other data, not in every direction).
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_positive, check_seed

__all__ = ["InputCurvature"]


class InputCurvature:
    """An ``extra_loss`` for :func:`~mixlib.train.fit` and :func:`~mixlib.ensemble.fit_ensemble`.

    Args:
        x: the training inputs ``(n, d)``; they set the size ``s^2`` of the move.
        alpha: the Beta(alpha, alpha) parameter of the mixup being imitated.
        seed: the seed of the classes ``k`` drawn at each step (the estimate is random, the run is not).

    Attributes:
        scale: :math:`s^2 / 2`, the weight of :math:`\\operatorname{tr}(J^\\top H J)`.
    """

    def __init__(self, x: torch.Tensor, alpha: float, seed: int = 0) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or len(x) < 2 or not x.is_floating_point():
            raise TypeError(f"x must be a float tensor of training inputs (n >= 2, d), got {getattr(x, 'shape', x)!r}")
        alpha = check_positive("alpha", alpha)
        shrink = (alpha + 1) / (2 * (2 * alpha + 1))  # E[(1 - lambda)^2] under Beta(alpha, alpha)
        pair_distance = 2 * x.double().var(dim=0).sum().item()  # E||x_j - x_i||^2 over independent pairs
        self.scale = 0.5 * shrink * pair_distance / x.shape[1]
        self.generator = torch.Generator().manual_seed(check_seed("seed", seed))

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """One penalty per member for the batch ``x`` ``(K, B, d)``: ``scale * ||grad_x v^T f(x)||^2``."""
        x = x.detach().requires_grad_()
        out = model(x)
        p = torch.softmax(out, dim=-1).detach()
        k = torch.multinomial(p.reshape(-1, p.shape[-1]).cpu().double(), 1, generator=self.generator)
        v = torch.zeros_like(p).reshape(-1, p.shape[-1])
        v.scatter_(1, k.to(v.device), 1.0)
        v = v.reshape(p.shape) - p  # covariance diag(p) - p p^T: the softmax Hessian
        (grad,) = torch.autograd.grad((v * out).sum(), x, create_graph=True)
        return self.scale * grad.pow(2).sum(-1).mean(-1)
