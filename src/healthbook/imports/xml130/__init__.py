"""Import of the Ministry of Health XML output standard (QĐ 130/QĐ-BYT as amended by QĐ 4750 and QĐ 3176).

source.py reads a GIAMDINHHS file safely into episodes (HOSO) of decoded tables; tables.py checks every
field against the QĐ 4750 field table; mappers/ turn an episode into FHIR R4 resources; service.py writes
them through the FHIR batch layer, one transaction per chunk of episodes. docs/xml130-mapping.md has the
mapping table by table and field by field.
"""
