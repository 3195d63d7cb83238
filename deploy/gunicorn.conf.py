"""gunicorn settings for the API, shared by `make run` and the Docker image (override by environment)."""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# Two CPU-bound processes per core would thrash on small machines; threads cover the I/O waits.
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, (os.cpu_count() or 1))))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 30
graceful_timeout = 20
keepalive = 5
# gunicorn's largest request line (8 KiB); the app refuses query strings over 4 KiB with a JSON 414.
limit_request_line = 8190
# A header field may be this long before gunicorn refuses it with its own HTML page; the app refuses
# any over MAX_HEADER_BYTES (8 KiB: an oversized token, say) with a JSON 431 (backend/__init__.py).
limit_request_field_size = 65536
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", None)
errorlog = "-"
# Create the app once, then fork: workers share its read-only memory.
preload_app = False
# The control socket (gunicorn 24+) is not used; it needs a writable home directory.
control_socket_disable = True


# Prometheus metrics from several processes: each writes to a shared directory, /metrics sums them.
# A fresh directory per start, so that counters of a previous run are not added in.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="safetravel-metrics-")


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
