"""meterd daemon, in floors (docs/adr/0006-floors.md): kernel, storage, services, runtime, cli, api, web.

This file imports nothing: every `import daemon.kernel...` in collectors/ and billing/ runs it.
"""


def __getattr__(name: str) -> str:
    # The installed version is looked up on first use only: reading package metadata costs
    # hundreds of milliseconds on a busy machine, which every import of the kernel would pay.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 - deferred on purpose

    try:
        found = version("meterd")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found
