"""Run the real `examples/trading_api.py` with CORS for one browser origin.

    python tests/web/trading_api_cors.py ORIGIN --issuer URL --audience trading-api --port P

The demo dApp (served by did-auth on its own port) calls the trading API from the browser,
a cross-origin request with an Authorization header, so the API must answer the CORS
preflight for the demo's origin. examples/trading_api.py has no CORS option (yet): this
runs its own `main()` unchanged and wraps the app it serves in Starlette's CORSMiddleware.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

import uvicorn
from starlette.middleware.cors import CORSMiddleware

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    origin = sys.argv[1]
    real_run = uvicorn.run

    def run(app: Any, **kwargs: Any) -> None:
        real_run(
            CORSMiddleware(
                app,
                allow_origins=[origin],
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type", "dpop"],
                expose_headers=["WWW-Authenticate"],
            ),
            **kwargs,
        )

    uvicorn.run = run  # type: ignore[assignment]
    sys.argv = [str(ROOT / "examples" / "trading_api.py"), *sys.argv[2:]]
    sys.path.insert(0, str(ROOT))
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
