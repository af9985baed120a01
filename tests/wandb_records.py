"""Read a wandb offline run's ``.wandb`` file back as wandb's own protobuf records.

The file is a LevelDB-style log (wandb-core writes it; wandb 0.31 no longer ships the Python reader,
wandb.sdk.internal.datastore): a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then 32 KiB blocks
of records, each ``crc32 (4) | length (2, little-endian) | type (1: full, 2: first, 3: middle, 4: last)``
followed by its bytes; a block's tail shorter than a record header is zero padding.  Each record's
bytes are a ``wandb.proto.wandb_internal_pb2.Record``."""
import json
import struct
from pathlib import Path

HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:len(HEADER)] == HEADER, f"{path} is not a wandb log"
    pos, pending = len(HEADER), b""
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # padding at the block's end
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            break
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        pending += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def history(path: Path) -> list[tuple[int, dict]]:
    """(step, {key: value}) of every history record, in order."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append((record.history.step.num,
                         {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                          for item in record.history.item}))
    return rows


def summary(path: Path) -> dict:
    """The run's summary as its last summary updates left it."""
    values = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values


def config(path: Path) -> dict:
    """The run's config: the run record's, then any later config updates."""
    values = {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind in ("run", "config"):
            for item in (record.run.config if kind == "run" else record.config).update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values


def run_info(path: Path):
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            return record.run
    return None
