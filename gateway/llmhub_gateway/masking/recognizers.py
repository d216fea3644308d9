"""What counts as an infrastructure identifier: regular expressions plus a validation step.

No model and no download: each recognizer has probes and an optional ``check`` that returns the
placeholder kind for a value or None to let it through (``ipaddress`` decides what is private).
A probe searches for a cheap anchor (a literal such as ``.svc.cluster.local``, ``arn:aws`` or
``@``, which ``re`` finds with a fast scan), then widens it to the left over the characters a
value may hold and matches the ``full`` pattern there; boundaries and labels (``AccountId:``)
are checked in Python on the rare hits. Patterns that start with a character class or a
look-behind make ``re`` try every position and were ten times slower (the bench's 10 KB target).
A probe's ``group`` is the part masked, so ``s3://`` stays and only the bucket goes.
A match that holds a quote, a backslash, whitespace or a control character is never masked:
its value could not be put back into a JSON string unescaped (see ``unmasker``).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

Check = Callable[[str], str | None]  # the value -> its placeholder kind, or None: not masked
_UNSAFE = re.compile(r'["\\\s\x00-\x1f\x7f]')
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_AZURE_SUFFIXES = (
    r"blob\.core\.windows\.net|queue\.core\.windows\.net|table\.core\.windows\.net"
    r"|file\.core\.windows\.net|dfs\.core\.windows\.net|web\.core\.windows\.net"
    r"|database\.windows\.net|servicebus\.windows\.net|redis\.cache\.windows\.net"
    r"|search\.windows\.net|azurewebsites\.net|azurecr\.io|azconfig\.io|azmk8s\.io"
    r"|documents\.azure\.com|postgres\.database\.azure\.com|mysql\.database\.azure\.com"
    r"|cognitiveservices\.azure\.com|openai\.azure\.com|azure-api\.net|azurefd\.net"
)


@dataclass(frozen=True, slots=True)
class Probe:
    anchor: re.Pattern[str]
    full: re.Pattern[str] | None = None  # matched where the widened value starts
    group: int = 0  # of ``full`` (or of ``anchor`` without one): the part masked
    left: frozenset[str] = frozenset()  # characters the value may extend over, leftwards
    boundary: re.Pattern[str] | None = None  # a character that must not precede the value
    label: re.Pattern[str] | None = None  # must end right before the anchor (``... \Z``)

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        last_end = -1
        for hit in self.anchor.finditer(text):
            if hit.start() < last_end:
                continue  # inside the value found last (an IPv6 address has many colons)
            if self.label is not None and not self.label.search(
                text, max(0, hit.start() - 48), hit.start()
            ):
                continue
            match: re.Match[str] | None = hit
            if self.full is not None:
                start = hit.start()
                while start and text[start - 1] in self.left:
                    start -= 1
                while start < hit.start() and text[start] in ".-":
                    start += 1
                match = self.full.match(text, start)
                if match is None or match.end() < hit.end():
                    continue
            assert match is not None
            begin = match.start()
            if begin and self.boundary is not None and self.boundary.match(text, begin - 1):
                continue
            start, end = match.span(self.group)
            if start < 0:
                continue
            last_end = end
            yield start, end


@dataclass(frozen=True, slots=True)
class Recognizer:
    name: str  # the setting's name (MASKING_RECOGNIZERS) and the metric label
    kind: str  # the placeholder kind when ``check`` does not choose one
    probes: tuple[Probe, ...]
    check: Check | None = None

    def find(self, text: str) -> Iterator[tuple[int, int, str]]:
        """(start, end, kind) of every value to mask in ``text``."""
        for probe in self.probes:
            for start, end in probe.find(text):
                value = text[start:end]
                if _UNSAFE.search(value):
                    continue
                kind = self.kind if self.check is None else self.check(value)
                if kind is not None:
                    yield start, end, kind


def _rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


_WORD = _rx(r"[\w-]")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_DIGITS = frozenset("0123456789")
_HEX_COLON = frozenset("0123456789abcdefABCDEF:")


_NETWORK_PREFIXES = "nat rtb igw eigw eni tgw tgw-attach vpce pcx eipalloc acl dopt lt fs"


def _aws_id(prefixes: str) -> tuple[Probe, ...]:
    """One probe per prefix: an alternation as the anchor would cost ``re`` its fast scan."""
    return tuple(
        Probe(_rx(rf"{prefix}-(?:[0-9a-f]{{17}}|[0-9a-f]{{8}})(?![\w-])"), boundary=_WORD)
        for prefix in prefixes.split()
    )


def _host(suffix: str) -> tuple[Probe, ...]:
    """A host name ending in ``suffix`` (a regex starting with an escaped dot)."""
    full = _rx(rf"{_LABEL}(?:\.{_LABEL})*?{suffix}\b(?![.-]\w)", re.IGNORECASE)
    return (Probe(_rx(suffix + r"\b", re.IGNORECASE), full, left=_HOST_CHARS),)


def _labelled(labels: str, value: str) -> tuple[Probe, ...]:
    """``<label>: <value>``, ``"<Label>": "<value>"``, ``<LABEL>_ID=<value>``. Each label is
    searched from its second letter (``ccount``, ``CCOUNT``: a literal ``re`` scans for fast)
    and its first letter checked before it; a leading ``=`` or ``:`` scan cost 50 times more."""
    probes = []
    for label in labels.split():
        for stem in (label[1:].lower(), label[1:].upper()):
            probes.append(
                Probe(
                    _rx(
                        rf"{stem}(?:[ _-]?(?:id|Id|ID|name|Name|NAME))?[\"']?\s*[:=]\s*[\"']?"
                        rf"({value})(?![\w-])"
                    ),
                    group=1,
                    label=_rx(rf"(?i:{label[0]})\Z"),
                )
            )
    return tuple(probes)


@functools.lru_cache(maxsize=4096)
def _private_ip(value: str) -> str | None:
    """Private, shared (100.64/10) and link-local addresses and networks; never loopback,
    multicast or the unspecified address (they name no one's infrastructure). Cached: every
    turn masks the session's history again, with the same addresses."""
    try:
        if "/" in value:
            net = ipaddress.ip_network(value.split("%", 1)[0], strict=False)
            addr = net.network_address
            kind = "PRIVATE_CIDR"
        else:
            addr = ipaddress.ip_address(value.split("%", 1)[0])
            kind = "PRIVATE_IP"
    except ValueError:
        return None
    if addr.is_loopback or addr.is_unspecified or addr.is_multicast:
        return None
    if addr.is_link_local:
        return "LINK_LOCAL_CIDR" if kind == "PRIVATE_CIDR" else "LINK_LOCAL_IP"
    shared = addr.version == 4 and addr in _SHARED
    return kind if addr.is_private or shared else None


_SHARED = ipaddress.ip_network("100.64.0.0/10")


def _bucket(value: str) -> str | None:
    if ".." in value or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value):
        return None
    return "S3_BUCKET"


_S3_HOST = r"s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com"
BUILTIN: tuple[Recognizer, ...] = (
    Recognizer(
        "aws_arn",
        "AWS_ARN",
        (
            Probe(
                _rx(
                    r"arn:aws(?:-cn|-us-gov|-iso[a-z-]*)?:[a-z0-9-]+:[a-z0-9-]*:(?:\d{12}|aws)?:"
                    r"[^\s\"'<>\\,;)\]}`]+"
                ),
                boundary=_WORD,
            ),
        ),
    ),
    Recognizer(
        "azure_resource_id",
        "AZURE_RESOURCE_ID",
        (
            Probe(
                _rx(
                    rf"/[sS]ubscriptions/{_GUID}(?i:/resourceGroups/[\w.()-]+)?"
                    r"(?i:/providers/[\w.-]+(?:/[\w.()-]+)*)?"
                )
            ),
        ),
    ),
    Recognizer("aws_ec2_instance", "AWS_EC2", _aws_id("i")),
    Recognizer("aws_ebs_volume", "AWS_EBS_VOLUME", _aws_id("vol")),
    Recognizer("aws_ebs_snapshot", "AWS_EBS_SNAPSHOT", _aws_id("snap")),
    Recognizer("aws_ami", "AWS_AMI", _aws_id("ami")),
    Recognizer("aws_vpc", "AWS_VPC", _aws_id("vpc")),
    Recognizer("aws_subnet", "AWS_SUBNET", _aws_id("subnet")),
    Recognizer("aws_security_group", "AWS_SECURITY_GROUP", _aws_id("sg")),
    Recognizer("aws_network_id", "AWS_RESOURCE", _aws_id(_NETWORK_PREFIXES)),
    Recognizer(
        "aws_account_id",
        "AWS_ACCOUNT",
        (
            *_labelled("account owner", r"\d{12}"),
            Probe(_rx(r"\.dkr\.ecr\."), _rx(r"(\d{12})\.dkr\.ecr\."), group=1, left=_DIGITS),
        ),
    ),
    Recognizer(
        "aws_s3_bucket",
        "S3_BUCKET",
        (
            Probe(_rx(rf"s3a?://({_BUCKET})"), group=1, boundary=_WORD),
            Probe(
                _rx(rf"\.{_S3_HOST}"),
                _rx(rf"({_BUCKET})\.{_S3_HOST}"),
                group=1,
                left=_HOST_CHARS,
            ),
            Probe(_rx(rf"{_S3_HOST}/({_BUCKET})"), group=1, boundary=_rx(r"[\w.-]")),
            *_labelled("bucket", _BUCKET),
        ),
        check=_bucket,
    ),
    Recognizer(
        "aws_rds_endpoint",
        "AWS_RDS",
        _host(
            r"\.(?:cluster-(?:ro-|custom-)?)?[a-z0-9]{12}\.[a-z0-9-]+\.rds\.amazonaws\.com(?:\.cn)?"
        ),
    ),
    Recognizer(
        "azure_subscription_id",
        "AZURE_SUBSCRIPTION",
        _labelled("subscription", _GUID),
    ),
    Recognizer(
        "azure_tenant_id",
        "AZURE_TENANT",
        (
            *_labelled("tenant", _GUID),
            Probe(_rx(rf"tid[\"']?\s*[:=]\s*[\"']?({_GUID})\b"), group=1, boundary=_WORD),
            Probe(_rx(rf"login\.microsoftonline\.com/({_GUID})\b"), group=1),
            Probe(_rx(rf"sts\.windows\.net/({_GUID})\b"), group=1),
        ),
    ),
    Recognizer(
        "azure_key_vault",
        "AZURE_KEY_VAULT",
        _host(r"\.vault\.(?:azure\.net|azure\.cn|usgovcloudapi\.net)"),
    ),
    Recognizer("azure_hostname", "AZURE_HOST", _host(rf"\.(?:{_AZURE_SUFFIXES})")),
    Recognizer("k8s_service", "K8S_SERVICE", _host(r"\.svc\.cluster\.local")),
    Recognizer("internal_hostname", "INTERNAL_HOST", _host(r"\.internal")),
    Recognizer(
        "private_ip",
        "PRIVATE_IP",
        (
            Probe(
                _rx(r"\.\d{1,3}\.\d{1,3}\.\d{1,3}"),
                _rx(r"(?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2})?(?!\w|\.\d)"),
                left=_DIGITS,
                boundary=_rx(r"[\w.:]"),
            ),
            Probe(
                _rx(r"::|:[0-9a-fA-F]{1,4}:"),
                _rx(
                    r"(?:[0-9a-fA-F]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F]{0,4})"
                    r"(?:%[\w.]+)?(?:/\d{1,3})?"
                    r"(?![\w:.])"
                ),
                left=_HEX_COLON,
                boundary=_rx(r"[\w.:]"),
            ),
        ),
        check=_private_ip,
    ),
    Recognizer(
        "email",
        "EMAIL",
        (
            Probe(
                _rx(r"@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b"),
                _rx(r"[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b"),
                left=frozenset(
                    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-"
                ),
            ),
        ),
    ),
)
NAMES: tuple[str, ...] = tuple(r.name for r in BUILTIN)
_EXTRA_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def select(names: Iterable[str]) -> tuple[Recognizer, ...]:
    """The built-in recognizers named (``all`` for every one), in their priority order; an
    unknown name is a ValueError listing the known ones (the gateway refuses to start)."""
    wanted = set(names)
    if "all" in wanted:
        return BUILTIN
    unknown = sorted(wanted - set(NAMES))
    if unknown:
        raise ValueError(
            f"unknown masking recognizer(s) {', '.join(unknown)}; known: all, {', '.join(NAMES)}"
        )
    return tuple(r for r in BUILTIN if r.name in wanted)


def extra(name: str, pattern: str) -> Recognizer:
    """An operator's own pattern (MASKING_EXTRA_PATTERNS): the whole match is masked as
    ``[<NAME>_<n>]``. A bad name or a regex that does not compile is a ValueError."""
    if not _EXTRA_NAME.fullmatch(name) or name in NAMES or name == "all":
        raise ValueError(
            f"extra masking pattern name '{name}' must be lower-case letters, digits and _ "
            "(at most 40, starting with a letter) and not a built-in recognizer's name"
        )
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"extra masking pattern '{name}' is not a valid regex: {exc}") from None
    if compiled.match(""):
        raise ValueError(f"extra masking pattern '{name}' matches the empty string")
    return Recognizer(name, name.upper(), (Probe(compiled),))
