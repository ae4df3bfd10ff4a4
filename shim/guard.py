"""Set in the environment of every real-runtime process syscage-runtime starts: a runtime.path that points
back at syscage-runtime then fails at once with a clear line instead of running itself forever."""

LOOP_GUARD = "SYSCAGE_RUNTIME_WRAPPED"
