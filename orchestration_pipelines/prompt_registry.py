"""Versioned prompts: one YAML file per (id, version) under ``prompts/``.

A prompt file holds the system message, the user template (``$field`` placeholders, filled from
policy-filtered, redacted record fields), and the JSON schema of the typed output. The output schema
becomes a pydantic model, so every caller gets a validated object and the exact version used is
recorded with every call. A version marked ``status: candidate`` only runs in shadow until promoted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from orchestration_pipelines.config_files import parse_yaml
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.shadow import active_version

PROMPT_DIR = Path(__file__).parent / "prompts"

_JSON_TYPES: dict[str, type] = {"string": str, "number": float, "integer": int, "boolean": bool}


def _field_type(spec: dict[str, Any]) -> Any:
    if "enum" in spec:
        return Literal[tuple(spec["enum"])]
    if spec["type"] == "array":
        return list[_field_type(spec["items"])]
    return _JSON_TYPES[spec["type"]]


def output_model(name: str, schema: dict[str, Any]) -> type[BaseModel]:
    """A strict pydantic model from the prompt's flat JSON schema (extra keys are invalid output)."""
    fields: dict[str, Any] = {}
    for prop, spec in schema["properties"].items():
        bounds = {key: spec[key] for key in ("minimum", "maximum") if key in spec}
        constraints = Field(
            ..., ge=bounds.get("minimum"), le=bounds.get("maximum"), description=spec.get("description")
        )
        fields[prop] = (_field_type(spec), constraints)
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


@dataclass(frozen=True)
class Prompt:
    id: str
    version: int
    system: str
    template: str
    output_schema: dict[str, Any]
    status: str = "active"
    output_model: type[BaseModel] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        model_name = "".join(part.title() for part in self.id.split("_")) + f"V{self.version}"
        object.__setattr__(self, "output_model", output_model(model_name, self.output_schema))

    @property
    def fields(self) -> set[str]:
        """The record fields the template needs: checked against the data policy before any call."""
        return set(Template(self.template).get_identifiers())

    def messages(self, values: dict[str, str]) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": Template(self.template).substitute(values)},
        ]


def load_prompt(path: Path) -> Prompt:
    document = parse_yaml(path.read_text())
    return Prompt(
        id=document["id"],
        version=int(document["version"]),
        system=document["system"].strip(),
        template=document["template"].strip(),
        output_schema=document["output_schema"],
        status=document.get("status", "active"),
    )


class PromptRegistry:
    """All prompt files of a directory; the active version comes from the store once one is promoted."""

    def __init__(self, directory: Path = PROMPT_DIR):
        self._prompts = {(p.id, p.version): p for p in map(load_prompt, sorted(directory.glob("*.yaml")))}

    def get(self, prompt_id: str, version: int) -> Prompt:
        try:
            return self._prompts[(prompt_id, version)]
        except KeyError:
            raise KeyError(f"no prompt {prompt_id!r} version {version}") from None

    def versions(self, prompt_id: str) -> list[int]:
        return sorted(version for pid, version in self._prompts if pid == prompt_id)

    def active(self, prompt_id: str, store: OpStore | None = None) -> Prompt:
        """The promoted version if any, else the newest version not marked as a candidate."""
        promoted = active_version(store, "prompt", prompt_id) if store else None
        if promoted is not None:
            return self.get(prompt_id, int(promoted.version))
        released = [
            v for v in self.versions(prompt_id) if self._prompts[(prompt_id, v)].status != "candidate"
        ]
        if not released:
            raise KeyError(f"no released version of prompt {prompt_id!r}")
        return self.get(prompt_id, released[-1])
