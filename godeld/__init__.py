"""godeld: the godel daemon.

This module is the plugin author's API (``from godeld import hookimpl``) and must stay
cheap to import: godelctl imports ``godeld.protocol`` and must not pull in pluggy or trio.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]


def __getattr__(name: str):
    # Lazy so that `import godeld.protocol` (done by godelctl) does not import pluggy.
    if name == "hookimpl":
        import pluggy

        marker = pluggy.HookimplMarker("godel")
        globals()["hookimpl"] = marker
        return marker
    raise AttributeError(f"module 'godeld' has no attribute {name!r}")
