"""``logger=csv``: the history of metrics.json as a CSV beside it (one row per evaluation), for
spreadsheets and ``pandas.read_csv``.  Written from the record itself when the run ends."""
import csv
import io

from gen import atomic
from gen.tracking.base import Tracker


class Csv(Tracker):
    name = "csv"

    def end(self, metrics: dict) -> None:
        rows = metrics["history"]
        columns = list(dict.fromkeys(key for row in rows for key in row))  # trajectory keys join after epoch 0
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
        atomic.write_bytes(self.run_dir / self.options["file"], text.getvalue().encode())
