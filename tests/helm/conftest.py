"""Render the Helm chart offline, once per values set, and parse the manifests.

Rendering goes through Helm's Go SDK (helm-python-sdk), which coalesces the
values with the chart defaults and validates them against values.schema.json,
as `helm install` does. No cluster is contacted.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "triton-qa"
RELEASE = "qa"
NAMESPACE = "inference"
KUBERNETES_VERSIONS = ("1.28", "1.29", "1.30", "1.31")
PREFIX = f"{RELEASE}-triton-qa"

# Values sets that the tests render: the defaults and each major option.
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "gpu": {
        "triton": {
            "gpu": {"enabled": True, "count": 2, "nodeSelector": {"gpu": "h100"}},
            "runtimeClassName": "nvidia",
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        }
    },
    "pvc": {
        "triton": {
            "modelRepository": {
                "source": "pvc",
                "pvc": {"existingClaim": "qa-models", "subPath": "repo"},
            }
        }
    },
    "s3": {
        "triton": {
            "modelRepository": {
                "source": "objectStorage",
                "objectStorage": {
                    "url": "s3://qa-bucket/repo",
                    "credentialsSecret": "qa-s3-keys",
                },
            }
        }
    },
    "gcs": {
        "triton": {
            "modelRepository": {
                "source": "objectStorage",
                "objectStorage": {
                    "url": "gs://qa-bucket/repo",
                    "credentialsFileSecret": {"name": "qa-gcs-key", "key": "key.json"},
                },
            }
        }
    },
    "workload-identity": {
        "triton": {
            "modelRepository": {
                "source": "objectStorage",
                "objectStorage": {"url": "s3://qa-bucket/repo"},
            },
            "serviceAccount": {
                "annotations": {
                    "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/qa"
                }
            },
        }
    },
    "ingress": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": ["qa.example.com"],
            "tls": [{"secretName": "qa-tls", "hosts": ["qa.example.com"]}],
        }
    },
    "ingress-any-host": {"ingress": {"enabled": True}},
    "queue-time-hpa": {
        "triton": {
            "autoscaling": {
                "enabled": True,
                "minReplicas": 2,
                "maxReplicas": 6,
                "cpu": {"enabled": False},
                "queueTime": {
                    "enabled": True,
                    "targetAverageValue": "150k",
                    "matchLabels": {"model": "deepset--roberta-base-squad2_model"},
                },
            }
        },
        "gateway": {"autoscaling": {"enabled": True}},
    },
    "cpu-hpa": {"triton": {"autoscaling": {"enabled": True}}},
    "service-monitor": {
        "metrics": {
            "serviceMonitor": {
                "enabled": True,
                "labels": {"release": "prometheus"},
                "gatewayAuthorization": {"secretName": "qa-metrics-token"},
            }
        },
        "gateway": {"config": {"metricsRequireAuth": True}},
    },
    "existing-secret": {
        "gateway": {
            "auth": {"existingSecret": "qa-api-tokens", "existingSecretKey": "api"}
        }
    },
    "created-secret": {"gateway": {"auth": {"tokens": ["alpha-token", "beta-token"]}}},
    "auth-disabled": {"gateway": {"auth": {"enabled": False}}},
    "explicit-models": {
        "triton": {
            "modelControlMode": "explicit",
            "loadModels": ["deepset--roberta-base-squad2"],
            "extraArgs": ["--metrics-config=summary_latencies=true"],
        }
    },
    "tuned": {
        "commonLabels": {"team": "nlp"},
        "triton": {
            "podLabels": {"tier": "inference"},
            "podAnnotations": {"example.com/owner": "nlp"},
            "exitTimeoutSeconds": 120,
            "shutdown": {"preStopSleepSeconds": 20},
            "shmSize": "4Gi",
            "probes": {
                "liveness": {"enabled": False},
                "startup": {"failureThreshold": 180, "path": "/v2/health/ready"},
            },
        },
        "gateway": {
            "config": {
                "requestTimeoutSeconds": 12.5,
                "maxBodyBytes": 4194304,
                "maxInFlight": 128,
                "maxBatchInputs": 8,
                "defaultModel": "deepset/roberta-base-squad2",
                "logLevel": "DEBUG",
            },
            "probes": {"startup": {"enabled": False}, "readiness": {"enabled": False}},
            "podDisruptionBudget": {"enabled": False},
        },
        "networkPolicy": {"enabled": False},
        "metrics": {"prometheusAnnotations": False},
    },
    "custom-images": {
        "imagePullSecrets": [{"name": "registry-credentials"}],
        "triton": {
            "image": {
                "repository": "registry.example.com/triton-qa-triton",
                "tag": "0.1.0-24.10",
                "pullPolicy": "Always",
            }
        },
        "gateway": {"image": {"repository": "registry.example.com/triton-qa-gateway"}},
    },
    "long-release-name": {},
}

# Scenarios rendered under another release name.
RELEASE_NAMES = {"long-release-name": "a" * 53}


@dataclass(frozen=True)
class Rendering:
    """One rendered values set: raw manifests by template path, and parsed objects."""

    manifests: dict[str, str]
    objects: list[dict[str, Any]]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, component: str) -> dict[str, Any]:
        """Return the single object of this kind and app.kubernetes.io/component."""
        found = [
            obj
            for obj in self.of_kind(kind)
            if obj["metadata"]["labels"]["app.kubernetes.io/component"] == component
        ]
        assert len(found) == 1, f"expected one {kind} of {component}, got {len(found)}"
        return found[0]

    def maybe(self, kind: str, component: str) -> dict[str, Any] | None:
        found = [
            obj
            for obj in self.of_kind(kind)
            if obj["metadata"]["labels"]["app.kubernetes.io/component"] == component
        ]
        return found[0] if found else None

    def manifest(self, template: str) -> str:
        """Return the raw output of one template, e.g. "gateway/configmap.yaml"."""
        return self.manifests[f"triton-qa/templates/{template}"]


def chart_metadata() -> dict[str, Any]:
    """Return the parsed Chart.yaml."""
    return yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))


@functools.cache
def load_chart() -> helm.Chart:
    return helm.Chart.load(CHART_DIR)


def render_values(values: dict[str, Any], release: str = RELEASE) -> Rendering:
    """Render the chart with values; raises helm.HelmError as `helm install` would."""
    manifests = load_chart().render(values, name=release, namespace=NAMESPACE)
    objects = []
    for path, text in sorted(manifests.items()):
        if not path.endswith(".yaml"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    notes = manifests.get("triton-qa/templates/NOTES.txt", "")
    return Rendering(manifests=manifests, objects=objects, notes=notes)


@functools.cache
def render_scenario(name: str) -> Rendering:
    return render_values(SCENARIOS[name], RELEASE_NAMES.get(name, RELEASE))


@pytest.fixture(params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def rendering(scenario: str) -> Rendering:
    return render_scenario(scenario)


def pod_specs(rendering: Rendering) -> list[dict[str, Any]]:
    return [obj["spec"]["template"]["spec"] for obj in rendering.of_kind("Deployment")]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    """Return the only container of a Deployment."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def triton_args(rendering: Rendering) -> dict[str, list[str]]:
    """Return tritonserver's --flag=value arguments as {flag: [values]}."""
    args = container(rendering.one("Deployment", "triton"))["args"]
    assert args[0] == "tritonserver"
    parsed: dict[str, list[str]] = {}
    for arg in args[1:]:
        flag, _, value = arg.partition("=")
        parsed.setdefault(flag, []).append(value)
    return parsed
