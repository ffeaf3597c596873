"""The platform's HTTP API (FastAPI) … one router per resource (ARCHITECTURE.md §3 api/);
``fhir`` holds the FHIR R4 read views of the platform's data."""
