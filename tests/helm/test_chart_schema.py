"""Invalid values are rejected before anything renders, with a message that names the key."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.helm.conftest import render_values

# (values, text the error must contain)
INVALID_VALUES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "negative triton replicas": (
        {"triton": {"replicaCount": -1}},
        ["/triton/replicaCount", "minimum: got -1, want 0"],
    ),
    "negative gateway replicas": (
        {"gateway": {"replicaCount": -2}},
        ["/gateway/replicaCount", "minimum: got -2, want 0"],
    ),
    "pvc without claim": (
        {"triton": {"modelRepository": {"source": "pvc"}}},
        ["/triton/modelRepository/pvc/existingClaim", "minLength: got 0, want 1"],
    ),
    "object storage without url": (
        {"triton": {"modelRepository": {"source": "objectStorage"}}},
        ["/triton/modelRepository/objectStorage/url", "does not match pattern"],
    ),
    "object storage with http url": (
        {
            "triton": {
                "modelRepository": {
                    "source": "objectStorage",
                    "objectStorage": {"url": "https://bucket.example.com/repo"},
                }
            }
        },
        ["/triton/modelRepository/objectStorage/url", "does not match pattern"],
    ),
    "image without path": (
        {"triton": {"modelRepository": {"image": {"path": ""}}}},
        ["/triton/modelRepository/image/path", "does not match pattern"],
    ),
    "unknown repository source": (
        {"triton": {"modelRepository": {"source": "nfs"}}},
        [
            "/triton/modelRepository/source",
            "value must be one of 'image', 'pvc', 'objectStorage'",
        ],
    ),
    "repository source removed": (
        {"triton": {"modelRepository": {"source": None}}},
        ["/triton/modelRepository", "missing property 'source'"],
    ),
    "gpu enabled with zero gpus": (
        {"triton": {"gpu": {"enabled": True, "count": 0}}},
        ["/triton/gpu/count", "minimum: got 0, want 1"],
    ),
    "gpu resource name invalid": (
        {"triton": {"gpu": {"enabled": True, "resourceName": "gpu"}}},
        ["/triton/gpu/resourceName"],
    ),
    "cpu limit removed": (
        {"triton": {"resources": {"limits": {"cpu": None}}}},
        ["/triton/resources/limits", "missing property 'cpu'"],
    ),
    "memory request removed": (
        {"gateway": {"resources": {"requests": {"memory": None}}}},
        ["/gateway/resources/requests", "missing property 'memory'"],
    ),
    "malformed quantity": (
        {"triton": {"shmSize": "lots"}},
        ["/triton/shmSize", "does not match pattern"],
    ),
    "liveness success threshold above one": (
        {"triton": {"probes": {"liveness": {"successThreshold": 2}}}},
        ["/triton/probes/liveness/successThreshold", "value must be 1"],
    ),
    "probe period zero": (
        {"gateway": {"probes": {"readiness": {"periodSeconds": 0}}}},
        ["/gateway/probes/readiness/periodSeconds", "minimum: got 0, want 1"],
    ),
    "explicit mode without models": (
        {"triton": {"modelControlMode": "explicit"}},
        ["/triton/loadModels", "minItems: got 0, want 1"],
    ),
    "unknown model control mode": (
        {"triton": {"modelControlMode": "poll"}},
        ["/triton/modelControlMode", "value must be one of 'none', 'explicit'"],
    ),
    "autoscaler without metrics": (
        {"triton": {"autoscaling": {"enabled": True, "cpu": {"enabled": False}}}},
        ["/triton/autoscaling", "anyOf"],
    ),
    "negative exit timeout": (
        {"triton": {"exitTimeoutSeconds": -5}},
        ["/triton/exitTimeoutSeconds", "minimum: got -5, want 0"],
    ),
    "zero grace margin": (
        {"triton": {"shutdown": {"gracePeriodMarginSeconds": 0}}},
        ["/triton/shutdown/gracePeriodMarginSeconds", "minimum: got 0, want 1"],
    ),
    "zero surge": (
        {"gateway": {"rollingUpdate": {"maxSurge": 0}}},
        ["/gateway/rollingUpdate/maxSurge"],
    ),
    "zero request timeout": (
        {"gateway": {"config": {"requestTimeoutSeconds": 0}}},
        ["/gateway/config/requestTimeoutSeconds"],
    ),
    "unknown log level": (
        {"gateway": {"config": {"logLevel": "VERBOSE"}}},
        ["/gateway/config/logLevel", "value must be one of"],
    ),
    "token with whitespace": (
        {"gateway": {"auth": {"tokens": ["two words"]}}},
        ["/gateway/auth/tokens/0", "does not match pattern"],
    ),
    "secret name with capitals": (
        {"gateway": {"auth": {"existingSecret": "My_Secret"}}},
        ["/gateway/auth/existingSecret"],
    ),
    "metrics auth without scrape token": (
        {
            "gateway": {"config": {"metricsRequireAuth": True}},
            "metrics": {"serviceMonitor": {"enabled": True}},
        },
        ["/metrics/serviceMonitor/gatewayAuthorization/secretName", "minLength"],
    ),
    "misspelled key": (
        {"triton": {"replicas": 2}},
        ["/triton", "additional properties 'replicas' not allowed"],
    ),
    "unknown top-level key": (
        {"tritonn": {}},
        ["additional properties 'tritonn' not allowed"],
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_VALUES))
def test_schema_rejects(case: str) -> None:
    values, expected = INVALID_VALUES[case]
    with pytest.raises(helm.HelmValuesError) as caught:
        render_values(values)
    message = str(caught.value)
    for text in expected:
        assert text in message


def test_gpu_count_zero_allowed_without_gpu() -> None:
    rendering = render_values({"triton": {"gpu": {"enabled": False, "count": 0}}})
    assert rendering.one("Deployment", "triton")


@pytest.mark.parametrize(
    "repository",
    [
        {"source": "image", "image": {"path": "/opt/models"}},
        {"source": "pvc", "pvc": {"existingClaim": "models"}},
        {"source": "objectStorage", "objectStorage": {"url": "s3://bucket/repo"}},
        {"source": "objectStorage", "objectStorage": {"url": "gs://bucket/repo"}},
    ],
    ids=["image", "pvc", "s3", "gcs"],
)
def test_source_with_location_renders(repository: dict[str, Any]) -> None:
    rendering = render_values({"triton": {"modelRepository": repository}})
    assert rendering.one("Deployment", "triton")


@pytest.mark.parametrize("component", ["triton", "gateway"])
def test_max_replicas_below_min_fails(component: str) -> None:
    autoscaling = {"enabled": True, "minReplicas": 5, "maxReplicas": 3}
    with pytest.raises(helm.HelmRenderError) as caught:
        render_values({component: {"autoscaling": autoscaling}})
    message = str(caught.value)
    assert f"{component}.autoscaling.maxReplicas (3)" in message
    assert f"{component}.autoscaling.minReplicas (5)" in message
