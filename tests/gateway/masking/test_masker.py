"""Placeholders: typed, the same per value within a session across turns, never clashing
with what the caller wrote; the streaming unmasker never emits half of one."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from llmhub_gateway.masking.masker import Mapping, Masker, unmask
from llmhub_gateway.masking.recognizers import BUILTIN, extra, select
from llmhub_gateway.masking.unmasker import StreamUnmasker

MASKER = Masker(BUILTIN)


def test_same_value_same_placeholder_on_every_turn() -> None:
    first = Mapping()
    one = MASKER.mask("ssh 10.0.0.7 then 10.0.0.8", first, Counter())
    assert one == "ssh [PRIVATE_IP_1] then [PRIVATE_IP_2]"
    stored = dict(first.added)  # what the store keeps
    second = Mapping.load(stored)
    two = MASKER.mask("and 10.0.0.8, 10.0.0.9, 10.0.0.7", second, Counter())
    assert two == "and [PRIVATE_IP_2], [PRIVATE_IP_3], [PRIVATE_IP_1]"
    assert second.added == {"[PRIVATE_IP_3]": "10.0.0.9"}  # only the new one is stored


def test_caller_text_shaped_like_a_placeholder_never_clashes() -> None:
    mapping = Mapping()
    counts: Counter[str] = Counter()
    text = "[AWS_EC2_1] is my note; the box is i-0123456789abcdef0; [MASK_LITERAL_1] too"
    masked = MASKER.mask(text, mapping, counts)
    assert masked == "[MASK_LITERAL_1] is my note; the box is [AWS_EC2_1]; [MASK_LITERAL_2] too"
    assert unmask(masked, mapping) == text
    assert counts == {"mask_literal": 2, "aws_ec2_instance": 1}
    # Unknown kinds are ordinary text (a Markdown footnote stays what it is).
    assert MASKER.mask("see [NOTE_1]", Mapping(), Counter()) == "see [NOTE_1]"


def test_invented_and_mangled_placeholders_stay() -> None:
    mapping = Mapping()
    MASKER.mask("host 10.1.2.3", mapping, Counter())
    odd = " [PRIVATE_IP_9] [private_ip_1] [PRIVATE_IP 1] [PRIVATE_IP_1"
    assert unmask("[PRIVATE_IP_1]" + odd, mapping) == "10.1.2.3" + odd


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_stream_never_emits_half_a_placeholder(size: int) -> None:
    mapping = Mapping()
    text = '{"host": "10.1.2.3", "vault": "kv1.vault.azure.net"} ['
    masked = MASKER.mask(text, mapping, Counter())
    stream = StreamUnmasker(mapping)
    released = []
    for at in range(0, len(masked), size):
        out = stream.feed(masked[at : at + size])
        assert "[PRIVATE_IP" not in out
        assert "[AZURE_KEY" not in out
        released.append(out)
    released.append(stream.flush())
    assert "".join(released) == text
    assert json.loads(text[:-2]) == {"host": "10.1.2.3", "vault": "kv1.vault.azure.net"}


def test_stream_flushes_an_unfinished_tail_as_it_is() -> None:
    mapping = Mapping()
    MASKER.mask("10.1.2.3", mapping, Counter())
    stream = StreamUnmasker(mapping)
    assert stream.feed("done [PRIVATE_IP_") == "done "
    assert stream.flush() == "[PRIVATE_IP_"


def test_unknown_recognizer_and_bad_extra_patterns_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown masking recognizer"):
        select(["private_ip", "aws_everything"])
    with pytest.raises(ValueError, match="not a valid regex"):
        extra("ticket", "(")
    with pytest.raises(ValueError, match="empty string"):
        extra("ticket", "x*")
    with pytest.raises(ValueError, match="built-in"):
        extra("email", "x+")


def test_selected_recognizers_only() -> None:
    masker = Masker([*select(["email"]), extra("ticket", r"TCK-\d{4,}")])
    masked = masker.mask("mail a@b.example, TCK-12345, host 10.0.0.1", Mapping(), Counter())
    assert masked == "mail [EMAIL_1], [TICKET_1], host 10.0.0.1"


def test_labelled_buckets_and_mapped_addresses() -> None:
    text = 'bucket = "acme-tf-state", Bucket: !Ref Data; ::ffff:10.0.0.1, ::ffff:8.8.8.8'
    masked = MASKER.mask(text, Mapping(), Counter())
    assert masked == 'bucket = "[S3_BUCKET_1]", Bucket: !Ref Data; [PRIVATE_IP_1], ::ffff:8.8.8.8'
