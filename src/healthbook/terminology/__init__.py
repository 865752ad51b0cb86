"""National code lists as data (ICD-10 per QĐ 4469/QĐ-BYT), shared by validation, importers and reports."""
