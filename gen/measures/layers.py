"""The weight layers W_1 … W_d of a (BatchNorm-folded) network, and their norms.

Every Linear and Conv layer is a layer, in the order the forward pass meets them (graph order;
module order for a network that does not trace).  A conv kernel [out, in, kh, kw] counts as the
matrix out × (in·kh·kw) for Frobenius-type norms; its spectral norm is either that matrix's
(``conv_spectral=reshape``, as S1's and J's code do) or the exact operator norm of the
convolution on the layer's input size (``conv_spectral=fft``, Sedghi et al. 2019, with circular
boundaries), extended here to strides: for stride s the operator is block diagonal in the
Fourier basis, one block [K̂(u + a·n/s)]_a / s per output frequency u (the aliased frequencies).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from gen.measures.folding import FoldedNet
from gen.measures.graph import WEIGHT_LAYERS


@dataclass
class WeightLayer:
    name: str
    module: nn.Module
    input_size: tuple[int, ...]  # spatial size of the layer's input (convs); () for Linear

    @property
    def weight(self) -> torch.Tensor:
        """The weight in float64: norms of wide layers lose digits in float32."""
        return self.module.weight.detach().double()

    @property
    def width(self) -> int:
        """h_i: the number of output units (features or channels)."""
        return self.module.weight.shape[0]

    @property
    def bias(self) -> torch.Tensor:
        """The bias in float64 (zeros for a bias-free layer)."""
        bias = self.module.bias
        return bias.detach().double() if bias is not None else self.weight.new_zeros(self.width)

    def matrix(self, include_bias: bool = False, weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None) -> torch.Tensor:
        """The weight as an out × (in·k·k) matrix, with the bias as one more column if asked."""
        weight = self.weight if weight is None else weight
        matrix = weight.reshape(weight.shape[0], -1)
        if include_bias:
            bias = self.bias if bias is None else bias
            matrix = torch.cat([matrix, bias[:, None]], dim=1)
        return matrix


def weight_layers(folded: FoldedNet, example: torch.Tensor) -> list[WeightLayer]:
    """The folded network's Linear/Conv layers in forward order, with the spatial size each one sees."""
    named = dict(folded.module.named_modules())
    if folded.graph is not None:
        names = [n.target for n in folded.graph.nodes
                 if n.op == "call_module" and isinstance(named[n.target], WEIGHT_LAYERS)]
        names = list(dict.fromkeys(names))  # a layer applied twice is still one layer
    else:
        names = [name for name, m in named.items() if isinstance(m, WEIGHT_LAYERS)]
    sizes: dict[str, tuple[int, ...]] = {}

    def record_size(name):
        def hook(module, args):  # returns None: a pre-hook's return value would replace the input
            sizes.setdefault(name, tuple(args[0].shape[2:]))
        return hook
    hooks = [named[name].register_forward_pre_hook(record_size(name)) for name in names]
    try:
        with torch.no_grad():
            folded.module(example[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return [WeightLayer(name, named[name], sizes.get(name, ())) for name in names]


def spectral_norm(layer: WeightLayer, method: str, include_bias: bool = False,
                  weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> tuple[float, str | None]:
    """‖W‖_2 of a layer (or of ``weight`` and ``bias`` in its place, e.g. W − W⁰), and a note if FFT
    fell back.  The FFT operator norm is of the linear map alone: it leaves the bias out."""
    weight = layer.weight if weight is None else weight
    module = layer.module
    if method == "fft" and isinstance(module, (nn.Conv1d, nn.Conv2d)) and layer.input_size:
        kernel, size = weight, layer.input_size
        stride, dilation = tuple(module.stride), tuple(module.dilation)
        if isinstance(module, nn.Conv1d):  # a 1-D conv is a 2-D conv on a 1 × L image
            kernel, size, stride, dilation = kernel[:, :, None, :], (1, *size), (1, *stride), (1, *dilation)
        if all(n % s == 0 for n, s in zip(size, stride)):
            return fft_conv_spectral_norm(kernel, size, stride, dilation, module.groups), None
        note = (f"{layer.name}: input {size} not divisible by stride {stride}; "
                f"spectral norm of the reshaped kernel instead of the FFT operator norm")
        return matrix_spectral_norm(layer.matrix(include_bias, weight, bias)), note
    return matrix_spectral_norm(layer.matrix(include_bias, weight, bias)), None


def matrix_spectral_norm(matrix: torch.Tensor) -> float:
    return torch.linalg.svdvals(matrix.double()).max().item()


def fft_conv_spectral_norm(kernel: torch.Tensor, input_size: tuple[int, int], stride=(1, 1), dilation=(1, 1),
                           groups: int = 1) -> float:
    """Exact ‖·‖_2 of the circular 2-D convolution with ``kernel`` [out, in/groups, kh, kw] on inputs of
    ``input_size`` (H, W), each divisible by its stride."""
    if groups > 1:  # block diagonal over groups
        return max(fft_conv_spectral_norm(k, input_size, stride, dilation) for k in kernel.chunk(groups, dim=0))
    height, width = input_size
    (sh, sw), (dh, dw) = stride, dilation
    out_channels, in_channels, kh, kw = kernel.shape
    # The kernel's taps on the H × W torus (taps that wrap around add up).
    taps = kernel.new_zeros(out_channels, in_channels, height, width, dtype=torch.float64)
    for i in range(kh):
        for j in range(kw):
            taps[:, :, (i * dh) % height, (j * dw) % width] += kernel[:, :, i, j].double()
    spectrum = torch.fft.fft2(taps)  # [out, in, H, W]: one out × in matrix per frequency
    hs, ws = height // sh, width // sw
    # Output frequency (u, v) collects input frequencies (u + a·hs, v + b·ws), a < sh, b < sw.
    blocks = (spectrum.reshape(out_channels, in_channels, sh, hs, sw, ws)
              .permute(3, 5, 0, 1, 2, 4).reshape(hs * ws, out_channels, in_channels * sh * sw))
    return torch.linalg.svdvals(blocks).max().item() / math.sqrt(sh * sw)
