"""The executor service: runs the agent's generated code, one job at a time, inside a hardened container.

Kept free of imports so ``python3 -m executor_service.healthcheck`` starts fast.
"""
