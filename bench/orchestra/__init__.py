"""The benchmark orchestrator behind bench/run.py, one concern a module."""
