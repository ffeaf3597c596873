"""The regional health information platform (ARCHITECTURE.md §3): MPI, records, immunization,
access, audit, federation."""
