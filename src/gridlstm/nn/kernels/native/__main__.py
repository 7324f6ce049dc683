"""``python -m gridlstm.nn.kernels.native``: build (or load from the cache) the native CPU
steps now and say what happened; exit status 1 if they are not available. CI runs it before
the tests, so that the build time shows on its own line."""

from __future__ import annotations

import sys
import warnings

from gridlstm.nn.kernels.native import build


def main() -> int:
    if build.switched_off():
        print(f"native CPU steps: switched off ({build.ENV_SWITCH}=0)")
        return 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = build.load()
    info = build.build_info()
    if not loaded:
        print(f"native CPU steps: not available: {info['reason']}")
        return 1
    how = "built" if info.get("built") else "found in the cache"
    print(
        f"native CPU steps ({build.capability()}): {how}, {info['seconds']:.1f} s: {info['path']}"
    )
    for warning in caught:  # e.g. torch's own notes about CUDA while building
        print(f"  note: {warning.message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
