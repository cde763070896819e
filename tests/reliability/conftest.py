"""The reliability suite builds on the reading world (two sites, four readers)."""

from tests.reading.world import make_world, world_backend  # noqa: F401
