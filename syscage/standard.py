"""Values with one source: the config's file and default paths, the standard PATH. No imports at all: the
runtime wrapper's passthrough path (syscage.shim.fastconfig) reads them on every runtime call, the full
config loader (syscage.config) builds its defaults from them."""

CONFIG_FILE = "/etc/syscage/config.toml"
CONFIG_ENV = "SYSCAGE_CONFIG"  # names another config file
RUNTIME_PATH = "/usr/sbin/runc"  # runtime.path
RUN_DIR = "/run/syscage"  # paths.run_dir
STORE = "/var/lib/syscage"  # paths.store
LOG_FILE = "/var/log/syscage/syscage.log"  # paths.log_file
HOOK_PATH = "/usr/local/bin/syscage-hook"  # runtime.hook_path

# Runtimes start hooks with no PATH, and the tracer is started with a clean environment: this one then.
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Set for every real-runtime process syscage-runtime starts: a runtime.path that points back at
# syscage-runtime then fails at once with a clear line instead of running itself forever.
LOOP_GUARD = "SYSCAGE_RUNTIME_WRAPPED"
