"""``rationales review``: a local web app over the store to read rationales, label their
steps (``Check(kind="human")``) and write feedback that patches them.

``create_app(ReviewConfig(store=...))`` builds the Starlette app; ``queries`` holds the
read-only SQL, ``labels`` the transactional writes, ``render`` the escaping and MathML.
Starlette, uvicorn and latex2mathml come with the ``review`` extra and are imported only
when the app is built.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ReviewConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
