"""The reference label-conversations job (stand-in for the production image)."""

from label_conversations.job import JobConfig, JobConfigError, RunResult, connect_postgres, run, run_from_env

__all__ = ["JobConfig", "JobConfigError", "RunResult", "connect_postgres", "run", "run_from_env"]
