"""An agent template: which prompt, tools, knowledge collections, approval rules and model
an agent uses, read from a versioned YAML file and checked before anything runs it."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.tools import ToolRegistry

NAME = r"^[a-z][a-z0-9_-]{0,39}$"


class TemplateError(Exception):
    """A template file that cannot be used; the message names the file and the problem."""


class PromptSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)  # bumped with every change, so a run records which it used
    text: str = Field(min_length=20)


class ApprovalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # External actions always wait for a person; these only tighten that.
    four_eyes: bool = False  # requesters may not approve their own actions
    expires_after_hours: int = Field(default=24, ge=1, le=24 * 14)


class AgentTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    version: int = Field(ge=1)
    description: str = Field(min_length=1)
    prompt: PromptSpec
    tools: list[str] = Field(default_factory=list)  # names in the tool registry
    collections: list[str] = Field(default_factory=list)  # knowledge it searches
    approval: ApprovalSpec = Field(default_factory=ApprovalSpec)
    model: str | None = None  # None: the deployment's LLM_MODEL
    golden_set: str  # JSONL file, relative to the template's folder

    def unknown_tools(self, registry: ToolRegistry) -> list[str]:
        """Tools the template names that this deployment does not have."""
        return [name for name in self.tools if registry.get(name) is None]


def load_template(path: Path) -> AgentTemplate:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        template = AgentTemplate.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"{path.name}: cannot be read: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise TemplateError(f"{path.name}: {problems}") from None
    if template.name != path.stem:
        raise TemplateError(f"{path.name}: its name is {template.name!r}, not {path.stem!r}")
    return template


def load_templates(folder: Path) -> dict[str, AgentTemplate]:
    """Every template in `folder` (one *.yaml file each), by name."""
    return {path.stem: load_template(path) for path in sorted(folder.glob("*.yaml"))}
