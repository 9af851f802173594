"""The HTTP edge: FastAPI routers and the ASGI hot path (`api`), the sign-in page and the
demo (`web`). It reads a request, calls one use case of the core and writes the answer."""
