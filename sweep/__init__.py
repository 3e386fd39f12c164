"""Sweep specs, Ray Tune orchestration, the MLflow store, the leaderboard and the CLI. The only user of Ray."""
