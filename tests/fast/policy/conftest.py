"""Policy-pack fixtures: the pack running as the engine runs it, and the committed stacks under mocks."""

from __future__ import annotations

import pytest

from harness.analyzer_client import Analyzer, PolicyPackProcess


@pytest.fixture(scope="package")
def pack_analyzer():
    with PolicyPackProcess() as pack:
        analyzer = Analyzer(pack.address)
        try:
            yield analyzer
        finally:
            analyzer.close()


@pytest.fixture
def analyzer(pack_analyzer):
    """The running pack with the default config (every policy mandatory, no exemption)."""
    pack_analyzer.configure({})
    yield pack_analyzer
    pack_analyzer.configure({})
