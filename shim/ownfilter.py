"""A bundle's own seccomp filter, remembered across the filters syscage writes into its config.json.

enforce and complain replace linux.seccomp in the bundle's config.json. runc users reuse bundle
directories: learning with such a bundle later must learn under the bundle's own filter, not under
the profile's (nothing the profile denies could ever be learned). So the first replacement keeps the
own filter in a file beside config.json, with the filter syscage wrote; learning puts the own filter
back, provided config.json still holds what syscage wrote (a filter the operator set since wins).

The file lives in the bundle directory, which is exactly as trusted as config.json itself: whoever can
write one can write the other. (An annotation would not do: CRI passes pod annotations into the spec.)
"""

from __future__ import annotations

import json
import os
from typing import Any

OWN_FILTER_FILE = ".syscage-own-seccomp.json"


def _current(spec: dict[str, Any]) -> object:
    linux = spec.get("linux")
    return linux.get("seccomp") if isinstance(linux, dict) else None


def recall(bundle: str, spec: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    """(True, own filter or None) when config.json holds a filter syscage wrote; (False, None) otherwise."""
    try:
        with open(os.path.join(bundle, OWN_FILTER_FILE), "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError, RecursionError):  # a bundle's file is untrusted
        return False, None
    if not isinstance(doc, dict) or "own" not in doc or doc.get("written") != _current(spec):
        return False, None
    own = doc["own"]
    return (True, own) if own is None or isinstance(own, dict) else (False, None)


def remember(bundle: str, recalled: tuple[bool, dict[str, Any] | None], spec_before: dict[str, Any],
             spec_after: dict[str, Any]) -> None:
    """Call after replacing the filter, with what recall() found before: keeps the bundle's own filter (the
    one before syscage's first replacement)."""
    from syscage.atomic import write_atomically

    known, own = recalled
    doc = {"own": own if known else _current(spec_before), "written": _current(spec_after)}
    write_atomically(os.path.join(bundle, OWN_FILTER_FILE), json.dumps(doc).encode(), 0o600)


def forget(bundle: str) -> None:
    try:
        os.unlink(os.path.join(bundle, OWN_FILTER_FILE))
    except OSError:
        return
