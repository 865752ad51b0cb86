"""Import pipelines: sources (files from other systems) → mappers → FHIR resources → the FHIR service."""
