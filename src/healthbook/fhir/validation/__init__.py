"""FHIR R4 validation driven by the official StructureDefinitions (vendored, loaded once on first use)."""

from __future__ import annotations

from healthbook.fhir.validation.model import RESOURCE_TYPES, load_model
from healthbook.fhir.validation.validator import MAX_DEPTH, MAX_ISSUES, resource_types, validate_resource

__all__ = ["MAX_DEPTH", "MAX_ISSUES", "RESOURCE_TYPES", "load_model", "resource_types", "validate_resource"]
