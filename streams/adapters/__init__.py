"""Input adapters: HL7 v2, FHIR R4 and CSV/Parquet event logs to canonical events."""
