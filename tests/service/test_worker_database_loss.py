"""A worker that loses its database waits with capped backoff, then finishes the job.

The worker reaches PostgreSQL through a TCP proxy the test starts and stops: first the port refuses
connections, then it forwards, then it goes away mid-job, then it comes back.
"""

from __future__ import annotations

import pytest
from sqlalchemy import make_url

from tests.service import test_worker_support as support
from tests.service.test_worker_support import (
    ServiceDB,
    TcpProxy,
    create_job,
    free_port,
    wait_until,
)

service_db = support.service_db  # the fixture: SQLite and PostgreSQL

BACKOFF_LINE = "database unavailable while"


@pytest.mark.parametrize(
    "db_backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_worker_survives_a_database_that_comes_and_goes(service_db: ServiceDB) -> None:
    job_id = create_job(service_db, n_trials=3, epochs=10)
    url = make_url(service_db.url)
    proxy = TcpProxy(port=free_port(), target=(url.host or "127.0.0.1", url.port or 5432))
    through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    worker = service_db.start_worker(PARETONAS_DATABASE_URL=through_proxy)
    try:
        wait_until(lambda: worker.log().count(BACKOFF_LINE) >= 2, what="backoff", watch=worker)
        proxy.start()
        wait_until(lambda: service_db.job(job_id).n_complete >= 1, what="a trial", watch=worker)
        proxy.stop()
        seen = worker.log().count(BACKOFF_LINE)
        wait_until(lambda: worker.log().count(BACKOFF_LINE) > seen, what="backoff", watch=worker)
        proxy.start()
        wait_until(
            lambda: service_db.job(job_id).status == "succeeded", what="the job", watch=worker
        )
    finally:
        proxy.stop()
    log = worker.log()
    assert "retrying in 0.5 s" in log and "retrying in 1.0 s" in log
    trials = service_db.trials(job_id)
    assert [t.state for t in trials].count("complete") == 3
    job = service_db.job(job_id)
    assert (job.n_complete, job.n_running) == (3, 0)
