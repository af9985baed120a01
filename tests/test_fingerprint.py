"""gen/fingerprint.py: equal networks share a fingerprint, any changed weight or buffer changes it."""
import torch

from gen.fingerprint import weights_sha256


def network(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))


def test_a_copy_has_the_same_fingerprint_whatever_its_dtype():
    a, b = network(0), network(1)
    assert weights_sha256(a) != weights_sha256(b)
    b.load_state_dict(a.state_dict())
    assert weights_sha256(a) == weights_sha256(b)
    assert weights_sha256(b.double()) == weights_sha256(a)


def test_one_ulp_in_one_weight_or_a_buffer_changes_it():
    a = network(0)
    before = weights_sha256(a)
    with torch.no_grad():
        a[0].weight[1, 2] = torch.nextafter(a[0].weight[1, 2], torch.tensor(10.0))
    assert weights_sha256(a) != before
    b = network(0)
    b[1].running_mean += 1e-3  # a buffer, not a parameter
    assert weights_sha256(b) != before


def test_it_is_the_sha256_of_the_documented_bytes():
    """The same digest computed another way: the bytes written out by hand."""
    import hashlib
    import numpy as np
    layer = torch.nn.Linear(2, 1)
    digest = hashlib.sha256()
    for name in ("weight", "bias"):
        values = getattr(layer, name).detach().numpy().astype("<f4")
        digest.update(name.encode() + np.array(values.shape, dtype="<i8").tobytes() + values.tobytes())
    assert weights_sha256(layer) == digest.hexdigest()
