"""Render a kustomization in Python, for the subset deploy/kubernetes uses.

No kustomize binary can be relied on where the tests run; this renders ``resources``
(files and directories with their own kustomization), ``namespace``, ``images`` and
``patches`` given as RFC 6902 operations with a ``target`` (applied with the ``jsonpatch``
package).  Anything else in a kustomization is refused, so a manifest change that needs
more is noticed here rather than rendered wrongly.  Where ``kubectl`` is installed the
tests compare this rendering with ``kubectl kustomize``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonpatch
import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
# Kinds that live in no namespace: ``namespace`` leaves them alone.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def render(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise ValueError(f"{directory}: kustomization fields not rendered here: {unknown}")
    documents: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            documents += render(path)
        else:
            documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        operations = yaml.safe_load(patch["patch"])
        matched = [
            d
            for d in documents
            if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]
        ]
        if len(matched) != 1:
            raise ValueError(f"patch target {target} matched {len(matched)} resources")
        index = documents.index(matched[0])
        documents[index] = jsonpatch.apply_patch(matched[0], operations)
    for image in kustomization.get("images", []):
        for document in documents:
            _set_image(document, image)
    namespace = kustomization.get("namespace")
    if namespace:
        for document in documents:
            if document["kind"] not in CLUSTER_SCOPED:
                document["metadata"]["namespace"] = namespace
    return documents


def pod_spec(document: dict[str, Any]) -> dict[str, Any] | None:
    if document["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        spec: dict[str, Any] = document["spec"]["template"]["spec"]
        return spec
    return None


def _set_image(document: dict[str, Any], image: dict[str, str]) -> None:
    spec = pod_spec(document)
    if spec is None:
        return
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        name, _, _ = container["image"].partition(":")
        if name == image["name"]:
            container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
