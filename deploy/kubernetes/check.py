#!/usr/bin/env python3
"""Checks the Kubernetes manifests: schema-valid, consistent, and runnable by securewatch.

Usage: deploy/kubernetes/check.py SECUREWATCH_BINARY

For the base and every overlay it renders the kustomization with `kubectl kustomize`, then
- validates every object against the Kubernetes schemas (kubernetes-validate, strict: unknown
  fields are errors), for the oldest Kubernetes the manifests need (1.28, the first with the
  StatefulSet pod-index label) and the newest the validator knows;
- checks what the schemas cannot: each worker StatefulSet's peer list names exactly its pods
  through its headless Service, every probe targets a health path on a declared port, every
  container runs locked down, every Secret key used is one the documentation lists;
- runs `securewatch config check --role ingest|worker` on each ConfigMap's config with the
  environment each pod gets (every worker ordinal), so a config the binary refuses fails here.
Exits non-zero and names the object and the reason at the first problem.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent
KUSTOMIZATIONS = [HERE / "base"] + sorted(p for p in (HERE / "overlays").iterdir() if p.is_dir())
OLDEST_KUBERNETES = "1.28.0"
HEALTH_PATHS = {"/api/v1/health/live", "/api/v1/health/ready"}
# The keys of the Secret `securewatch` (docs/kubernetes.md), with stand-in values for the check.
SECRET_KEYS = {
    "hec-token": "k8s-check-hec-token-0123456789abcdef",
    "postgres-url": "postgres://securewatch:password@timescaledb:5432/securewatch",
    "api-token": "k8s-check-api-token-0123456789abcdef0123456789",
}


class Problem(Exception):
    pass


def render(kustomization):
    result = subprocess.run(["kubectl", "kustomize", str(kustomization)], capture_output=True, text=True)
    if result.returncode != 0:
        raise Problem(f"{kustomization}: kubectl kustomize failed:\n{result.stderr}")
    return result.stdout


def validate(kustomization, rendered):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        file.write(rendered)
        file.flush()
        for version in [OLDEST_KUBERNETES, None]:
            command = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", file.name]
            if version:
                command[3:3] = ["-k", version]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise Problem(f"{kustomization}: schema validation ({version or 'latest'}) failed:\n"
                              f"{result.stdout}{result.stderr}")


def workloads(objects):
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


def env_of(container, ordinal):
    """The environment a container gets, with Secrets' stand-ins and the pod's ordinal."""
    environment = {}
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
            continue
        source = variable["valueFrom"]
        if "secretKeyRef" in source:
            key = source["secretKeyRef"]["key"]
            if source["secretKeyRef"]["name"] != "securewatch" or key not in SECRET_KEYS:
                raise Problem(f"{container['name']}: env {variable['name']} uses an undocumented secret "
                              f"{source['secretKeyRef']}")
            environment[variable["name"]] = SECRET_KEYS[key]
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.labels['apps.kubernetes.io/pod-index']":
            environment[variable["name"]] = str(ordinal)
        else:
            raise Problem(f"{container['name']}: env {variable['name']}: unexpected source {source}")
    return environment


def check_peers(statefulset, services):
    name, replicas = statefulset["metadata"]["name"], statefulset["spec"]["replicas"]
    headless = services.get(statefulset["spec"]["serviceName"])
    if not headless or headless["spec"].get("clusterIP") != "None" or not headless["spec"].get("publishNotReadyAddresses"):
        raise Problem(f"{name}: serviceName must be a headless Service publishing not-ready addresses")
    port = next(p["port"] for p in headless["spec"]["ports"] if p["name"] == "timely")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    peers = json.loads(env_of(container, 0)["SECUREWATCH_DATAFLOW__PEERS"])
    wanted = [f"{name}-{i}.{headless['metadata']['name']}:{port}" for i in range(replicas)]
    if peers != wanted:
        raise Problem(f"{name}: {replicas} replicas but peers {peers}; wanted {wanted}")


def check_pod(workload):
    name, pod = workload["metadata"]["name"], workload["spec"]["template"]["spec"]
    if not pod["securityContext"].get("runAsNonRoot"):
        raise Problem(f"{name}: the pod must run as non-root")
    for container in pod["containers"]:
        context = container.get("securityContext", {})
        locked = (context.get("readOnlyRootFilesystem") and context.get("allowPrivilegeEscalation") is False
                  and context.get("capabilities", {}).get("drop") == ["ALL"])
        if not locked:
            raise Problem(f"{name}/{container['name']}: needs a read-only root, no privilege escalation, no capabilities")
        ports = {p["name"] for p in container["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            action = container.get(probe, {}).get("httpGet")
            if not action or action["path"] not in HEALTH_PATHS or action["port"] not in ports:
                raise Problem(f"{name}/{container['name']}: {probe} must GET a health path on a declared port")
        if "memory" not in container.get("resources", {}).get("limits", {}):
            raise Problem(f"{name}/{container['name']}: needs a memory limit")


def config_check(binary, workload, config_maps):
    name, pod = workload["metadata"]["name"], workload["spec"]["template"]["spec"]
    ordinals = range(workload["spec"]["replicas"]) if workload["kind"] == "StatefulSet" else [0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in pod["containers"]:
        role = container["args"][0]
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/securewatch")
        config_map = config_maps[volumes[mount["name"]]["configMap"]["name"]]
        with tempfile.TemporaryDirectory() as directory:
            config = pathlib.Path(directory) / "securewatch.toml"
            config.write_text(config_map["data"]["securewatch.toml"])
            for ordinal in ordinals:
                environment = {k: v for k, v in os.environ.items() if not k.startswith("SECUREWATCH_")}
                environment.update(env_of(container, ordinal))
                result = subprocess.run([binary, "config", "check", "--role", role, str(config)],
                                        capture_output=True, text=True, env=environment)
                if result.returncode != 0:
                    raise Problem(f"{name} (pod {ordinal}): securewatch config check failed:\n{result.stderr}")


def main():
    binary = sys.argv[1]
    for kustomization in KUSTOMIZATIONS:
        rendered = render(kustomization)
        validate(kustomization, rendered)
        objects = [o for o in yaml.safe_load_all(rendered) if o]
        services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
        config_maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
        for workload in workloads(objects):
            check_pod(workload)
            if workload["kind"] == "StatefulSet":
                check_peers(workload, services)
            config_check(binary, workload, config_maps)
        kinds = sorted({o["kind"] for o in objects})
        print(f"{kustomization.relative_to(HERE.parent.parent)}: {len(objects)} objects valid ({', '.join(kinds)})")


if __name__ == "__main__":
    try:
        main()
    except Problem as problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(1)
