"""Realistic prompts (CloudFormation, a Terraform plan, kubectl, AWS CLI JSON, Azure resource
JSON, logs) mask to exactly the reviewed text beside them, and come back exactly."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from llmhub_gateway.masking.masker import Mapping, Masker, unmask
from llmhub_gateway.masking.recognizers import BUILTIN

CORPUS = Path(__file__).parent / "corpus"
SAMPLES = sorted(p for p in CORPUS.iterdir() if ".masked" not in p.name)
MASKER = Masker(BUILTIN)
# Values that must never survive masking, whatever sample they are in.
NEVER = (
    "i-0a12b34c56d78e90f",
    "123456789012",
    "210987654321",
    "acme-prod-data/",
    "acme-payments-exports",
    "orders-prod.c9akciq32hnm",
    "6c1e2a9f-3b7d-4e8a-9f21-0d5c7b3a8e41",
    "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "kv-payments-prod.vault",
    ".svc.cluster.local",
    ".internal",
    "10.244.3.17",
    "172.20.0.10",
    "fd12:3456",
    "fe80::",
    "169.254.169.254",
    "@acme-corp.com",
)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_sample_masks_as_reviewed_and_round_trips(sample: Path) -> None:
    text = sample.read_text()
    mapping = Mapping()
    masked = MASKER.mask(text, mapping, Counter())
    assert masked == sample.with_name(f"{sample.stem}.masked{sample.suffix}").read_text()
    for value in NEVER:
        assert value not in masked
    assert unmask(masked, mapping) == text
    if sample.suffix == ".json":  # placeholders keep JSON valid, both ways
        assert json.loads(masked)
        assert json.loads(unmask(masked, mapping)) == json.loads(text)


def test_public_and_local_values_are_left_alone() -> None:
    text = (
        "public 8.8.8.8 and 54.183.22.10, loopback 127.0.0.1 and ::1, any 0.0.0.0, version "
        "1.2.3.4.5, build 3.11.4, time 12:30:45, mac aa:bb:cc:dd:ee:ff, multicast 224.0.0.1, "
        "arn-like text, i-love-it, sg-short, the word subscription: none, s3 is a service"
    )
    assert MASKER.mask(text, Mapping(), Counter()) == text


def test_values_json_could_not_hold_are_not_masked() -> None:
    """A quote or backslash inside a value would break a JSON string it is put back into."""
    from llmhub_gateway.masking.recognizers import extra

    masker = Masker([extra("ticket", r'TCK-\d+"?')])
    masked = masker.mask('see TCK-12" and TCK-7', Mapping(), Counter())
    assert masked == 'see TCK-12" and [TICKET_1]'
