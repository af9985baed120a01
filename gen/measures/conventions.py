"""The conventions a measure can be computed under: gen's own, and those of the two public codes
researchers cite, so that a user can reproduce either peer's numbers on the same network.

``measure.params.convention`` picks one row of ``CONVENTIONS``; every measure reads its settings
from here (``ctx.convention``) and nowhere else.  The peers:

- ``jiang2020``: the reproduction of Jiang et al. 2020 (``robust-generalization-measures``,
  ``data/generation/measures.py``).
- ``neyshabur2017``: Neyshabur et al.'s ``generalization-bounds`` code (``measures.py``, the code
  of S1).

Where a peer's code has a defect, the convention does not copy it (``PEER_DEFECTS``): J's FFT
spectral norm ignores the stride and takes the network's input size for every layer; gen's exact
operator norm (``*_fft`` measures) handles both, under every convention.
"""
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Convention:
    margin_rank: str        # how the q-th percentile of the margins is read
    num_params: str         # what num_params counts
    path_biases: str        # biases in the path sums f_{|θ|^p}(1)
    pacbayes_vector: str    # which parameters form w (and ω) in the PAC-Bayes and sharpness bounds
    conv_spectral: str      # the spectral norm of a conv layer in the unsuffixed spectral measures
    pacbayes_sigma: str     # what the searched σ is to the random perturbation


CONVENTIONS: dict[str, Convention] = {
    "gen": Convention(margin_rank="interpolate", num_params="all", path_biases="zero",
                      pacbayes_vector="all", conv_spectral="fft", pacbayes_sigma="std"),
    "jiang2020": Convention(margin_rank="kthvalue", num_params="weights", path_biases="power",
                            pacbayes_vector="weights", conv_spectral="reshape", pacbayes_sigma="variance"),
    "neyshabur2017": Convention(margin_rank="interpolate", num_params="layers", path_biases="power",
                                pacbayes_vector="all", conv_spectral="reshape", pacbayes_sigma="std"),
}

# What each value means (docs/measures.md shows this table; a test keeps the two in step).
MEANINGS: dict[str, dict[str, str]] = {
    "margin_rank": {
        "interpolate": "linear interpolation between order statistics (numpy.percentile; S1's code)",
        "kthvalue": "the k-th smallest margin, k = ⌊q·n/100⌋ (at least 1): J's `kthvalue(m // 10)`",
    },
    "num_params": {
        "all": "every parameter of the trained network, BatchNorm included (metrics.json's model.num_params)",
        "weights": "the Linear/Conv weights only, no biases (J)",
        "layers": "the Linear/Conv weights and biases after BatchNorm folding (S1's `n_param`)",
    },
    "path_biases": {
        "zero": "biases set to 0: the sum runs over input→output paths only",
        "power": "biases raised to the p-th power of their absolute value, like the weights (both peers' code)",
    },
    "pacbayes_vector": {
        "all": "every trainable parameter of the folded network, biases included",
        "weights": "the Linear/Conv weights only (J's `get_weights_only`)",
    },
    "conv_spectral": {
        "fft": "the exact operator norm of the convolution on the layer's input (Sedghi et al. 2019)",
        "reshape": "the largest singular value of the kernel reshaped to out × (in·k·k) (both peers)",
    },
    "pacbayes_sigma": {
        "std": "σ is the noise's standard deviation: u ~ N(0, σ²); magnitude-aware std √(σ'²w² + ε²)",
        "variance": "J's code: `torch.normal(0, σ²)`, so σ² is the standard deviation; magnitude-aware "
                    "std σ'²w² + ε²",
    },
}

PEER_DEFECTS = (
    "J's FFT spectral norm (`_spectral_norm_fft`) ignores the stride and uses the network's input size "
    "for every layer; gen's `*_fft` measures use each layer's own input size and stride under every convention.",
    "J's code takes |γ| (`margin.abs()`), so a negative margin gives a positive value; gen gives null.",
)


def settings() -> list[str]:
    """The names of the settings a convention fixes, in table order."""
    return [f.name for f in fields(Convention)]
