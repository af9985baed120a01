"""The OmegaConf resolvers gen's configs use, registered in one call: ``${run_id:}`` (a run's folder,
conf/config.yaml) and ``${local_gpus_workers:}`` (hydra/launcher=local_gpus).  Whatever composes or
resolves a gen config calls :func:`register` first: launch.py (through gen.cli), a job on a
cluster node, the tests and the benchmark."""
from omegaconf import OmegaConf


def register() -> None:
    from gen.sweeps.local_gpus import worker_count
    from gen.sweeps.run_id import run_id

    resolvers = {"run_id": (lambda *, _root_: run_id(_root_)), "local_gpus_workers": worker_count}
    for name, resolve in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolve, use_cache=False)
