"""mixlib.surrogate: an unbiased estimate of mixup's second-order input term."""

import pytest
import torch

import mixlib
from mixlib.surrogate import InputCurvature


def test_the_penalty_is_an_unbiased_estimate_of_the_gauss_newton_term():
    torch.manual_seed(0)
    model, x = mixlib.mlp(6, [8], 3), torch.randn(1, 5, 6)
    penalty = InputCurvature(alpha=1.0, seed=0)
    assert penalty.scale == pytest.approx(0.5 * 1 / 3)  # E[(1 - lambda)^2] = 1/3 under Beta(1, 1)
    # the same partners as the penalty's first draw, then many draws of the class k
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(0))
    d = x[0, perm] - x[0]
    jacobian = torch.autograd.functional.jacobian(model, x[0])
    with torch.no_grad():
        p = torch.softmax(model(x[0]), -1)
    exact = sum(float(d[i] @ jacobian[i, :, i].T @ (torch.diag(p[i]) - torch.outer(p[i], p[i]))
                      @ jacobian[i, :, i] @ d[i]) for i in range(5)) / 5 * penalty.scale
    draws = []
    for s in range(3000):
        fresh = InputCurvature(alpha=1.0, seed=0)
        torch.randperm(5, generator=fresh.generator)  # the partners, as in the penalty
        fresh.generator = torch.Generator().manual_seed(10_000 + s)  # a fresh class draw k each time
        fresh_perm = perm.reshape(1, -1)

        def fixed_partners(model, x, y, index, fresh=fresh, fresh_perm=fresh_perm):
            xx = x.detach().requires_grad_()
            out = model(xx)
            q = torch.softmax(out, -1).detach()
            k = torch.multinomial(q.reshape(-1, 3).double(), 1, generator=fresh.generator)
            v = torch.zeros(5, 3).scatter_(1, k, 1.0).reshape(1, 5, 3) - q
            (grad,) = torch.autograd.grad((v * out).sum(), xx)
            direction = x[:, fresh_perm[0]] - x
            return fresh.scale * (grad * direction).sum(-1).pow(2).mean(-1)

        draws.append(float(fixed_partners(model, x, None, None)))
    assert sum(draws) / len(draws) == pytest.approx(exact, rel=0.05)
    # the penalty itself: one member's value, differentiable in the weights
    value = penalty(model, x, None, None)
    assert value.shape == (1,) and value.requires_grad


def test_the_penalty_trains_in_fit_and_in_the_ensemble():
    data = mixlib.two_moons(n=60, seed=0)
    model = mixlib.mlp(2, [8], 2)
    history = mixlib.fit(model, data.x_train, data.y_train, epochs=2, batch_size=10, progress=False,
                         extra_loss=InputCurvature(alpha=1.0))
    assert len(history.loss) == 2
    with pytest.raises(ValueError, match="alpha"):
        InputCurvature(alpha=0.0)
