"""The Kubernetes manifests in deploy/k8s: valid for the API, and consistent with each other."""

import copy
from pathlib import Path

import pytest

from llmlab.manifests import Manifest, load_manifests, problems, validate_folder
from llmlab.sizing.capacity import replica_shape
from llmlab.sizing.memory import REFERENCE_MODELS

FOLDER = Path(__file__).parents[1] / "deploy" / "k8s"


@pytest.fixture(scope="module")
def manifests() -> dict[str, Manifest]:
    return {f"{m.kind}/{m.name}": m for m in load_manifests(FOLDER)}


def container(manifest: Manifest) -> dict:
    (only,) = manifest.document["spec"]["template"]["spec"]["containers"]
    return only


def flag(args: list[str], name: str) -> str:
    """The value of ``--name=value`` or ``--name value`` in a container's args."""
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name:
            return args[i + 1]
    raise AssertionError(f"{name} not in {args}")


def test_every_manifest_is_valid_for_the_kubernetes_api():
    assert validate_folder(FOLDER) == []


def test_kustomization_lists_every_file(manifests):
    listed = set(manifests["Kustomization/kustomization"].document["resources"])
    assert listed == {p.name for p in FOLDER.glob("*.yaml")} - {"kustomization.yaml"}


def test_a_broken_manifest_names_the_field(manifests):
    broken = copy.deepcopy(manifests["Deployment/vllm"].document)
    broken["spec"]["replicas"] = "two"
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    (problem,) = problems(Manifest(FOLDER / "vllm.yaml", broken))
    assert problem == (
        "vllm.yaml: Deployment/vllm: spec.replicas: 'two' is not of type 'integer', 'null'"
    )
    del broken["spec"]["replicas"]
    (problem,) = problems(Manifest(FOLDER / "vllm.yaml", broken))
    assert "spec.template.spec.containers.0" in problem and "'readinesProbe'" in problem


def test_each_deployment_selects_its_own_pods(manifests):
    for key in ("Deployment/vllm", "Deployment/vllm-router"):
        spec = manifests[key].document["spec"]
        assert (
            spec["selector"]["matchLabels"].items()
            <= spec["template"]["metadata"]["labels"].items()
        )


def test_gpus_requested_match_the_parallelism(manifests):
    vllm = container(manifests["Deployment/vllm"])
    tensor = int(flag(vllm["args"], "--tensor-parallel-size"))
    for amounts in (vllm["resources"]["requests"], vllm["resources"]["limits"]):
        assert int(amounts["nvidia.com/gpu"]) == tensor
    # ... and the planner's answer for this model on 48 GiB GPUs, as the comment says.
    shape = replica_shape(REFERENCE_MODELS["Qwen2.5-32B-Instruct"], gpu_memory_gib=48,
                          context_length=int(flag(vllm["args"], "--max-model-len")))  # fmt: skip
    assert vllm["args"][0] == "Qwen/Qwen2.5-32B-Instruct"
    assert shape.tensor_parallel == tensor


def test_vllm_is_probed_on_its_health_endpoint(manifests):
    vllm = container(manifests["Deployment/vllm"])
    port = int(flag(vllm["args"], "--port"))
    assert vllm["ports"] == [{"name": "http", "containerPort": port}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert vllm[probe]["httpGet"] == {"path": "/health", "port": "http"}
    startup = vllm["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # loading takes minutes
    mounts = {m["mountPath"] for m in vllm["volumeMounts"]}
    assert "/dev/shm" in mounts  # NCCL needs shared memory for tensor parallelism


def test_the_router_finds_the_vllm_pods(manifests):
    router = container(manifests["Deployment/vllm-router"])
    vllm_labels = manifests["Deployment/vllm"].document["spec"]["template"]["metadata"]["labels"]
    key, value = flag(router["args"], "--selector").split("=")
    assert vllm_labels[key] == value
    assert flag(router["args"], "--service-discovery-port") == flag(
        container(manifests["Deployment/vllm"])["args"], "--port"
    )
    assert flag(router["args"], "--service-discovery-namespace") == "llm"
    # Its service account may read pods, and nothing else.
    spec = manifests["Deployment/vllm-router"].document["spec"]["template"]["spec"]
    binding = manifests["RoleBinding/vllm-router-reads-pods"].document
    assert binding["subjects"][0]["name"] == spec["serviceAccountName"]
    role = manifests[f"Role/{binding['roleRef']['name']}"].document
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]


def test_only_the_router_reaches_the_replicas_and_they_check_the_key(manifests):
    policy = manifests["NetworkPolicy/vllm-only-from-router"].document["spec"]
    router_labels = manifests["Deployment/vllm-router"].document["spec"]["template"]["metadata"][
        "labels"
    ]
    assert policy["podSelector"]["matchLabels"] == {"app": "vllm-worker"}
    assert policy["ingress"][0]["from"] == [{"podSelector": {"matchLabels": router_labels}}]
    # vLLM's router passes the client's key through without checking it: the replicas check it.
    vllm = container(manifests["Deployment/vllm"])
    key = next(env for env in vllm["env"] if env["name"] == "VLLM_API_KEY")
    assert key["valueFrom"]["secretKeyRef"]["name"] == "llm-api-key"  # never a literal key
    assert "--api-key" not in " ".join(container(manifests["Deployment/vllm-router"])["args"])


def test_the_service_points_at_the_router(manifests):
    service = manifests["Service/llm"].document["spec"]
    router = manifests["Deployment/vllm-router"].document["spec"]["template"]["metadata"]
    assert service["selector"].items() <= router["labels"].items()
    assert service["ports"][0]["targetPort"] == "http"
