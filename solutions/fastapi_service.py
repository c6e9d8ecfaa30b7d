"""Exercise 4: a complete FastAPI model service.

Run it with either of:

    python -m llmlab.service --port 8000 --api-key "$KEY"
    uvicorn solutions.fastapi_service:app --host 127.0.0.1 --port 8000

It answers the source chapter's ``POST /generate`` and ``POST /chat`` and the OpenAI API
(``/v1/chat/completions`` with streaming, ``/v1/completions``, ``/v1/models``), reports
``/health`` and ``/metrics``, batches concurrent requests, refuses with 429 when its queue is
full, and checks ``Authorization: Bearer`` when ``LLMLAB_API_KEY`` is set. The code lives in
``llmlab/service/`` (``app.py``: routes; ``engine.py``: batching; ``schemas.py``: limits).
"""

from llmlab.service.app import create_app

app = create_app()
