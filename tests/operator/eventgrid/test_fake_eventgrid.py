"""The stand-in Event Grid namespace as the real SDK (EventGridConsumerClient) sees it."""

from __future__ import annotations

import asyncio

import pytest
from azure.core.exceptions import HttpResponseError
from azure.eventgrid.aio import EventGridConsumerClient

from llmhub_operator import azure_auth
from tests.fakes.fake_azure import FakeAzure
from tests.fakes.fake_eventgrid import FakeEventGrid


def _client(grid: FakeEventGrid, azure_env: dict[str, str]) -> EventGridConsumerClient:
    options = azure_auth.pipeline_options(
        connection_verify=azure_env["LLMHUB_AZURE_CA_BUNDLE"], timeout_s=30
    )
    credential = azure_auth.make_credential(
        connection_verify=azure_env["LLMHUB_AZURE_CA_BUNDLE"], timeout_s=10
    )
    return EventGridConsumerClient(
        grid.base_url,
        credential,
        namespace_topic=grid.topic,
        subscription=grid.subscription,
        **options,
    )


async def test_key_vault_write_is_received_and_acknowledged(
    eventgrid: FakeEventGrid, fake_azure: FakeAzure, azure_env: dict[str, str]
) -> None:
    version = fake_azure.set_secret("eg-a", "value-123456")
    async with _client(eventgrid, azure_env) as consumer:
        got = await consumer.receive(max_events=10, max_wait_time=10)
        assert len(got) == 1
        event = got[0].event
        assert event.type == "Microsoft.KeyVault.SecretNewVersionCreated"
        assert event.subject == "eg-a"
        assert event.data["VaultName"] == fake_azure.vault_name
        assert event.data["ObjectName"] == "eg-a"
        assert event.data["Version"] == version
        assert got[0].broker_properties.delivery_count == 1
        result = await consumer.acknowledge(lock_tokens=[got[0].broker_properties.lock_token])
        assert result.succeeded_lock_tokens == [got[0].broker_properties.lock_token]
        again = await consumer.acknowledge(lock_tokens=[got[0].broker_properties.lock_token])
        assert again.failed_lock_tokens[0].lock_token == got[0].broker_properties.lock_token
    assert eventgrid.pending() == 0


async def test_lock_expiry_redelivers_and_the_old_token_is_lost(
    eventgrid: FakeEventGrid, fake_azure: FakeAzure, azure_env: dict[str, str]
) -> None:
    eventgrid.lock_duration = 0.5
    fake_azure.set_secret("eg-b", "value-123456")
    async with _client(eventgrid, azure_env) as consumer:
        first = (await consumer.receive(max_events=1, max_wait_time=10))[0]
        await asyncio.sleep(0.6)
        second = (await consumer.receive(max_events=1, max_wait_time=10))[0]
        assert second.event.id == first.event.id
        assert second.broker_properties.delivery_count == 2
        lost = await consumer.acknowledge(lock_tokens=[first.broker_properties.lock_token])
        assert len(lost.failed_lock_tokens) == 1
        assert not lost.succeeded_lock_tokens
        released = await consumer.release(lock_tokens=[second.broker_properties.lock_token])
        assert released.succeeded_lock_tokens
        third = (await consumer.receive(max_events=1, max_wait_time=10))[0]
        assert third.broker_properties.delivery_count == 3
        rejected = await consumer.reject(lock_tokens=[third.broker_properties.lock_token])
        assert rejected.succeeded_lock_tokens
    assert eventgrid.pending() == 0
    assert eventgrid.settled("reject") == [first.event.id]


async def test_refusals_reach_the_sdk_as_errors(
    eventgrid: FakeEventGrid, azure_env: dict[str, str]
) -> None:
    eventgrid.fail(403)
    async with _client(eventgrid, azure_env) as consumer:
        with pytest.raises(HttpResponseError) as caught:
            await consumer.receive(max_events=1, max_wait_time=10)
        assert caught.value.status_code == 403
        with pytest.raises(HttpResponseError) as invalid:
            await consumer.receive(max_events=1, max_wait_time=5)  # the service's minimum is 10
        assert invalid.value.status_code == 400
