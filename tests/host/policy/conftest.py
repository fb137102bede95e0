"""Policy-pack fixtures: the pack as the engine runs it (its own process, gRPC).

``pack_process`` is the real thing: ``python -m pulumi.policy`` in policies/, over gRPC, once
for the package; the tests about the pack as a process (what it tells the engine, the
committed stacks, the wire's unknown sentinel) use it. The same pack in-process, for the
tests about the rules, is tests/fast/policy's ``analyzer``.
"""

from __future__ import annotations

import pytest

from harness.analyzer_client import Analyzer, PolicyPackProcess


@pytest.fixture(scope="package")
def _pack_process():
    with PolicyPackProcess() as pack:
        analyzer = Analyzer(pack.address)
        try:
            yield analyzer
        finally:
            analyzer.close()


@pytest.fixture
def pack_process(_pack_process):
    """The pack's own process with the default config (every policy mandatory, no exemption)."""
    _pack_process.configure({})
    yield _pack_process
    _pack_process.configure({})
