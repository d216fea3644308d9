"""The optional CA bundle is a build input only: the build stages trust it (the downloads here
pass a TLS-intercepting proxy, so the images would not build without it), and no final image
holds a copy of it, in any file or in its configuration."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.containers.engine import Engine
from tests.containers.images import BUILD_CA, CA_MARKER, COMPONENTS, Images, tag


def test_the_build_was_handed_the_host_ca_bundle(images: Images) -> None:
    assert BUILD_CA.read_text().startswith(f"# {CA_MARKER}\n")
    assert "BEGIN CERTIFICATE" in BUILD_CA.read_text()


@pytest.mark.parametrize("component", COMPONENTS)
def test_no_copy_of_the_ca_bundle_is_left_in_the_final_image(
    images: Images, engine: Engine, component: str
) -> None:
    config = json.loads(engine.docker("image", "inspect", tag(component)).stdout)[0]["Config"]
    env = {e.split("=", 1)[0] for e in config["Env"] or []}
    assert not env & {"PIP_CERT", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"}, env
    created = engine.docker("create", tag(component)).stdout.decode().strip()
    try:
        export = subprocess.Popen(
            ["docker", "export", created], env=engine.env, stdout=subprocess.PIPE
        )
        assert export.stdout is not None
        marker, tail, total = CA_MARKER.encode(), b"", 0
        while chunk := export.stdout.read(1 << 20):
            assert marker not in tail + chunk, f"{component}: the build CA is in the image"
            for name in (b"tmp/build-ca", b"build-ca.crt"):
                assert name not in tail + chunk, f"{component}: {name!r} is in the image"
            tail, total = chunk[-64:], total + len(chunk)
        assert export.wait() == 0
        assert total > 50_000_000  # the whole filesystem was read
    finally:
        engine.docker("rm", "-f", created, check=False)
