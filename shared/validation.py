"""Flow validation beyond shape: what ``POST /v2/Flows/Validate`` and create/update enforce (81022)."""

from __future__ import annotations

from typing import Any

from shared.flow import FlowDefinition, parse_definition

__all__ = ["validate_definition"]


def validate_definition(raw: Any) -> FlowDefinition:
    """Parse and check a definition; raise ``FlowDefinitionError`` listing every problem with its path."""
    return parse_definition(raw)
