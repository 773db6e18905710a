-- Optuna keeps its own tables (studies, trials, alembic_version, ...) in a database of its own,
-- so they never meet the service's tables or its Alembic history.
CREATE DATABASE paretonas_optuna OWNER paretonas;
