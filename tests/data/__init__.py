"""Tests of netspec.data, one module per source module (tests/data/test_<module>.py)."""
