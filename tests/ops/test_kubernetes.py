"""deploy/kubernetes: every rendered manifest is valid offline, and the policies hold.

Built-in kinds are validated with ``kubernetes-validate`` (the API's own OpenAPI schemas,
strict: an unknown field is an error); the CloudNativePG ``Cluster`` against the
openAPIV3Schema of its CRD (tests/ops/schemas).  Each policy check is also run against a
manifest broken on purpose, so none of them can pass vacuously.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.support.kustomize import pod_spec, render

DEPLOY = Path(__file__).parents[2] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
BASE = KUBERNETES / "base"
PRODUCTION = KUBERNETES / "overlays" / "production"
SCHEMAS = Path(__file__).parent / "schemas"
# The oldest Kubernetes minor still supported upstream when this was written, and the
# newest the package knows: the manifests must be valid on both.
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
CRD_KINDS = {"Cluster", "ScheduledBackup"}
COMPONENTS = ("app", "worker", "sealer", "migrate")

Manifest = dict[str, Any]


@pytest.fixture(scope="module", params=[BASE, PRODUCTION], ids=["base", "production"])
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(request.param)


@pytest.fixture(scope="module")
def production() -> list[Manifest]:
    return render(PRODUCTION)


def by_kind(documents: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in documents if d["kind"] == kind]


def named(documents: list[Manifest], kind: str, name: str) -> Manifest:
    [document] = [d for d in by_kind(documents, kind) if d["metadata"]["name"] == name]
    return document


def component_of(document: Manifest) -> str:
    labels = document["spec"]["template"]["metadata"]["labels"]
    return str(labels["app.kubernetes.io/component"])


# -- rendering ---------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("directory", [BASE, PRODUCTION], ids=["base", "production"])
def test_the_python_rendering_equals_kubectl_kustomize(directory: Path) -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout

    def key(d: Manifest) -> tuple[str, str]:
        return d["kind"], d["metadata"]["name"]

    theirs = sorted((d for d in yaml.safe_load_all(built) if d), key=key)
    assert sorted(render(directory), key=key) == theirs


def test_production_pins_the_image_and_the_namespace(production: list[Manifest]) -> None:
    for document in production:
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == "referrals"
        spec = pod_spec(document)
        for container in (spec or {}).get("initContainers", []) + (spec or {}).get(
            "containers", []
        ):
            assert container["image"] == "registry.example.org/referrals:0.1.0"


# -- schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_builtin_manifest_is_valid_against_the_kubernetes_schema(
    manifests: list[Manifest], version: str
) -> None:
    builtin = [d for d in manifests if d["kind"] not in CRD_KINDS]
    assert len(builtin) >= 13
    for document in builtin:
        kubernetes_validate.validate(document, version, strict=True)


def test_the_validator_refuses_what_kubernetes_would(production: list[Manifest]) -> None:
    app = copy.deepcopy(named(production, "Deployment", "referrals-app"))
    app["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(app, KUBERNETES_VERSIONS[-1], strict=True)
    app = copy.deepcopy(named(production, "Deployment", "referrals-app"))
    app["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(app, KUBERNETES_VERSIONS[-1], strict=True)


def cluster_schema() -> dict[str, Any]:
    vendored = json.loads((SCHEMAS / "cnpg-cluster-v1.json").read_text())
    schema: dict[str, Any] = vendored["openAPIV3Schema"]
    return schema


def test_the_postgres_cluster_is_valid_against_the_cloudnativepg_crd(
    manifests: list[Manifest],
) -> None:
    [cluster] = by_kind(manifests, "Cluster")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    jsonschema.validate(cluster, cluster_schema())
    broken = copy.deepcopy(cluster)
    broken["spec"]["instances"] = "three"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, cluster_schema())
    broken = copy.deepcopy(cluster)
    broken["spec"]["backup"]["barmanObjectStore"]["wal"]["compression"] = "rar"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, cluster_schema())


def test_the_cluster_is_highly_available_and_archives_wal(production: list[Manifest]) -> None:
    cluster = named(production, "Cluster", "referrals-db")["spec"]
    assert cluster["instances"] >= 3
    assert cluster["affinity"]["enablePodAntiAffinity"] is True
    assert cluster["enableSuperuserAccess"] is False
    store = cluster["backup"]["barmanObjectStore"]
    assert store["destinationPath"].startswith("s3://")
    assert store["wal"]["encryption"]
    assert store["data"]["encryption"]
    [scheduled] = by_kind(production, "ScheduledBackup")
    assert scheduled["apiVersion"] == "postgresql.cnpg.io/v1"
    assert scheduled["spec"]["cluster"]["name"] == "referrals-db"
    assert len(scheduled["spec"]["schedule"].split()) == 6  # CNPG: seconds first
    # The roles SECURITY.md prescribes, the app and the sealer apart from the owner.
    assert cluster["bootstrap"]["initdb"]["owner"] == "referrals_owner"
    managed = {r["name"]: r for r in cluster["managed"]["roles"]}
    assert set(managed) == {"referrals_app", "referrals_sealer"}
    assert all(not r["superuser"] and r["login"] for r in managed.values())


# -- pod security ------------------------------------------------------------------------


def pod_security_problems(document: Manifest) -> list[str]:
    """What keeps a workload from the "restricted" Pod Security profile, or from running
    as the image's unprivileged user with nothing writable."""
    spec = pod_spec(document)
    if spec is None:
        return []
    name = document["metadata"]["name"]
    problems = []
    pod = spec.get("securityContext", {})
    if pod.get("runAsNonRoot") is not True:
        problems.append(f"{name}: runAsNonRoot")
    if pod.get("runAsUser", 0) == 0:
        problems.append(f"{name}: runAsUser 0")
    if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{name}: seccomp")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{name}: service account token mounted")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            problems.append(f"{name}: {key}")
    for container in spec.get("initContainers", []) + spec["containers"]:
        where = f"{name}/{container['name']}"
        context = container.get("securityContext", {})
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem")
        if context.get("privileged"):
            problems.append(f"{where}: privileged")
        if context.get("runAsUser", 1) == 0 or context.get("runAsNonRoot") is False:
            problems.append(f"{where}: root")
        capabilities = context.get("capabilities", {})
        if capabilities.get("drop") != ["ALL"] or capabilities.get("add"):
            problems.append(f"{where}: capabilities")
        if "limits" not in container.get("resources", {}):
            problems.append(f"{where}: no resource limits")
        if container["image"].endswith(":latest"):
            problems.append(f"{where}: latest")
    return problems


def test_every_workload_runs_restricted(manifests: list[Manifest]) -> None:
    workloads = [d for d in manifests if pod_spec(d) is not None]
    assert {component_of(d) for d in workloads} == set(COMPONENTS)
    assert [p for d in workloads for p in pod_security_problems(d)] == []


BREAKS: dict[str, Callable[[Manifest], None]] = {
    "root": lambda s: s["securityContext"].update(runAsUser=0),
    "may be root": lambda s: s["securityContext"].pop("runAsNonRoot"),
    "no seccomp": lambda s: s["securityContext"].pop("seccompProfile"),
    "escalation": lambda s: s["containers"][0]["securityContext"].update(
        allowPrivilegeEscalation=True
    ),
    "writable root": lambda s: s["initContainers"][0]["securityContext"].update(
        readOnlyRootFilesystem=False
    ),
    "capability": lambda s: s["containers"][0]["securityContext"]["capabilities"].update(
        add=["NET_ADMIN"]
    ),
    "privileged": lambda s: s["containers"][0]["securityContext"].update(privileged=True),
    "token": lambda s: s.update(automountServiceAccountToken=True),
    "host network": lambda s: s.update(hostNetwork=True),
}


@pytest.mark.parametrize("attack", BREAKS)
def test_the_pod_security_check_catches_each_weakening(
    production: list[Manifest], attack: str
) -> None:
    for deployment in by_kind(production, "Deployment") + by_kind(production, "Job"):
        broken = copy.deepcopy(deployment)
        BREAKS[attack](broken["spec"]["template"]["spec"])
        assert pod_security_problems(broken), (attack, deployment["metadata"]["name"])


def test_the_namespace_enforces_the_restricted_profile(production: list[Manifest]) -> None:
    [namespace] = by_kind(production, "Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_key_files_reach_the_process_private_to_it(manifests: list[Manifest]) -> None:
    """The keyring and the signing key are refused unless 0600/0400 and their reader's;
    a Secret volume gives a non-root uid group access only, so each pod copies them into
    memory with umask 077 before the process starts."""
    for document in manifests:
        spec = pod_spec(document)
        if spec is None:
            continue
        [init] = spec["initContainers"]
        assert "umask 077" in init["command"][-1]
        secret_modes = [v["secret"]["defaultMode"] for v in spec["volumes"] if "secret" in v]
        assert secret_modes
        assert all(mode & 0o007 == 0 for mode in secret_modes)
        run = next(v for v in spec["volumes"] if v["name"] == "run")
        assert run["emptyDir"]["medium"] == "Memory"
    sealer = named(manifests, "Deployment", "referrals-sealer")["spec"]["template"]["spec"]
    others = [
        d["spec"]["template"]["spec"]
        for d in manifests
        if pod_spec(d) is not None and d["metadata"]["name"] != "referrals-sealer"
    ]
    signing = "referrals-audit-signing-key"
    assert signing in json.dumps(sealer["volumes"])
    assert all(signing not in json.dumps(spec) for spec in others)


# -- probes, scaling, disruption ---------------------------------------------------------


def test_the_app_is_probed_scaled_and_kept_through_disruptions(
    manifests: list[Manifest],
) -> None:
    app = named(manifests, "Deployment", "referrals-app")
    [container] = app["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    [hpa] = by_kind(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "referrals-app"
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    [pdb] = by_kind(manifests, "PodDisruptionBudget")
    selector = pdb["spec"]["selector"]["matchLabels"]
    labels = app["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    [service] = by_kind(manifests, "Service")
    assert service["spec"]["selector"].items() <= labels.items()


def test_there_is_a_standby_sealer_and_only_the_sealer_signs(manifests: list[Manifest]) -> None:
    sealer = named(manifests, "Deployment", "referrals-sealer")
    assert sealer["spec"]["replicas"] == 2
    [container] = sealer["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["referrals", "audit", "seal", "--follow"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["REFERRALS_SEALER_DATABASE_URL_FILE"].endswith("sealer-url")
    assert env["REFERRALS_DATABASE_URL_FILE"].endswith("sealer-url")


def test_the_migration_job_checks_keys_before_it_changes_anything(
    manifests: list[Manifest],
) -> None:
    [job] = by_kind(manifests, "Job")
    [container] = job["spec"]["template"]["spec"]["containers"]
    script = container["command"][-1]
    steps = [s.strip() for s in script.split(";") if s.strip()]
    assert steps[0] == "set -e"
    assert steps[1] == "referrals keys check"
    assert steps[2].startswith("referrals db upgrade")
    assert steps[3].startswith("referrals db harden --app-role referrals_app")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["REFERRALS_DATABASE_URL_FILE"].endswith("owner-url")


def test_only_the_migration_job_holds_the_owner_credentials(manifests: list[Manifest]) -> None:
    for document in manifests:
        if pod_spec(document) is None:
            continue
        uses_owner = "owner-url" in json.dumps(document["spec"]["template"])
        assert uses_owner == (component_of(document) == "migrate")


# -- network policies --------------------------------------------------------------------


def selects(policy: Manifest, labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return bool(wanted.items() <= labels.items())


def egress_of(documents: list[Manifest], component: str) -> list[Manifest]:
    """Every egress rule that applies to a component's pods."""
    deployment = next(
        d for d in documents if pod_spec(d) is not None and component_of(d) == component
    )
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    policies = [p for p in by_kind(documents, "NetworkPolicy") if selects(p, labels)]
    assert any(
        set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} and "egress" not in p["spec"]
        for p in policies
    ), f"{component} is not under a default deny"
    return [rule for p in policies for rule in p["spec"].get("egress", [])]


def destinations(rules: list[Manifest]) -> set[str]:
    """Each rule as 'what:port', the database and DNS by name, addresses as CIDRs."""
    found = set()
    for rule in rules:
        ports = sorted({str(p["port"]) for p in rule["ports"]})
        for peer in rule["to"]:
            if "ipBlock" in peer:
                what = "cidr " + peer["ipBlock"]["cidr"]
                assert "except" not in peer["ipBlock"]
            elif peer.get("podSelector", {}).get("matchLabels", {}).get("cnpg.io/cluster"):
                what = "database"
            elif peer.get("podSelector", {}).get("matchLabels", {}).get("k8s-app") == "kube-dns":
                what = "dns"
            else:
                what = "other " + json.dumps(peer, sort_keys=True)
            found |= {f"{what}:{port}" for port in ports}
    return found


def test_egress_is_only_where_each_component_must_go(production: list[Manifest]) -> None:
    common = {"dns:53", "database:5432"}
    assert destinations(egress_of(production, "sealer")) == common
    assert destinations(egress_of(production, "migrate")) == common
    app = destinations(egress_of(production, "app")) - common
    assert app == {"cidr 203.0.113.10/32:443"}  # the IdP
    worker = destinations(egress_of(production, "worker")) - common
    assert worker == {"cidr 198.51.100.0/24:443", "cidr 192.0.2.0/24:443"}  # webhooks


def test_the_egress_check_sees_an_opened_door(production: list[Manifest]) -> None:
    opened = copy.deepcopy(production)
    worker = named(opened, "NetworkPolicy", "referrals-worker")
    worker["spec"]["egress"][0]["to"].append({"ipBlock": {"cidr": "0.0.0.0/0"}})
    assert "cidr 0.0.0.0/0:443" in destinations(egress_of(opened, "worker"))
    opened = copy.deepcopy(production)
    deny = named(opened, "NetworkPolicy", "referrals-default-deny")
    deny["spec"]["policyTypes"] = ["Ingress"]
    with pytest.raises(AssertionError, match="default deny"):
        egress_of(opened, "sealer")


def test_only_the_ingress_controller_reaches_the_app(production: list[Manifest]) -> None:
    policy = named(production, "NetworkPolicy", "referrals-app")
    [rule] = policy["spec"]["ingress"]
    [peer] = rule["from"]
    assert peer == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    }
    assert [p["port"] for p in rule["ports"]] == [8000]


# -- what the operator provides ----------------------------------------------------------


def referenced_secrets(documents: list[Manifest]) -> set[str]:
    names = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "secretName" in node:
                names.add(node["secretName"])
            for key in ("secret", "passwordSecret"):
                if isinstance(node.get(key), dict) and "name" in node[key]:
                    names.add(node[key]["name"])
            for key in ("accessKeyId", "secretAccessKey"):
                if isinstance(node.get(key), dict):
                    names.add(node[key]["name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(documents)
    return names


def test_every_secret_referenced_is_documented_and_none_is_shipped(
    production: list[Manifest],
) -> None:
    assert by_kind(production, "Secret") == []
    readme = (DEPLOY / "README.md").read_text()
    secrets = referenced_secrets(production)
    assert {"referrals-keyring", "referrals-audit-signing-key", "referrals-database"} <= secrets
    assert [name for name in sorted(secrets) if f"`{name}`" not in readme] == []
