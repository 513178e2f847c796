"""Running facelab past one process: batch work on Ray (`ray_engine`), a serving how-to in docs/deployment.md.

Only the per-photo work is distributed; writing into a gallery stays with the one driver process, so the gallery's
own rules (file ledger, duplicates, one transaction per batch) hold unchanged.
"""
