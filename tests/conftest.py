"""Fixtures every test area may use: the real Kubernetes control plane tier."""

from tests.k8s.fixtures import control_plane, k8s  # noqa: F401
