"""An MCP tool's arguments, checked against the server's own inputSchema before any call.

Our Tool takes a pydantic model for its arguments (to parse, validate, describe and store
them); for an MCP tool that model is a thin shell around the server's JSON schema: it
validates with `jsonschema` and describes the tool to the model with the schema as the
server wrote it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, model_validator
from referencing import Registry

MAX_REPORTED_PROBLEMS = 5


class McpArguments(BaseModel):
    """Subclassed once per tool by `arguments_model`; the fields are the schema's."""

    model_config = ConfigDict(extra="allow")

    input_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    validator: ClassVar[Any] = Draft202012Validator({"type": "object"})

    @model_validator(mode="before")
    @classmethod
    def _fits_the_servers_schema(cls, data: Any) -> Any:
        problems = sorted(cls.validator.iter_errors(data), key=lambda error: list(error.path))
        if problems:
            lines = [_problem(error) for error in problems[:MAX_REPORTED_PROBLEMS]]
            raise ValueError("; ".join(lines))
        return data

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return dict(cls.input_schema)


def arguments_model(tool_name: str, input_schema: dict[str, Any]) -> type[McpArguments]:
    """The arguments model for one MCP tool; raises SchemaError for a schema that is not
    valid JSON Schema (the tool is then left out)."""
    validator_class = validator_for(input_schema, default=Draft202012Validator)
    validator_class.check_schema(input_schema)
    # An empty registry: a `$ref` resolves inside the schema only, never by fetching a
    # URL a third-party server put in its schema.
    validator = validator_class(input_schema, registry=Registry())
    namespace = {"input_schema": input_schema, "validator": validator, "__module__": __name__}
    return type(f"McpArguments_{tool_name}", (McpArguments,), namespace)


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error.path) or "arguments"
    return f"{where}: {error.message}"


__all__ = ["McpArguments", "SchemaError", "arguments_model"]
