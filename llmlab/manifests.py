"""Check Kubernetes manifests offline, against the API's own schemas.

No cluster is needed: ``kubernetes-validate`` ships the OpenAPI schemas of each Kubernetes
release, so a misspelt field or a string where a number belongs is caught before
``kubectl apply``. Strict mode refuses fields the API does not know (a typo such as
``readinesProbe`` would otherwise be dropped without a word by the API server).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

#: The Kubernetes release the manifests are checked against.
KUBERNETES_VERSION = "1.33.0"

#: Kinds that are tools' configuration rather than API objects: not in the API's schemas.
NOT_API_OBJECTS = {"Kustomization"}


@dataclass(frozen=True)
class Manifest:
    """One object of a YAML file: where it came from, and its content."""

    path: Path
    document: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.document.get("kind", "?")

    @property
    def name(self) -> str:
        """``metadata.name``; a tool's file without one (a Kustomization) is named by its file."""
        return self.document.get("metadata", {}).get("name", self.path.stem)

    def __str__(self) -> str:
        return f"{self.path.name}: {self.kind}/{self.name}"


def load_manifests(folder: str | Path) -> list[Manifest]:
    """Every object of every ``*.yaml`` file in ``folder``, in file order."""
    paths = sorted(Path(folder).glob("*.yaml"))
    if not paths:
        raise FileNotFoundError(f"No *.yaml files in {folder}")
    return [
        Manifest(path, document)
        for path in paths
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def problems(manifest: Manifest, version: str = KUBERNETES_VERSION) -> list[str]:
    """What the Kubernetes API would refuse in ``manifest`` (empty when it is valid).

    Each problem names the field by its path, as ``kubectl`` does: ``spec.replicas: 'two' is
    not of type 'integer', 'null'``.
    """
    if manifest.kind in NOT_API_OBJECTS:
        return []
    try:
        kubernetes_validate.validate(manifest.document, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        field = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        return [f"{manifest}: {field}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{manifest}: no schema for {manifest.document.get('apiVersion')} {manifest.kind}"]
    return []


def validate_folder(folder: str | Path, version: str = KUBERNETES_VERSION) -> list[str]:
    """Every problem in every manifest of ``folder`` (empty when all are valid)."""
    return [
        problem for manifest in load_manifests(folder) for problem in problems(manifest, version)
    ]
