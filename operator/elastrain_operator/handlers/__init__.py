"""kopf handlers: orchestration only."""
