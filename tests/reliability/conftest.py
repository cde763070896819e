"""The reliability suite builds on the reading world (two sites, four readers) and drives the
production topology with bench/reliability.py's code."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.reading.world import make_world, world_backend  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def bench_driver() -> ModuleType:
    """bench/reliability.py (a script, not a package) as a module: the topology and the load."""
    spec = importlib.util.spec_from_file_location("bench_reliability", ROOT / "bench" / "reliability.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module
