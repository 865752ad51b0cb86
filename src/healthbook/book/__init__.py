"""The health book (Sổ sức khỏe điện tử, QĐ 1332/QĐ-BYT): its four data groups, built from FHIR resources.

Pure functions over resource dictionaries, shared by Patient/$summary (the document) and the web page
(which is rendered from that document), so that both always show the same thing.
"""
