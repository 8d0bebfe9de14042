"""Package attributes imported on first use (PEP 562), so light imports stay light."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_attributes(package: str, where: dict[str, str], namespace: dict[str, Any]
                    ) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``name`` comes from the submodule
    ``where[name]`` (relative to ``package``) and is cached in ``namespace``."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f".{where[name]}", package)
        value = module if where[name] == name else getattr(module, name)
        namespace[name] = value
        return value

    return __getattr__
