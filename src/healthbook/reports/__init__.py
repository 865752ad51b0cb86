"""Reports: one module per report, its queries in repository.py."""
