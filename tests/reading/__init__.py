"""Tests of the reading workflow: report templates and report outputs."""
