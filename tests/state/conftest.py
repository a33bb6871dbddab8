"""Fixtures of the shared-state tests: ``children`` (child processes cleaned up after a test)."""

from __future__ import annotations

from _children import children

__all__ = ["children"]
