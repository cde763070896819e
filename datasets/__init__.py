"""Seeded synthetic DICOM studies for tests, the demo and benchmarks (see datasets.synthetic)."""
