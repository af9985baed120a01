"""A fingerprint of a trained network's weights: two runs that end with bit-identical networks (the same
labels drawn under two corruption options, the same config under two names) share it, so an analysis can
count one network once (analysis/twins.py).

SHA-256 over the state dict's floating-point and integer tensors in the state dict's own order, each as its
name, dtype-independent shape and the bytes of its values as little-endian float32 on the CPU: a float64 or
a CUDA copy of the same numbers gives the same fingerprint; a one-ulp change of any weight changes it.
"""
import hashlib

import numpy as np


def weights_sha256(model) -> str:
    """The hex SHA-256 of ``model``'s state dict (parameters and buffers), as the module docstring says.
    torch is imported here, not above: gen.record imports this module and must stay cheap to import (the
    process that launches a sweep composes every job with it and may never train)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        values = tensor.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4", copy=False)
        digest.update(name.encode())
        digest.update(np.asarray(values.shape, dtype="<i8").tobytes())
        digest.update(values.tobytes())
    return digest.hexdigest()
