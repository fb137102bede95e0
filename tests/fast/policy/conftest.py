"""Policy-pack fixtures: the pack as the engine runs it (its own process, gRPC) and the same pack in-process.

``pack_process`` is the real thing: ``python -m pulumi.policy`` in policies/, over gRPC, once
for the package; the tests about the pack as a process (what it tells the engine, the
committed stacks, the wire's unknown sentinel) use it. ``analyzer`` is the same servicer
from the same policies, called in this process (:class:`InProcessAnalyzer`): the tests
about the rules send it hundreds of requests, each without a socket round trip.
"""

from __future__ import annotations

import pytest

from harness.analyzer_client import Analyzer, InProcessAnalyzer, PolicyPackProcess


@pytest.fixture(scope="package")
def _pack_process():
    with PolicyPackProcess() as pack:
        analyzer = Analyzer(pack.address)
        try:
            yield analyzer
        finally:
            analyzer.close()


@pytest.fixture(scope="package")
def _in_process_pack():
    return InProcessAnalyzer()


@pytest.fixture
def pack_process(_pack_process):
    """The pack's own process with the default config (every policy mandatory, no exemption)."""
    _pack_process.configure({})
    yield _pack_process
    _pack_process.configure({})


@pytest.fixture
def analyzer(_in_process_pack):
    """The pack in-process with the default config (every policy mandatory, no exemption)."""
    _in_process_pack.configure({})
    yield _in_process_pack
    _in_process_pack.configure({})
