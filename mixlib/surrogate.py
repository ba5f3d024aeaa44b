r"""An explicit stand-in for input mixup: label smoothing plus mixup's second-order input penalty.

Mixing an input with a partner moves it by :math:`\delta = (1-\lambda)(x_j - x_i)`. To second
order, and with the loss's Hessian in the outputs replaced by its Gauss-Newton part
:math:`J^\top H J` (:math:`J` the Jacobian of the logits in the input, :math:`H = \mathrm{diag}(p) -
pp^\top` the softmax Hessian), the move adds :math:`\tfrac12\, \delta^\top J^\top H J \delta` to the
loss. :class:`InputCurvature` is that term, averaged over a random partner in the batch and over
lambda: :math:`\tfrac12\,\mathbb E[(1-\lambda)^2]\; d^\top J^\top H J\, d` with :math:`d = x_{\pi(i)} - x_i`.
It is estimated without bias from one backward pass: for :math:`k \sim p`, the vector
:math:`v = e_k - p` has covariance :math:`H`, so :math:`\mathbb E_k[(\nabla_x (v^\top f) \cdot d)^2]
= d^\top J^\top H J d`.

Together with label smoothing matched to mixup's soft targets it is an explicit regulariser in the
spirit of Carratino et al. (2022) and Zhang et al. (2021), who read mixup as label smoothing plus a
penalty on the network's input gradients. What it leaves out: the first-order term (the move's
mean, a shrinkage towards the batch mean) and every term beyond the second.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_positive, check_seed

__all__ = ["InputCurvature"]


class InputCurvature:
    """An ``extra_loss`` for :func:`~mixlib.train.fit` and :func:`~mixlib.ensemble.fit_ensemble`.

    Args:
        alpha: the Beta(alpha, alpha) parameter of the input mixup being imitated.
        seed: the seed of the partners and classes drawn at each step (the estimate is random,
            the run is not).

    Attributes:
        scale: :math:`\\tfrac12\\,\\mathbb E[(1-\\lambda)^2]`, the weight of :math:`d^\\top J^\\top H J d`.
    """

    def __init__(self, alpha: float, seed: int = 0) -> None:
        alpha = check_positive("alpha", alpha)
        self.scale = 0.5 * (alpha + 1) / (2 * (2 * alpha + 1))  # E[(1 - lambda)^2] under Beta(alpha, alpha)
        self.generator = torch.Generator().manual_seed(check_seed("seed", seed))

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """One penalty per member for the batch ``x`` ``(K, B, d)``."""
        members, batch = x.shape[0], x.shape[1]
        perm = torch.stack([torch.randperm(batch, generator=self.generator) for _ in range(members)]).to(x.device)
        direction = x.gather(1, perm.unsqueeze(-1).expand_as(x)) - x  # d = x_partner - x
        x = x.detach().requires_grad_()
        out = model(x)
        p = torch.softmax(out, dim=-1).detach()
        k = torch.multinomial(p.reshape(-1, p.shape[-1]).cpu().double(), 1, generator=self.generator)
        v = torch.zeros_like(p).reshape(-1, p.shape[-1])
        v.scatter_(1, k.to(v.device), 1.0)
        v = v.reshape(p.shape) - p  # covariance diag(p) - p p^T: the softmax Hessian
        (grad,) = torch.autograd.grad((v * out).sum(), x, create_graph=True)
        return self.scale * (grad * direction).sum(-1).pow(2).mean(-1)
