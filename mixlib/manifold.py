"""Manifold mixup: mix hidden states instead of inputs.

Manifold mixup (Verma et al., arXiv 1806.05236) splits a network into stages,
``f = head ∘ block[L-1] ∘ ... ∘ block[0]``, picks a layer ``k`` at random for each batch and mixes
the hidden states there:

.. math::

    h_k = \\mathrm{block}_{k-1}(\\dots \\mathrm{block}_0(x)), \\qquad
    \\mathrm{output} = \\mathrm{rest}_k(\\lambda h_k + (1 - \\lambda) h_k[\\mathrm{perm}]).

Layer ``k`` is *the input to block* ``k``: ``k = 0`` is the input itself (plain input mixup) and
``k = len(blocks)`` is the output of the last block, the features just before the head. The
targets are mixed with the same ``lam`` and ``perm`` by :func:`mixlib.mixing.mixup` or
:func:`mixlib.mixing.mixed_cross_entropy`.

Two ways to get there:

- :class:`StagedNet` (and :func:`mlp`): a model built from a list of blocks, with an explicit
  set of layers eligible for mixing, as in the official code.
- :func:`mix_at`: a context manager that mixes the output of any named submodule of any
  ``nn.Module``, for models that are not a :class:`StagedNet`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from mixlib._checks import (
    check_batch,
    check_blocks,
    check_choice,
    check_generator,
    check_input,
    check_lam,
    check_layer,
    check_layer_set,
    check_model_input,
    check_module,
    check_perm,
    check_positive_int,
    check_widths,
    model_error,
)
from mixlib.mixing import Lam, mix

__all__ = ["StagedNet", "mlp", "mix_at"]


class StagedNet(nn.Module):
    """A network split into blocks followed by a head, with mixing allowed at chosen layers.

    Args:
        blocks: The stages, applied in order.
        head: The module applied to the output of the last block (for example the classifier).
        eligible_layers: Layers at which :meth:`forward_mixed` may mix, each in
            ``0..len(blocks)``; layer ``k`` is the input to block ``k``. Default: all of them,
            ``0..len(blocks)``. (The official code for PreActResNet uses ``{0, 1, 2}``: the
            input and the outputs of the first two residual stages.)

    Attributes:
        blocks: The stages, as an ``nn.ModuleList``.
        head: The head module.
        eligible_layers: The eligible layers, a sorted tuple of ints.
    """

    def __init__(
        self, blocks: Sequence[nn.Module], head: nn.Module, eligible_layers: Iterable[int] | None = None
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(check_blocks(blocks))
        self.head = check_module("head", head, "nn.Linear")
        all_layers = range(len(self.blocks) + 1)
        self.eligible_layers: tuple[int, ...] = check_layer_set(
            all_layers if eligible_layers is None else eligible_layers, len(all_layers)
        )

    @property
    def layers(self) -> tuple[int, ...]:
        """Every layer, ``0..len(blocks)``: the input to each block and the output of the last."""
        return tuple(range(len(self.blocks) + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The ordinary forward pass, ``head(block[L-1](... block[0](x)))``."""
        return self.forward_from(x, 0)

    def features(self, x: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """The hidden state at ``layer``: the input to block ``layer``.

        Args:
            x: A batch of inputs.
            layer: Any layer in ``0..len(blocks)`` (not only the eligible ones); default
                ``len(blocks)``, the features the head sees.

        Returns:
            The hidden state ``block[layer-1](... block[0](x))``; ``x`` itself for ``layer=0``.
        """
        layer = len(self.blocks) if layer is None else check_layer(layer, self.layers)
        check_input("x", x)
        with _model_errors("x", x, self):
            h = x
            for block in self.blocks[:layer]:
                h = block(h)
        return h

    def forward_from(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """Continue from the hidden state ``h`` at ``layer`` to the output of the network.

        Args:
            h: A hidden state, as returned by ``features(x, layer)``.
            layer: Any layer in ``0..len(blocks)``.

        Returns:
            ``head(block[L-1](... block[layer](h)))``.
        """
        layer = check_layer(layer, self.layers)
        name = "x" if layer == 0 else "h"
        check_input(name, h)
        with _model_errors(name, h, self):
            for block in self.blocks[layer:]:
                h = block(h)
            return self.head(h)

    def forward_mixed(self, x: torch.Tensor, layer: int, lam: Lam, perm: torch.Tensor) -> torch.Tensor:
        """The output when the hidden states at ``layer`` are mixed with their partners.

        Computes ``forward_from(lam * h + (1 - lam) * h[perm], layer)`` with ``h = features(x, layer)``.

        Args:
            x: A batch of inputs of size B.
            layer: An eligible layer (see :attr:`eligible_layers`); 0 is input mixup.
            lam: Mixing weight in [0, 1]: a number or a tensor of shape ``(B,)``.
            perm: LongTensor of shape ``(B,)``, the pairing (see :func:`mixlib.mixing.random_pairing`).

        Returns:
            The network's output for the mixed batch. Mix the targets with the same ``lam`` and ``perm``.

        Raises:
            ValueError: If ``layer`` is not eligible, on a bad ``lam`` or ``perm``, or NaN in ``x``
                or in the hidden state.
        """
        layer = check_layer(layer, self.eligible_layers, "eligible layers")
        x = check_batch("x", x)
        h = self.features(x, layer)
        return self.forward_from(mix(h, lam, perm), layer)

    def sample_layer(self, generator: torch.Generator | None = None) -> int:
        """A layer drawn uniformly from :attr:`eligible_layers`, as the official code does per batch."""
        i = int(torch.randint(len(self.eligible_layers), (1,), generator=check_generator(generator)))
        return self.eligible_layers[i]


@contextmanager
def _model_errors(name: str, x: torch.Tensor, model: nn.Module) -> Iterator[None]:
    """Turn an error from inside the network into one that names the input it could not take."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as problem:
        check_model_input(name, x, model)
        raise model_error(name, x, problem) from None


_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(
    in_dim: int,
    hidden: int | Sequence[int],
    out_dim: int,
    activation: str = "relu",
    eligible_layers: Iterable[int] | None = None,
) -> StagedNet:
    """A multilayer perceptron as a :class:`StagedNet`.

    Each block is ``Linear`` followed by the activation; the head is a plain ``Linear``. For
    example ``mlp(64, [256, 256], 10)`` has blocks ``64 -> 256 -> 256`` and head ``256 -> 10``, and
    layers 0 (the input), 1 and 2 (the hidden layers).

    Args:
        in_dim: Input width.
        hidden: Width of each hidden layer (an int for a single hidden layer).
        out_dim: Output width.
        activation: ``"relu"`` or ``"tanh"``.
        eligible_layers: Layers at which mixing is allowed; default all, ``0..len(hidden)``.

    Returns:
        The network, with PyTorch's default initialisation (seed torch first for repeatability).
    """
    check_choice("activation", activation, sorted(_ACTIVATIONS))
    widths = check_widths(hidden)
    in_dim, out_dim = check_positive_int("in_dim", in_dim), check_positive_int("out_dim", out_dim)
    blocks = []
    previous = in_dim
    for width in widths:
        blocks.append(nn.Sequential(nn.Linear(previous, width), _ACTIVATIONS[activation]()))
        previous = width
    return StagedNet(blocks, nn.Linear(previous, out_dim), eligible_layers)


@contextmanager
def mix_at(model: nn.Module, name: str, lam: Lam, perm: torch.Tensor) -> Iterator[nn.Module]:
    """Mix the output of the submodule ``name`` of any model, inside a ``with`` block.

    Inside the block, every call of ``model.get_submodule(name)`` returns
    ``lam * out + (1 - lam) * out[perm]`` instead of its output ``out``, so that
    ``model(x)`` is the manifold-mixup forward pass with mixing after that submodule. The hook is
    removed when the block exits, also when it exits with an exception.

    Args:
        model: Any ``nn.Module``.
        name: Dotted name of a submodule, as in ``model.named_modules()`` (for example
            ``"layer1"`` or ``"blocks.0"``); ``""`` mixes the model's own output.
        lam: Mixing weight in [0, 1]: a number or a tensor with one value per example.
        perm: LongTensor with one index per example, the pairing.

    Yields:
        The submodule whose output is mixed.

    Raises:
        ValueError: If ``model`` has no submodule ``name``.

    Example:
        Mix after the second block of a torchvision-style ResNet and mix the targets to match::

            with mix_at(model, "layer2", lam, perm):
                logits = model(x)
            loss = mixed_cross_entropy(logits, y, y[perm], lam)

    Note:
        A submodule that is called more than once per forward pass (a shared module) is mixed
        at every call. The submodule's output must be a single tensor; it is not scanned for NaN.
    """
    check_module("model", model)
    check_lam(lam)
    check_perm(perm)  # its length is checked against the batch when the hook runs
    try:
        submodule = model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        shown = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
        raise ValueError(f"name {name!r} is not a submodule of the model; valid names include {shown}") from None

    def mix_output(module: nn.Module, inputs: tuple, out: object) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"mix_at can only mix a tensor output; {name!r} returned {type(out).__name__}")
        return mix(out, lam, perm)

    handle = submodule.register_forward_hook(mix_output)
    try:
        yield submodule
    finally:
        handle.remove()
