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
from numbers import Integral

import torch
from torch import nn

from mixlib._checks import (
    check_generator,
    check_lam,
    check_model_input,
    check_not_meta,
    check_positive_int,
    model_error,
)
from mixlib.mixing import Lam, _check_float_batch, _check_no_nan_cheaply, _checked_mix

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
        if isinstance(blocks, nn.Module) and not isinstance(blocks, (nn.Sequential, nn.ModuleList)):
            raise TypeError(f"blocks must be a list of nn.Module stages, got a single {type(blocks).__name__}")
        try:
            blocks = list(blocks)
        except TypeError:
            raise TypeError(f"blocks must be a list of nn.Module stages, got {type(blocks).__name__}") from None
        for i, block in enumerate(blocks):
            if not isinstance(block, nn.Module):
                raise TypeError(f"blocks[{i}] must be an nn.Module, got {type(block).__name__}")
        if not isinstance(head, nn.Module):
            raise TypeError(f"head must be an nn.Module (for example nn.Linear), got {type(head).__name__}")
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        n_layers = len(self.blocks) + 1
        if eligible_layers is None:
            eligible_layers = range(n_layers)
        if isinstance(eligible_layers, (str, bytes, Integral)):
            raise TypeError(f"eligible_layers must be a collection of ints such as [0, 1], got {eligible_layers!r}")
        try:
            eligible = tuple(sorted(set(eligible_layers)))
        except TypeError:
            raise TypeError(
                f"eligible_layers must be a collection of ints such as [0, 1], got {eligible_layers!r}"
            ) from None
        if not eligible:
            raise ValueError("eligible_layers must contain at least one layer")
        for k in eligible:
            if isinstance(k, bool) or not isinstance(k, Integral) or not 0 <= k < n_layers:
                raise ValueError(
                    f"eligible_layers must hold ints in 0..{n_layers - 1} (the input to each block, "
                    f"and the output of the last), got {k!r}"
                )
        self.eligible_layers: tuple[int, ...] = tuple(int(k) for k in eligible)

    def _check_layer(self, layer: object, eligible_only: bool) -> int:
        allowed = self.eligible_layers if eligible_only else tuple(range(len(self.blocks) + 1))
        if isinstance(layer, bool) or not isinstance(layer, Integral) or int(layer) not in allowed:
            which = "eligible layers" if eligible_only else "layers"
            raise ValueError(f"layer must be one of the {which} {allowed}, got {layer!r}")
        return int(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The ordinary forward pass, ``head(block[L-1](... block[0](x)))``."""
        return self._forward_from("x", x, 0)

    def features(self, x: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """The hidden state at ``layer``: the input to block ``layer``.

        Args:
            x: A batch of inputs.
            layer: Any layer in ``0..len(blocks)`` (not only the eligible ones); default
                ``len(blocks)``, the features the head sees.

        Returns:
            The hidden state ``block[layer-1](... block[0](x))``; ``x`` itself for ``layer=0``.
        """
        layer = len(self.blocks) if layer is None else self._check_layer(layer, eligible_only=False)
        _check_input("x", x)
        h = x
        try:
            for block in self.blocks[:layer]:
                h = block(h)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as problem:
            check_model_input("x", x, self)
            raise model_error("x", x, problem) from None
        return h

    def forward_from(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """Continue from the hidden state ``h`` at ``layer`` to the output of the network.

        Args:
            h: A hidden state, as returned by ``features(x, layer)``.
            layer: Any layer in ``0..len(blocks)``.

        Returns:
            ``head(block[L-1](... block[layer](h)))``.
        """
        return self._forward_from("h", h, self._check_layer(layer, eligible_only=False))

    def _forward_from(self, name: str, x: torch.Tensor, layer: int) -> torch.Tensor:
        _check_input(name, x)
        h = x
        try:
            for block in self.blocks[layer:]:
                h = block(h)
            return self.head(h)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as problem:
            check_model_input(name, x, self)
            raise model_error(name, x, problem) from None

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
            ValueError: If ``layer`` is not eligible, on a bad ``lam`` or ``perm``, or NaN in ``x``.
                Hidden states are not scanned for NaN (that would cost a pass over each of them
                in every training step).
        """
        layer = self._check_layer(layer, eligible_only=True)
        x = _check_float_batch("x", x)
        _check_no_nan_cheaply("x", x)
        h = self.features(x, layer)
        mixed = _checked_mix(f"hidden state at layer {layer}", h, lam, perm, scan_nan=False)
        return self.forward_from(mixed, layer)

    def sample_layer(self, generator: torch.Generator | None = None) -> int:
        """A layer drawn uniformly from :attr:`eligible_layers`, as the official code does per batch."""
        i = int(torch.randint(len(self.eligible_layers), (1,), generator=check_generator(generator)))
        return self.eligible_layers[i]


def _check_input(name: str, x: object) -> None:
    # Constant-time checks only: this runs in every training step.
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    check_not_meta(name, x)
    if x.dim() == 0:
        raise ValueError(f"{name} must have a batch dimension, got a 0-d tensor")


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
    if not isinstance(activation, str) or activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (Integral, Iterable)):
        raise TypeError(f"hidden must be an int or a list of ints (the hidden widths), got {hidden!r}")
    widths = [hidden] if isinstance(hidden, Integral) else list(hidden)
    for name, w in [("in_dim", in_dim), ("out_dim", out_dim)] + [("hidden", w) for w in widths]:
        check_positive_int(name, w)
    blocks = []
    previous = in_dim
    for width in widths:
        blocks.append(nn.Sequential(nn.Linear(int(previous), int(width)), _ACTIVATIONS[activation]()))
        previous = width
    return StagedNet(blocks, nn.Linear(int(previous), int(out_dim)), eligible_layers)


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
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_lam(lam)
    if not isinstance(perm, torch.Tensor) or perm.dtype != torch.long:
        raise TypeError(f"perm must be a LongTensor of indices, got {getattr(perm, 'dtype', type(perm).__name__)}")
    try:
        submodule = model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        shown = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
        raise ValueError(f"name {name!r} is not a submodule of the model; valid names include {shown}") from None

    def mix_output(module: nn.Module, inputs: tuple, out: object) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"mix_at can only mix a tensor output; {name!r} returned {type(out).__name__}")
        return _checked_mix(f"output of {name!r}", out, lam, perm, scan_nan=False)

    handle = submodule.register_forward_hook(mix_output)
    try:
        yield submodule
    finally:
        handle.remove()
