"""The contracts every package shares: record types, enums, the feature spec, Arrow schemas.

Imports only the standard library, msgspec and pyarrow (docs/architecture.md, "Import rules").
"""
