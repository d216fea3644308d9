"""Property: unmask(mask(x)) == x for arbitrary text with identifiers inserted at random places
(and placeholder-shaped text of the caller's own), streamed back in random chunks; identifiers
standing alone never reach the masked text."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from llmhub_gateway.masking.masker import Mapping, Masker
from llmhub_gateway.masking.recognizers import BUILTIN
from llmhub_gateway.masking.unmasker import StreamUnmasker

MASKER = Masker(BUILTIN)
IDENTIFIERS = (
    "i-0123456789abcdef0",
    "vol-049df61146c4d7901",
    "sg-12ab34cd",
    "arn:aws:iam::123456789012:role/app",
    "s3://acme-data-lake/raw",
    "orders.c9akciq32hnm.eu-west-1.rds.amazonaws.com",
    "/subscriptions/6c1e2a9f-3b7d-4e8a-9f21-0d5c7b3a8e41/resourceGroups/rg-a",
    "kv-prod.vault.azure.net",
    "api.payments.svc.cluster.local",
    "ip-10-0-1-5.ec2.internal",
    "10.20.30.40",
    "192.168.0.0/16",
    "fd00::17",
    "fe80::1ff:fe23:4567:890a",
    "ops@acme-corp.com",
    "[AWS_EC2_1]",
    "[PRIVATE_IP_2]",
    "[MASK_LITERAL_1]",
)
pieces = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="[]_:./-@ AWSPRIVATE0123456789abcdef", max_size=12),
    st.sampled_from(IDENTIFIERS),
)


def _stream(masked: str, cuts: list[int], mapping: Mapping) -> str:
    stream = StreamUnmasker(mapping)
    out, last = [], 0
    for cut in sorted(c % (len(masked) + 1) for c in cuts):
        out.append(stream.feed(masked[last:cut]))
        last = cut
    out.append(stream.feed(masked[last:]))
    out.append(stream.flush())
    return "".join(out)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(pieces, max_size=16), st.lists(st.integers(min_value=0), max_size=12))
def test_round_trip_streamed_at_random_boundaries(parts: list[str], cuts: list[int]) -> None:
    text = "".join(parts)
    mapping = Mapping()
    masked = MASKER.mask(text, mapping, Counter())
    assert _stream(masked, cuts, mapping) == text


@settings(max_examples=60, deadline=None, database=None)
@given(
    st.lists(st.sampled_from(IDENTIFIERS[:15]), min_size=1, max_size=6),
    st.lists(st.text(alphabet="abc xyz\n,;()", max_size=8), min_size=7, max_size=7),
)
def test_identifiers_standing_alone_never_reach_the_provider(
    ids: list[str], fillers: list[str]
) -> None:
    text = "".join(f"{fillers[i]} {ident} " for i, ident in enumerate(ids)) + fillers[-1]
    mapping = Mapping()
    masked = MASKER.mask(text, mapping, Counter())
    for ident in ids:
        assert ident not in masked
    # The next turn (its placeholders reloaded) masks the same values the same way.
    again = Mapping.load(dict(mapping.by_placeholder))
    assert MASKER.mask(text, again, Counter()) == masked
    assert not again.added
