"""pytest's hooks and the shared fixtures; the plain helpers tests import live in tests/helpers.py."""
import pytest

from tests.helpers import launch


def pytest_collection_modifyitems(config, items):
    """Slow tests first (a stable sort: file order otherwise).  With ``--dist loadgroup`` (pyproject) xdist hands
    each worker the next test as it finishes one, so the long tests start at once and the short ones fill the
    gaps; a long test collected last would run alone at the end while the other worker idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def run_in(tmp_path):
    """``run_in(args)`` launches in a fresh folder and returns (process, folder)."""
    def _run(args, **kwargs):
        proc = launch(args, tmp_path, **kwargs)
        return proc, tmp_path
    return _run
