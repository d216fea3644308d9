"""The masking fields of both CRDs on the real API server: what the gateway accepts is
admitted, a recognizer it does not know or an extra pattern name it would refuse is not."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client

from llmhub_common.contract import API_GROUP, API_VERSION
from tests.fakes.fake_azure import FakeAzure
from tests.k8s.kube import RealKube
from tests.operator.k8s.test_llmgateways import PLURAL, create_gateway, read_gateway


async def test_gateway_masking_is_admitted_and_bad_names_are_refused(k8s: RealKube) -> None:
    masking = {"enabled": True, "recognizers": ["private_ip"], "extraPatterns": {"t_1": "T-[0-9]+"}}
    await create_gateway(k8s, "masked", k8s.namespace, providers={"names": ["c"]}, masking=masking)
    stored = await read_gateway(k8s, "masked", k8s.namespace)
    assert stored["spec"]["masking"] == masking
    for bad, words in (
        ({"recognizers": ["aws_ec3"]}, "Unsupported value"),
        ({"extraPatterns": {"Bad-Name": "x"}}, "extraPatterns names are lower-case"),
        ({"extraPatterns": {"aws_arn": "x"}}, "must not be all or a built-in"),
    ):
        with pytest.raises(client.ApiException) as refused:
            await create_gateway(k8s, "bad", k8s.namespace, providers={"names": ["c"]}, masking=bad)
        assert refused.value.status == 422
        assert words in refused.value.body
    with pytest.raises(client.ApiException):
        await k8s.custom.get_namespaced_custom_object(
            API_GROUP, API_VERSION, k8s.namespace, PLURAL, "bad"
        )


async def test_provider_masking_is_admitted_and_an_unknown_recognizer_is_refused(
    k8s: RealKube, fake_azure: FakeAzure
) -> None:
    created = await k8s.create_provider(
        "claude", fake_azure.base_url, masking={"enabled": True, "recognizers": ["email"]}
    )
    assert created["spec"]["masking"] == {"enabled": True, "recognizers": ["email"]}
    with pytest.raises(client.ApiException) as refused:
        await k8s.create_provider(
            "other", fake_azure.base_url, masking={"enabled": True, "recognizers": ["nope"]}
        )
    assert refused.value.status == 422
    with pytest.raises(client.ApiException) as missing:
        await k8s.create_provider("third", fake_azure.base_url, masking={"recognizers": ["email"]})
    assert missing.value.status == 422
    assert "enabled" in missing.value.body
