"""Policy-pack fixtures: the pack's servicer in this process.

``analyzer`` is the servicer the pack serves, built from the same policies and called in
this process (:class:`InProcessAnalyzer`): the tests about the rules send it hundreds of
requests, each without a socket round trip. The pack as the engine runs it (its own
process, over gRPC) is tests/host/policy's ``pack_process``.
"""

from __future__ import annotations

import pytest

from harness.analyzer_client import InProcessAnalyzer


@pytest.fixture(scope="package")
def _in_process_pack():
    return InProcessAnalyzer()


@pytest.fixture
def analyzer(_in_process_pack):
    """The pack in-process with the default config (every policy mandatory, no exemption)."""
    _in_process_pack.configure({})
    yield _in_process_pack
    _in_process_pack.configure({})
