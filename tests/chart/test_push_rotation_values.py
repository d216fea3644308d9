"""operator.eventGrid: off by default; when set, the operator gets exactly the settings it reads."""

from __future__ import annotations

from tests.chart.conftest import container, env_of, one, render

ENDPOINT = "https://hub-events.westeurope-1.eventgrid.azure.net"


def test_push_rotation_is_off_by_default_and_its_values_reach_the_operator() -> None:
    default = env_of(container(one(render(), "Deployment", "-operator")))
    assert not [name for name in default if name.startswith("LLMHUB_EVENTGRID_")]

    sets = (
        f"operator.eventGrid.endpoint={ENDPOINT}",
        "operator.eventGrid.topic=keyvault",
        "operator.eventGrid.subscription=operator",
        "operator.eventGrid.fallbackIntervalSeconds=120",
    )
    env = env_of(container(one(render(sets=sets), "Deployment", "-operator")))
    values = {name: env[name]["value"] for name in env if name.startswith("LLMHUB_EVENTGRID_")}
    assert values == {
        "LLMHUB_EVENTGRID_ENDPOINT": ENDPOINT,
        "LLMHUB_EVENTGRID_TOPIC": "keyvault",
        "LLMHUB_EVENTGRID_SUBSCRIPTION": "operator",
        "LLMHUB_EVENTGRID_MAX_WAIT_SECONDS": "60",
        "LLMHUB_EVENTGRID_FALLBACK_INTERVAL_SECONDS": "120",
    }
