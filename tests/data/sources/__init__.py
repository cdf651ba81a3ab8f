"""Tests of netspec.data.sources, one module per source module."""
