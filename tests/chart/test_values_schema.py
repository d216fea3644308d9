"""values.schema.json: rejects bad values with a message naming the key, and matches values.yaml."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.chart.conftest import CHART, run_helm

SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
GOOD_PROVIDER = (
    "providers[0].name=claude",
    "providers[0].provider=claude",
    "providers[0].vaultUrl=https://kv.vault.azure.net",
    "providers[0].secretName=claude-oauth-token",
)


def _template(*sets: str) -> tuple[int, str]:
    args = ["template", "hub", str(CHART), "-n", "hub"]
    for s in sets:
        args += ["--set", s]
    done = run_helm(*args)
    return done.returncode, done.stderr


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (("redis.external.url=redis://cache:6379/0",), "redis.external.url"),
        (("redis.external.existingSecret=redis-url",), "redis.external.existingSecret"),
        (("gateway.securityContext.readOnlyRootFilesystem=false",), "readOnlyRootFilesystem"),
        (("gateway.securityContext.allowPrivilegeEscalation=true",), "allowPrivilegeEscalation"),
        (("operator.podSecurityContext.runAsNonRoot=false",), "runAsNonRoot"),
        (("gateway.strategy.maxSurge=0",), "gateway.strategy.maxSurge"),
        (("operator.logLevel=LOUD",), "operator.logLevel"),
        (("operator.azure.clientId=not-a-guid",), "operator.azure.clientId"),
        (("operator.azure.authorityHost=http://login.example",), "operator.azure.authorityHost"),
        (("gateway.replicaCount=0",), "gateway.replicaCount"),
        (("gateway.sevice.port=80",), "Additional property sevice is not allowed"),
        (("redis.auth.password=p@ss/word",), "redis.auth.password"),
        (
            (*GOOD_PROVIDER[:1], "providers[0].provider=openai", *GOOD_PROVIDER[2:]),
            "must be one of",
        ),
        (
            (*GOOD_PROVIDER[:2], "providers[0].vaultUrl=http://kv.example", GOOD_PROVIDER[3]),
            "providers.0.vaultUrl",
        ),
        (GOOD_PROVIDER[:3], "secretName is required"),
        ((*GOOD_PROVIDER, "providers[0].refreshInterval=often"), "providers.0.refreshInterval"),
        ((*GOOD_PROVIDER, "providers[0].name=Claude_1"), "providers.0.name"),
        (("operator.leaderElection.retryPeriodSeconds=0",), "retryPeriodSeconds"),
        (("operator.peering.enabled=true",), "Additional property peering is not allowed"),
        (("crds.install=yes",), "crds.install"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(sets: tuple[str, ...], expected: str) -> None:
    code, stderr = _template(*sets)
    assert code != 0
    assert "values don't meet the specifications of the schema" in stderr
    assert expected in stderr


def test_good_provider_values_pass_the_schema() -> None:
    code, stderr = _template(*GOOD_PROVIDER)
    assert code == 0, stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("redis.auth.enabled=true",), "redis.auth.enabled=true needs redis.auth.password"),
        (
            (
                *GOOD_PROVIDER,
                "providers[1].name=claude",
                *(s.replace("[0]", "[1]") for s in GOOD_PROVIDER[1:]),
            ),
            'the name "claude" appears twice',
        ),
        (
            ("operator.replicaCount=2", "operator.leaderElection.enabled=false"),
            "operator.replicaCount > 1 needs operator.leaderElection.enabled=true",
        ),
        (
            ("operator.leaderElection.renewDeadlineSeconds=15",),
            "renewDeadlineSeconds must be less than leaseDurationSeconds",
        ),
        (
            ("operator.leaderElection.retryPeriodSeconds=9",),  # 10 s is not > 1.2 x 9 s
            "renewDeadlineSeconds must exceed 1.2 x retryPeriodSeconds",
        ),
        (
            ("operator.azure.verifyChallengeResource=false",),  # a stand-in must be named
            "verifyChallengeResource=false needs operator.keyVault.allowedVaults",
        ),
        (
            ("operator.metrics.port=8080",),  # the health port's default
            "operator.metrics.port and operator.health.port are both 8080",
        ),
        (
            ("operator.serviceAccount.create=false",),  # it would bind the rights to "default"
            "operator.serviceAccount.create=false needs operator.serviceAccount.name",
        ),
        (
            (*GOOD_PROVIDER, "operator.watchNamespaces={team-a}"),
            "providers are created in the release namespace hub, which "
            "operator.watchNamespaces does not include",
        ),
        (
            ("operator.eventGrid.endpoint=https://ns.westeurope-1.eventgrid.azure.net",),
            "operator.eventGrid.endpoint needs operator.eventGrid.topic and .subscription",
        ),
    ],
)
def test_combinations_the_schema_cannot_express_fail_with_a_clear_message(
    sets: tuple[str, ...], message: str
) -> None:
    code, stderr = _template(*sets)
    assert code != 0
    assert message in stderr


def test_values_that_can_work_render() -> None:
    """The refusals above are exact: their neighbours that can work still render."""
    for sets in (
        ("operator.metrics.port=9191",),
        ("operator.serviceAccount.create=false", "operator.serviceAccount.name=ops"),
        (*GOOD_PROVIDER, "operator.watchNamespaces={team-a,hub}"),
        ("operator.watchNamespaces={team-a}",),  # no providers of the chart's own
    ):
        code, stderr = _template(*sets)
        assert code == 0, stderr


def test_token_grants_are_refused_in_kube_system() -> None:
    args = ["template", "hub", str(CHART), "-n", "kube-system"]
    args += ["--set", "operator.keyVault.tokenRequestServiceAccounts={kv-reader}"]
    done = run_helm(*args)
    assert done.returncode != 0
    assert "tokenRequestServiceAccounts: never in kube-system" in done.stderr
    assert run_helm("template", "hub", str(CHART), "-n", "kube-system").returncode == 0


def _schema_paths(node: dict[str, Any], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.add(path)
        if (
            sub.get("type") == "object"
            and "properties" in sub
            and sub.get("additionalProperties") is False
        ):
            paths |= _schema_paths(sub, f"{path}.")
    return paths


def _value_paths(node: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Keys of values.yaml, descending only where the schema describes a closed object."""
    paths: set[str] = set()
    for key, value in node.items():
        path = f"{prefix}{key}"
        paths.add(path)
        sub = schema.get("properties", {}).get(key, {})
        if isinstance(value, dict) and sub.get("additionalProperties") is False:
            paths |= _value_paths(value, sub, f"{path}.")
    return paths


def test_schema_and_values_yaml_name_the_same_keys() -> None:
    in_schema = _schema_paths(SCHEMA)
    in_values = _value_paths(VALUES, SCHEMA)
    assert in_values - in_schema == set(), "keys in values.yaml missing from the schema"
    assert in_schema - in_values == set(), "keys in the schema missing from values.yaml"
    assert len(in_values) > 100


def test_every_object_in_the_schema_is_closed() -> None:
    """An open object would let a typo through silently, which the key check above cannot see."""
    open_objects = [
        p
        for p in _schema_paths(SCHEMA)
        if _lookup(SCHEMA, p).get("type") == "object"
        and "properties" in _lookup(SCHEMA, p)
        and _lookup(SCHEMA, p).get("additionalProperties") is not False
        and not p.endswith(("SecurityContext", "securityContext"))
    ]
    assert open_objects == ["global"], "only global is open: a parent chart's globals reach it"


def test_global_accepts_keys_of_a_parent_chart_and_still_checks_its_own() -> None:
    code, stderr = _template("global.somethingElse=1", "global.parent.registry=x")
    assert code == 0, stderr
    code, stderr = _template("global.imageRegistry[0]=x")
    assert code != 0
    assert "global.imageRegistry" in stderr


def _lookup(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in path.split("."):
        node = node["properties"][part]
    return node


def _has_doc_comment(lines: list[str], i: int) -> bool:
    j = i - 1
    while j >= 0 and lines[j].strip().startswith("#"):
        if lines[j].strip().startswith("# --"):
            return True
        j -= 1
    return False


def test_every_value_has_a_doc_comment() -> None:
    """Each leaf key, or a block above it, carries a `# -- ` comment, as helm-docs reads it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the open blocks
    missing = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = _has_doc_comment(lines, i) or any(d for _, d in stack)
        key, _, rest = stripped.partition(":")
        if rest.strip() == "":
            stack.append((indent, documented))
        elif not documented:
            missing.append(key)
    assert missing == []


def test_schema_is_valid_draft_07_and_accepts_the_defaults() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(VALUES, SCHEMA)
