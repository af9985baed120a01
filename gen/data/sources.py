"""Where each dataset comes from, and the cached clean data before any per-run choice.

A *source* turns the dataset config into clean train/test tensors.  ``load_clean`` applies
``resize`` and ``crop`` too and caches the result: in process for every source, and on disk for
the torchvision sets, whose decoding is the slow part.  Per-run choices (classes, normalisation,
subset, corruption) come after, in ``gen.data.load_data``.
"""
from dataclasses import dataclass
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from gen.data import cache, digits, sinusoid, synthetic, vision
from gen.data.bundle import DataBundle
from gen.data.transforms import resize_and_crop


@dataclass(frozen=True)
class Source:
    load: Callable[[DictConfig], DataBundle]
    keys: tuple[str, ...]                       # the config keys that decide the clean data
    num_classes: Callable[[DictConfig], int]
    on_disk: bool = False                       # decoded from files: worth a disk cache


def _vision(name: str) -> Source:
    # The key gets the resolved root and the files' signatures instead of raw config keys.
    return Source(lambda cfg: vision.decode(name, cfg), keys=(),
                  num_classes=lambda cfg: vision.SETS[name].num_classes, on_disk=True)


SOURCES: dict[str, Source] = {
    "digits": Source(digits.load, ("data_seed", "test_fraction"), lambda cfg: 10),
    "synthetic": Source(synthetic.load, ("data_seed", "num_train", "num_test", "dim", "num_classes", "separation"),
                        lambda cfg: cfg.num_classes),
    "sinusoid": Source(sinusoid.load, ("data_seed", "f", "num_train", "num_test", "dim", "scale"), lambda cfg: 0),
    **{name: _vision(name) for name in vision.SETS},
}

# Applied before caching: the cached tensors depend on them.
CACHED_TRANSFORMS = ("resize", "crop")


def cache_key(name: str, cfg: DictConfig) -> dict | None:
    """What decides the clean tensors of ``cfg``; None when they cannot be cached yet (a source
    file is missing: decoding will download it or raise a clear error)."""
    source = SOURCES[name]
    key = {"dataset": name}
    for k in source.keys + CACHED_TRANSFORMS:
        value = cfg.get(k)
        key[k] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    if source.on_disk:
        files = vision.source_files(name, cfg)
        if not all(f.is_file() for f in files):
            return None
        key["root"] = str(vision.root_of(cfg))
        key["files"] = cache.file_signature(files)
    return key


def load_clean(cfg: DictConfig) -> DataBundle:
    """The clean dataset ``cfg.name`` after resize and crop: uint8 images for torchvision sets,
    float for the others.  Shared with the caches: callers must copy before modifying."""
    name, source = cfg.name, SOURCES[cfg.name]
    key_fields = cache_key(name, cfg)
    if key_fields is None:
        return _decode(source, cfg)
    key = cache.digest(key_fields)
    data = cache.from_memory(key)
    if data is not None:
        return data
    folder = cache.disk_folder(vision.root_of(cfg) / ".gen_cache") if source.on_disk else None
    path = cache.disk_path(folder, name, key) if folder is not None else None
    data = cache.from_disk(path, name) if path is not None else None
    if data is None:
        data = _decode(source, cfg)
        if path is not None:
            cache.to_disk(path, data)
    cache.to_memory(key, data)
    return data


def _decode(source: Source, cfg: DictConfig) -> DataBundle:
    return resize_and_crop(source.load(cfg), cfg.get("resize"), cfg.get("crop"))
