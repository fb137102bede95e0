"""What the tests and the benchmark drive the project with (not part of the deployed program).

The Pulumi program under mocks (:mod:`.program`), the Pulumi CLI (:mod:`.pulumi_cli`,
:mod:`.workflows`), the policy pack's analyzer protocol (:mod:`.analyzer_client`,
:mod:`.declared`), the Docker engine and the project's images (:mod:`.engine`,
:mod:`.images`, :mod:`.stack_cleanup`). Nothing here asserts: tests do.
"""
