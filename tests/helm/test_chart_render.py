"""Properties of the rendered chart, checked on the parsed objects of every values set."""

from __future__ import annotations

import base64
import hashlib

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.helm.conftest import (
    CHART_DIR,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    RELEASE,
    SCENARIOS,
    Rendering,
    chart_metadata,
    container,
    pod_specs,
    render_scenario,
    render_values,
    triton_args,
)

STANDARD_LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
)
SELECTOR_KEYS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
}
# Kinds that kubernetes-validate has no schema for (Prometheus Operator CRDs).
CUSTOM_KINDS = {"ServiceMonitor"}
GPU_RESOURCE = "nvidia.com/gpu"


def test_lint_strict(scenario: str) -> None:
    report = helm.lint(CHART_DIR, SCENARIOS[scenario], strict=True, namespace=NAMESPACE)
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == []
    assert findings == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_objects_match_kubernetes_schema(rendering: Rendering, version: str) -> None:
    validated = 0
    for obj in rendering.objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(f"{name} is invalid for Kubernetes {version}: {path}: {error}")
        validated += 1
    # Every values set has two Deployments, Services and ServiceAccounts and a ConfigMap.
    assert validated >= 7


def test_schema_versions_are_shipped() -> None:
    for version in KUBERNETES_VERSIONS:
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
        assert kubernetes_validate.validate(obj, version, strict=True) == version


def test_every_object_has_standard_labels(rendering: Rendering) -> None:
    release = rendering.one("Deployment", "triton")["metadata"]["labels"][
        "app.kubernetes.io/instance"
    ]
    for obj in rendering.objects:
        labels = obj["metadata"]["labels"]
        missing = [key for key in STANDARD_LABELS if key not in labels]
        assert missing == [], f"{obj['kind']}/{obj['metadata']['name']}"
        assert labels["app.kubernetes.io/name"] == "triton-qa"
        assert labels["app.kubernetes.io/instance"] == release
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/component"] in {"triton", "gateway"}
        assert obj["metadata"]["namespace"] == NAMESPACE


def test_common_and_pod_labels() -> None:
    rendering = render_scenario("tuned")
    for obj in rendering.objects:
        assert obj["metadata"]["labels"]["team"] == "nlp"
    template = rendering.one("Deployment", "triton")["spec"]["template"]["metadata"]
    assert template["labels"]["tier"] == "inference"
    assert template["labels"]["team"] == "nlp"
    assert template["annotations"] == {"example.com/owner": "nlp"}
    selector = rendering.one("Deployment", "triton")["spec"]["selector"]["matchLabels"]
    assert "team" not in selector
    assert "tier" not in selector


def test_names_and_labels_fit_kubernetes_limits(rendering: Rendering) -> None:
    for obj in rendering.objects:
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
        for value in obj["metadata"]["labels"].values():
            assert len(str(value)) <= 63, value


def test_long_release_name_is_truncated() -> None:
    rendering = render_scenario("long-release-name")
    names = {obj["metadata"]["name"] for obj in rendering.of_kind("Deployment")}
    assert len(names) == 2
    assert all(name.endswith(("-triton", "-gateway")) for name in names)


def test_selectors_use_name_instance_component(rendering: Rendering) -> None:
    for kind in ("Deployment", "PodDisruptionBudget"):
        for obj in rendering.of_kind(kind):
            selector = obj["spec"]["selector"]["matchLabels"]
            assert set(selector) == SELECTOR_KEYS
    for service in rendering.of_kind("Service"):
        assert set(service["spec"]["selector"]) == SELECTOR_KEYS
    for policy in rendering.of_kind("NetworkPolicy"):
        assert set(policy["spec"]["podSelector"]["matchLabels"]) == SELECTOR_KEYS


def test_selectors_match_their_pods(rendering: Rendering) -> None:
    for component in ("triton", "gateway"):
        deployment = rendering.one("Deployment", component)
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selectors = [
            deployment["spec"]["selector"]["matchLabels"],
            rendering.one("Service", component)["spec"]["selector"],
        ]
        budget = rendering.maybe("PodDisruptionBudget", component)
        if budget is not None:
            selectors.append(budget["spec"]["selector"]["matchLabels"])
        for selector in selectors:
            assert selector["app.kubernetes.io/component"] == component
            assert selector.items() <= pod_labels.items()


def test_pods_are_hardened(rendering: Rendering) -> None:
    for spec in pod_specs(rendering):
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] > 0
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for item in spec["containers"]:
            context = item["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["privileged"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_writable_tmp_is_an_empty_dir(rendering: Rendering) -> None:
    for spec in pod_specs(rendering):
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        mounts = {
            m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]
        }
        assert "sizeLimit" in volumes[mounts["/tmp"]]["emptyDir"]


def test_service_accounts_do_not_mount_tokens(rendering: Rendering) -> None:
    accounts = rendering.of_kind("ServiceAccount")
    assert {
        a["metadata"]["labels"]["app.kubernetes.io/component"] for a in accounts
    } == {
        "triton",
        "gateway",
    }
    for account in accounts:
        assert account["automountServiceAccountToken"] is False
    for component in ("triton", "gateway"):
        spec = rendering.one("Deployment", component)["spec"]["template"]["spec"]
        account = rendering.one("ServiceAccount", component)
        assert spec["serviceAccountName"] == account["metadata"]["name"]


def test_resources_always_set(rendering: Rendering) -> None:
    for spec in pod_specs(rendering):
        for item in spec["containers"]:
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(item["resources"][bound])


def test_gpu_requests_equal_limits() -> None:
    rendering = render_scenario("gpu")
    resources = container(rendering.one("Deployment", "triton"))["resources"]
    assert resources["requests"][GPU_RESOURCE] == 2
    assert resources["limits"][GPU_RESOURCE] == 2
    spec = rendering.one("Deployment", "triton")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"gpu": "h100"}
    assert spec["runtimeClassName"] == "nvidia"
    tolerations = spec["tolerations"]
    assert {"key": "dedicated", "operator": "Exists"} in tolerations
    assert {
        "key": GPU_RESOURCE,
        "operator": "Exists",
        "effect": "NoSchedule",
    } in tolerations


def test_cpu_variant_requests_no_gpu() -> None:
    rendering = render_scenario("default")
    for spec in pod_specs(rendering):
        for item in spec["containers"]:
            for bound in ("requests", "limits"):
                assert GPU_RESOURCE not in item["resources"][bound]
        assert "tolerations" not in spec
        assert "runtimeClassName" not in spec


@pytest.mark.parametrize(
    ("scenario_name", "size"), [("default", "1Gi"), ("tuned", "4Gi")]
)
def test_dev_shm_is_memory_backed(scenario_name: str, size: str) -> None:
    deployment = render_scenario(scenario_name).one("Deployment", "triton")
    spec = deployment["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"] == {
        "medium": "Memory",
        "sizeLimit": size,
    }


def test_triton_command_line(rendering: Rendering) -> None:
    args = triton_args(rendering)
    assert args["--http-port"] == ["8000"]
    assert args["--grpc-port"] == ["8001"]
    assert args["--metrics-port"] == ["8002"]
    assert args["--strict-readiness"] == ["true"]
    assert len(args["--model-repository"]) == 1
    assert int(args["--exit-timeout-secs"][0]) >= 0


def test_explicit_model_control_loads_listed_models() -> None:
    args = triton_args(render_scenario("explicit-models"))
    assert args["--model-control-mode"] == ["explicit"]
    assert args["--load-model"] == ["deepset--roberta-base-squad2"]
    assert args["--metrics-config"] == ["summary_latencies=true"]
    assert "--load-model" not in triton_args(render_scenario("default"))


def test_ports_are_named(rendering: Rendering) -> None:
    triton = rendering.one("Service", "triton")
    ports = {port["name"]: port for port in triton["spec"]["ports"]}
    assert {name: port["targetPort"] for name, port in ports.items()} == {
        "http": "http",
        "grpc": "grpc",
        "metrics": "metrics",
    }
    container_ports = container(rendering.one("Deployment", "triton"))["ports"]
    assert {p["name"]: p["containerPort"] for p in container_ports} == {
        "http": 8000,
        "grpc": 8001,
        "metrics": 8002,
    }
    gateway_ports = container(rendering.one("Deployment", "gateway"))["ports"]
    assert {p["name"]: p["containerPort"] for p in gateway_ports} == {"http": 8080}


def test_triton_probes() -> None:
    deployment = render_scenario("default").one("Deployment", "triton")
    item = container(deployment)
    assert item["startupProbe"]["httpGet"] == {
        "path": "/v2/health/live",
        "port": "http",
    }
    assert item["readinessProbe"]["httpGet"] == {
        "path": "/v2/health/ready",
        "port": "http",
    }
    assert item["livenessProbe"]["httpGet"] == {
        "path": "/v2/health/live",
        "port": "http",
    }


def test_startup_probe_covers_model_loading() -> None:
    item = container(render_scenario("default").one("Deployment", "triton"))
    startup = item["startupProbe"]
    budget = (
        startup["initialDelaySeconds"]
        + startup["periodSeconds"] * startup["failureThreshold"]
    )
    # Kubernetes runs liveness only after the startup probe succeeds, so a
    # loading pod gets the whole startup budget.
    assert budget >= 600
    liveness = item["livenessProbe"]
    assert budget > liveness["periodSeconds"] * liveness["failureThreshold"]


def test_gateway_probes() -> None:
    item = container(render_scenario("default").one("Deployment", "gateway"))
    assert item["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert item["readinessProbe"]["httpGet"] == {
        "path": "/health/ready",
        "port": "http",
    }
    assert item["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}


def test_probes_switch_off_and_override() -> None:
    rendering = render_scenario("tuned")
    triton = container(rendering.one("Deployment", "triton"))
    assert "livenessProbe" not in triton
    assert triton["startupProbe"]["failureThreshold"] == 180
    assert triton["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    gateway = container(rendering.one("Deployment", "gateway"))
    assert "startupProbe" not in gateway
    assert "readinessProbe" not in gateway
    assert "livenessProbe" in gateway


def test_rolling_updates_keep_capacity(rendering: Rendering) -> None:
    for deployment in rendering.of_kind("Deployment"):
        strategy = deployment["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate"
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0
        assert strategy["rollingUpdate"]["maxSurge"] >= 1


def _pre_stop_sleep(item: dict) -> int:
    command = item["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    return int(command[1])


def test_triton_grace_period_covers_drain(rendering: Rendering) -> None:
    deployment = rendering.one("Deployment", "triton")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    exit_timeout = int(triton_args(rendering)["--exit-timeout-secs"][0])
    assert grace > _pre_stop_sleep(container(deployment)) + exit_timeout


def test_gateway_grace_period_covers_drain(rendering: Rendering) -> None:
    deployment = rendering.one("Deployment", "gateway")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    config = rendering.one("ConfigMap", "gateway")["data"]
    timeout = float(config["TRITON_QA_REQUEST_TIMEOUT_S"])
    assert grace > _pre_stop_sleep(container(deployment)) + timeout


def test_grace_period_follows_values() -> None:
    deployment = render_scenario("tuned").one("Deployment", "triton")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert _pre_stop_sleep(container(deployment)) == 20
    assert grace == 20 + 120 + 10


def test_model_repository_from_image() -> None:
    rendering = render_scenario("default")
    assert triton_args(rendering)["--model-repository"] == ["/models"]
    spec = rendering.one("Deployment", "triton")["spec"]["template"]["spec"]
    assert all("persistentVolumeClaim" not in volume for volume in spec["volumes"])


def test_model_repository_from_pvc() -> None:
    rendering = render_scenario("pvc")
    deployment = rendering.one("Deployment", "triton")
    spec = deployment["spec"]["template"]["spec"]
    claims = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
    assert len(claims) == 1
    assert claims[0]["persistentVolumeClaim"] == {
        "claimName": "qa-models",
        "readOnly": True,
    }
    mount = next(
        m
        for m in container(deployment)["volumeMounts"]
        if m["name"] == claims[0]["name"]
    )
    assert mount == {
        "name": claims[0]["name"],
        "mountPath": "/models",
        "subPath": "repo",
        "readOnly": True,
    }
    assert triton_args(rendering)["--model-repository"] == ["/models"]


def test_model_repository_from_s3_with_keys() -> None:
    rendering = render_scenario("s3")
    assert triton_args(rendering)["--model-repository"] == ["s3://qa-bucket/repo"]
    item = container(rendering.one("Deployment", "triton"))
    assert item["envFrom"] == [{"secretRef": {"name": "qa-s3-keys"}}]


def test_model_repository_from_gcs_with_key_file() -> None:
    rendering = render_scenario("gcs")
    assert triton_args(rendering)["--model-repository"] == ["gs://qa-bucket/repo"]
    deployment = rendering.one("Deployment", "triton")
    item = container(deployment)
    env = {e["name"]: e["value"] for e in item["env"]}
    mount = next(
        m for m in item["volumeMounts"] if m["name"] == "object-storage-credentials"
    )
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == f"{mount['mountPath']}/key.json"
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    secret = next(v for v in volumes if v["name"] == "object-storage-credentials")[
        "secret"
    ]
    assert secret["secretName"] == "qa-gcs-key"
    assert "envFrom" not in item


def test_model_repository_through_workload_identity() -> None:
    rendering = render_scenario("workload-identity")
    item = container(rendering.one("Deployment", "triton"))
    assert "envFrom" not in item
    assert "env" not in item
    account = rendering.one("ServiceAccount", "triton")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/qa"
    }
    assert "annotations" not in rendering.one("ServiceAccount", "gateway")["metadata"]


def test_gateway_settings() -> None:
    rendering = render_scenario("default")
    config = rendering.one("ConfigMap", "gateway")["data"]
    triton_service = rendering.one("Service", "triton")
    grpc = next(p for p in triton_service["spec"]["ports"] if p["name"] == "grpc")
    assert config["TRITON_QA_TRITON_GRPC_URL"] == (
        f"{triton_service['metadata']['name']}:{grpc['port']}"
    )
    assert config["TRITON_QA_HOST"] == "0.0.0.0"
    assert config["TRITON_QA_PORT"] == "8080"
    assert config["TRITON_QA_LOG_JSON"] == "true"
    assert "TRITON_QA_DEFAULT_MODEL" not in config
    assert "TRITON_QA_MAX_BODY_BYTES" not in config
    item = container(rendering.one("Deployment", "gateway"))
    name = rendering.one("ConfigMap", "gateway")["metadata"]["name"]
    assert item["envFrom"] == [{"configMapRef": {"name": name}}]


def test_gateway_settings_follow_values() -> None:
    config = render_scenario("tuned").one("ConfigMap", "gateway")["data"]
    assert config["TRITON_QA_DEFAULT_MODEL"] == "deepset/roberta-base-squad2"
    assert config["TRITON_QA_REQUEST_TIMEOUT_S"] == "12.5"
    assert config["TRITON_QA_MAX_BODY_BYTES"] == "4194304"
    assert config["TRITON_QA_MAX_IN_FLIGHT"] == "128"
    assert config["TRITON_QA_MAX_BATCH_INPUTS"] == "8"
    assert config["TRITON_QA_LOG_LEVEL"] == "DEBUG"


def _token_volume(rendering: Rendering) -> tuple[dict, dict]:
    deployment = rendering.one("Deployment", "gateway")
    item = container(deployment)
    env = {e["name"]: e["value"] for e in item.get("env", [])}
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    return env, next((v for v in volumes if v["name"] == "api-tokens"), {})


def test_generated_token_secret() -> None:
    rendering = render_scenario("default")
    secret = rendering.one("Secret", "gateway")
    token = base64.b64decode(secret["data"]["tokens"]).decode()
    assert len(token) == 40
    assert token.isalnum()
    env, volume = _token_volume(rendering)
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert env["TRITON_QA_API_TOKENS_FILE"].endswith("/tokens")


def test_created_token_secret() -> None:
    rendering = render_scenario("created-secret")
    secret = rendering.one("Secret", "gateway")
    assert (
        base64.b64decode(secret["data"]["tokens"]).decode() == "alpha-token\nbeta-token"
    )
    env, volume = _token_volume(rendering)
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume["secret"]["items"] == [{"key": "tokens", "path": "tokens"}]
    mount = next(
        m
        for m in container(rendering.one("Deployment", "gateway"))["volumeMounts"]
        if m["name"] == "api-tokens"
    )
    assert env["TRITON_QA_API_TOKENS_FILE"] == f"{mount['mountPath']}/tokens"
    assert mount["readOnly"] is True


def test_existing_token_secret() -> None:
    rendering = render_scenario("existing-secret")
    assert rendering.of_kind("Secret") == []
    env, volume = _token_volume(rendering)
    assert volume["secret"]["secretName"] == "qa-api-tokens"
    assert volume["secret"]["items"] == [{"key": "api", "path": "tokens"}]
    assert "TRITON_QA_API_TOKENS_FILE" in env
    annotations = rendering.one("Deployment", "gateway")["spec"]["template"][
        "metadata"
    ]["annotations"]
    assert "checksum/secret" not in annotations
    assert "qa-api-tokens" in rendering.notes


def test_auth_disabled() -> None:
    rendering = render_scenario("auth-disabled")
    assert rendering.of_kind("Secret") == []
    env, volume = _token_volume(rendering)
    assert volume == {}
    assert "TRITON_QA_API_TOKENS_FILE" not in env
    assert "WARNING: gateway.auth.enabled is false" in rendering.notes


def test_created_tokens_stay_in_secret() -> None:
    rendering = render_scenario("created-secret")
    for obj in rendering.objects:
        if obj["kind"] != "Secret":
            assert "alpha-token" not in yaml.safe_dump(obj), obj["kind"]
    assert "alpha-token" not in rendering.manifest("gateway/secret.yaml")
    assert "alpha-token" not in rendering.notes


def test_checksum_config_matches_configmap() -> None:
    rendering = render_scenario("default")
    annotations = rendering.one("Deployment", "gateway")["spec"]["template"][
        "metadata"
    ]["annotations"]
    expected = hashlib.sha256(rendering.manifest("gateway/configmap.yaml").encode())
    assert annotations["checksum/config"] == expected.hexdigest()


def test_checksum_secret_matches_secret() -> None:
    rendering = render_scenario("created-secret")
    annotations = rendering.one("Deployment", "gateway")["spec"]["template"][
        "metadata"
    ]["annotations"]
    expected = hashlib.sha256(rendering.manifest("gateway/secret.yaml").encode())
    assert annotations["checksum/secret"] == expected.hexdigest()


def test_checksum_changes_with_settings() -> None:
    def checksum(name: str) -> str:
        deployment = render_scenario(name).one("Deployment", "gateway")
        return deployment["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]

    assert checksum("default") != checksum("tuned")


def test_triton_network_policy_admits_only_gateway() -> None:
    rendering = render_scenario("default")
    policy = rendering.one("NetworkPolicy", "triton")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    gateway_labels = rendering.one("Deployment", "gateway")["spec"]["template"][
        "metadata"
    ]["labels"]
    inference_rules = []
    for rule in policy["spec"]["ingress"]:
        ports = {port["port"] for port in rule["ports"]}
        if ports & {"http", "grpc", 8000, 8001}:
            inference_rules.append(rule)
            assert ports == {"http", "grpc"}
    assert len(inference_rules) == 1
    peers = inference_rules[0]["from"]
    assert len(peers) == 1
    assert set(peers[0]) == {"podSelector"}
    assert peers[0]["podSelector"]["matchLabels"].items() <= gateway_labels.items()
    assert (
        peers[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        == "gateway"
    )


def test_triton_network_policy_admits_scrapers() -> None:
    policy = render_scenario("default").one("NetworkPolicy", "triton")
    metrics_rules = [
        rule
        for rule in policy["spec"]["ingress"]
        if {port["port"] for port in rule["ports"]} == {"metrics"}
    ]
    assert len(metrics_rules) == 1
    assert metrics_rules[0]["from"] == [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
            },
            "podSelector": {},
        }
    ]


def test_gateway_network_policy_opens_http_only() -> None:
    policy = render_scenario("default").one("NetworkPolicy", "gateway")
    assert policy["spec"]["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}]}
    ]


def test_network_policies_switch_off() -> None:
    assert render_scenario("tuned").of_kind("NetworkPolicy") == []


def test_prometheus_annotations() -> None:
    rendering = render_scenario("default")
    triton = rendering.one("Deployment", "triton")["spec"]["template"]["metadata"]
    assert triton["annotations"]["prometheus.io/scrape"] == "true"
    assert triton["annotations"]["prometheus.io/port"] == "8002"
    gateway = rendering.one("Deployment", "gateway")["spec"]["template"]["metadata"]
    assert gateway["annotations"]["prometheus.io/port"] == "8080"
    # A gateway whose /metrics needs a token cannot be scraped by annotation.
    secured = render_scenario("service-monitor").one("Deployment", "gateway")
    assert (
        "prometheus.io/scrape"
        not in secured["spec"]["template"]["metadata"]["annotations"]
    )
    quiet = render_scenario("tuned").one("Deployment", "triton")
    quiet_annotations = quiet["spec"]["template"]["metadata"]["annotations"]
    assert not any(key.startswith("prometheus.io/") for key in quiet_annotations)
    bare = render_values({"metrics": {"prometheusAnnotations": False}})
    assert (
        "annotations"
        not in bare.one("Deployment", "triton")["spec"]["template"]["metadata"]
    )


def test_service_monitor_off_by_default() -> None:
    kinds = {obj["apiVersion"] for obj in render_scenario("default").objects}
    assert not any(api.startswith("monitoring.coreos.com") for api in kinds)


def test_service_monitors_select_metrics_ports() -> None:
    rendering = render_scenario("service-monitor")
    for component, port in (("triton", "metrics"), ("gateway", "http")):
        monitor = rendering.one("ServiceMonitor", component)
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        service = rendering.one("Service", component)
        assert monitor["spec"]["selector"]["matchLabels"].items() <= (
            service["metadata"]["labels"].items()
        )
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] == port
        assert port in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
    gateway = rendering.one("ServiceMonitor", "gateway")["spec"]["endpoints"][0]
    assert gateway["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "qa-metrics-token", "key": "token"},
    }


def test_no_autoscaler_by_default() -> None:
    rendering = render_scenario("default")
    assert rendering.of_kind("HorizontalPodAutoscaler") == []
    assert rendering.one("Deployment", "triton")["spec"]["replicas"] == 1
    assert rendering.one("Deployment", "gateway")["spec"]["replicas"] == 2


def test_cpu_autoscaler() -> None:
    rendering = render_scenario("cpu-hpa")
    hpa = rendering.one("HorizontalPodAutoscaler", "triton")
    deployment = rendering.one("Deployment", "triton")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]
    assert "replicas" not in deployment["spec"]


def test_queue_time_autoscaler() -> None:
    rendering = render_scenario("queue-time-hpa")
    hpa = rendering.one("HorizontalPodAutoscaler", "triton")
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] == 6
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {
                    "name": "nv_inference_queue_duration_us_per_second",
                    "selector": {
                        "matchLabels": {"model": "deepset--roberta-base-squad2_model"}
                    },
                },
                "target": {"type": "AverageValue", "averageValue": "150k"},
            },
        }
    ]
    gateway = rendering.one("HorizontalPodAutoscaler", "gateway")
    assert gateway["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    for deployment in rendering.of_kind("Deployment"):
        assert "replicas" not in deployment["spec"]


def test_disruption_budgets(rendering: Rendering) -> None:
    for budget in rendering.of_kind("PodDisruptionBudget"):
        assert budget["spec"]["maxUnavailable"] == 1
        assert "minAvailable" not in budget["spec"]


def test_disruption_budget_switches_off() -> None:
    rendering = render_scenario("tuned")
    assert rendering.maybe("PodDisruptionBudget", "gateway") is None
    assert rendering.maybe("PodDisruptionBudget", "triton") is not None


def test_ingress_routes_to_gateway() -> None:
    rendering = render_scenario("ingress")
    ingress = rendering.one("Ingress", "gateway")
    service = rendering.one("Service", "gateway")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"secretName": "qa-tls", "hosts": ["qa.example.com"]}
    ]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "qa.example.com"
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {
        "name": service["metadata"]["name"],
        "port": {"name": "http"},
    }
    assert "https://qa.example.com" in rendering.notes


def test_ingress_without_hosts_routes_every_host() -> None:
    ingress = render_scenario("ingress-any-host").one("Ingress", "gateway")
    (rule,) = ingress["spec"]["rules"]
    assert "host" not in rule
    assert "ingressClassName" not in ingress["spec"]


def test_no_ingress_by_default() -> None:
    assert render_scenario("default").of_kind("Ingress") == []


def test_notes_show_curl_with_token() -> None:
    notes = render_scenario("default").notes
    service = render_scenario("default").one("Service", "gateway")["metadata"]["name"]
    assert f"port-forward service/{service}" in notes
    assert 'curl -s "$GATEWAY_URL/" \\' in notes
    assert '-H "Authorization: Bearer $TOKEN"' in notes
    assert "/health/ready" in notes
    assert f"-n {NAMESPACE}" in notes


def test_notes_warn_about_stock_triton_image() -> None:
    stock = {"repository": "nvcr.io/nvidia/tritonserver", "tag": "24.10-py3"}
    notes = render_values({"triton": {"image": stock}}).notes
    assert "stock NVIDIA image" in notes
    assert "docker build -f docker/triton.Dockerfile" not in notes
    assert "stock NVIDIA image" not in render_scenario("default").notes
    assert "stock NVIDIA image" not in render_scenario("custom-images").notes


def test_notes_name_images_and_bases() -> None:
    notes = render_scenario("default").notes
    annotations = chart_metadata()["annotations"]
    version = chart_metadata()["appVersion"]
    assert f"triton: triton-qa-triton:{version}" in notes
    assert f"gateway: triton-qa-gateway:{version}" in notes
    triton_base = annotations["triton-qa.io/triton-base-image"]
    gateway_base = annotations["triton-qa.io/gateway-base-image"]
    assert f"Built by docker/triton.Dockerfile FROM {triton_base};" in notes
    assert f"Built by gateway/Dockerfile FROM {gateway_base};" in notes
    assert f"docker push REGISTRY/triton-qa-triton:{version}" in notes
    assert f"docker push REGISTRY/triton-qa-gateway:{version}" in notes


def test_notes_build_matches_repository_source() -> None:
    baked = render_scenario("default").notes
    assert (
        "docker build -f docker/triton.Dockerfile --build-arg MODEL_REPOSITORY=DIR"
        in baked
    )
    assert "--target runtime" not in baked
    mounted = render_scenario("pvc").notes
    assert "docker build -f docker/triton.Dockerfile --target runtime -t" in mounted
    assert "MODEL_REPOSITORY" not in mounted


def test_notes_flag_images_without_registry() -> None:
    notes = render_scenario("default").notes
    assert "triton.image.repository names no registry" in notes
    assert "gateway.image.repository names no registry" in notes
    custom = render_scenario("custom-images").notes
    assert "names no registry" not in custom
    reference = "registry.example.com/triton-qa-triton:0.1.0-24.10"
    assert f"docker push {reference}" in custom
    assert "REGISTRY/" not in custom


def test_triton_image_tag_defaults_to_app_version() -> None:
    deployment = render_scenario("default").one("Deployment", "triton")
    app_version = deployment["metadata"]["labels"]["app.kubernetes.io/version"]
    assert container(deployment)["image"] == f"triton-qa-triton:{app_version}"


def test_image_references() -> None:
    rendering = render_scenario("custom-images")
    triton = container(rendering.one("Deployment", "triton"))
    assert triton["image"] == "registry.example.com/triton-qa-triton:0.1.0-24.10"
    assert triton["imagePullPolicy"] == "Always"
    gateway = container(rendering.one("Deployment", "gateway"))
    assert gateway["image"] == "registry.example.com/triton-qa-gateway:0.1.0"
    spec = rendering.one("Deployment", "gateway")["spec"]["template"]["spec"]
    assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]


def test_gateway_image_tag_defaults_to_app_version() -> None:
    deployment = render_scenario("default").one("Deployment", "gateway")
    app_version = deployment["metadata"]["labels"]["app.kubernetes.io/version"]
    assert container(deployment)["image"] == f"triton-qa-gateway:{app_version}"


def test_object_names_use_release_prefix() -> None:
    deployment = render_scenario("default").one("Deployment", "triton")
    assert deployment["metadata"]["name"] == f"{RELEASE}-triton-qa-triton"
