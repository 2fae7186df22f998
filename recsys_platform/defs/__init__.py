"""What Dagster loads: assets, checks, jobs, schedules and sensors, one folder per stage with its SQL beside
it. `recsys_platform.definitions` assembles them with the deployment's resources."""
