"""syscage-hook's entry: the fast prestart for containers syscage-runtime prepared, else the full hook.

Imports only `sys` until it knows which: the full hook's imports (config loader, OCI model) are what
the fast path exists to skip."""

from __future__ import annotations

import sys


def main() -> int:
    args = sys.argv[1:]
    from syscage.hooks.fast_prestart import PREPARED

    if len(args) == 2 and args[0] == "prestart" and args[1].startswith(PREPARED):
        raw = sys.stdin.buffer.read()
        from syscage.hooks.fast_prestart import key_arguments, watch_prepared

        if watch_prepared(args[1], raw):
            return 0
        from syscage.hooks.hook import main as full_hook

        return full_hook(["prestart", *key_arguments(args[1])], stdin=raw)
    from syscage.hooks.hook import main as full_hook

    return full_hook(args)
