"""The local inference server (FastAPI + uvicorn) built on `core`: ``flowvq serve``.

Modules: `config` (settings and limits), `errors` (the one error shape), `schemas` (pydantic
request and response models), `store` (durable job directories), `worker` (the one model worker
thread), `rendering` (the bridge to `core.render`), `security` (host/origin/token/body-size
middleware), `app` (the app factory and routes), `cli` (``flowvq serve``), `process` (start a
server subprocess, for tests and benchmarks). The wire contract is ``docs/api.md``.
"""

__all__: list[str] = []
