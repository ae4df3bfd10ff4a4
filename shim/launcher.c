/* syscage-runtime: the launcher in front of the Python wrapper (syscage-runtime-py, syscage/shim/runtime.py).
 *
 * Most runtime calls have nothing for syscage to do; this program proves that much without starting
 * Python and execs the real runtime (runtime.path) with the same arguments. It hands the call to the
 * Python wrapper, unchanged, whenever it cannot prove it:
 *   - the config's cache is missing or stale, or the loop guard is set (Python says what is wrong);
 *   - a global option it does not know, `--`, help or version (it reads runc's Go flag rules and crun's
 *     getopt rules exactly as syscage/shim/argv.py parse_global does, for the options it accepts);
 *   - `create` or `run`, and any spec the runtime could read mentions syscage (see tagged_spec: a superset of
 *     the bundle's config.json, whatever the order and form of the options), or a learning marker exists
 *     under any name among the arguments (a stale marker is Python's to clear);
 *   - `delete`, and a learning marker exists under any name among its arguments.
 * Everything else (start, state, kill, exec, ...) is exec'd at once, as the Python wrapper would. It never
 * writes to stdout. Build: syscage/shim/launcher_build.py. */
#include "launcher.h"

#define SELF "syscage-runtime"
#define LOOP_GUARD "SYSCAGE_RUNTIME_WRAPPED"
#define MAX_SPEC (64 << 20)

static char **g_argv;

static void python(void) __attribute__((noreturn));
static void python(void) { to_python(SELF, "syscage-runtime-py", g_argv); }

/* Everything that makes runtime.py take its slow path, or more: its SLOW_PATH_TAGS, with "io.syscage.mode"
 * widened to any "io.syscage." key. */
static const char *const TAGS[] = {"io.syscage.", "\"args\": [\"syscage-hook\", ", "\"syscage-prestart-relay\"",
                                   "\"syscage-denials-note\""};

static int names(const char *arg, const char *const *list, size_t count, size_t len) {
    for (size_t i = 0; i < count; i++)
        if (strlen(list[i]) == len && strncmp(arg, list[i], len) == 0)
            return 1;
    return 0;
}

/* runc's global options (urfave/cli over Go's flag package); the index of the subcommand, -1 to ask Python.
 * Any option but these (help, version, an unknown one) and `--` go to Python. */
static int runc_global(char **args, int n, const char **root) {
    static const char *const values[] = {"log", "log-format", "root", "criu", "rootless"};
    static const char *const flags[] = {"debug", "systemd-cgroup"};
    int i = 0;
    while (i < n) {
        const char *arg = args[i], *name, *eq;
        size_t len;
        if (strcmp(arg, "--") == 0)
            return -1;
        if (strlen(arg) < 2 || arg[0] != '-')
            return i; /* the first operand is the subcommand */
        name = arg + (arg[1] == '-' ? 2 : 1);
        eq = strchr(name, '=');
        len = eq ? (size_t)(eq - name) : strlen(name);
        if (len == 0 || name[0] == '-')
            return -1;
        i++;
        if (names(name, values, 5, len)) {
            const char *value = eq ? eq + 1 : NULL;
            if (!value) {
                if (i == n)
                    return -1;
                value = args[i++]; /* Go: a value option takes the next argument, whatever it is */
            }
            if (len == 4 && strncmp(name, "root", 4) == 0)
                *root = value; /* the last one wins */
        } else if (!names(name, flags, 2, len)) {
            return -1;
        }
    }
    return -1;
}

/* crun's global options (argp: getopt_long in order, unique prefixes of long names); as runc_global. */
static int crun_global(char **args, int n, const char **root) {
    static const char *const longs[] = {"cgroup-manager", "log", "log-format", "log-level", "root", "rootless",
                                        "program-name", "debug", "systemd-cgroup", "version", "help", "usage", "HANG"};
    enum { VALUES = 7, FLAGS = 9, LONGS = 13 }; /* longs[0..VALUES) take a value, [VALUES..FLAGS) take none */
    int i = 0;
    while (i < n) {
        const char *arg = args[i++], *typed, *eq;
        size_t len;
        int match = -1, count = 0;
        if (strcmp(arg, "--") == 0)
            return -1;
        if (arg[0] != '-' || strcmp(arg, "-") == 0)
            return i - 1;
        if (arg[1] != '-')
            return -1; /* crun's global short options (-v, -V, -?) all print and stop */
        typed = arg + 2;
        eq = strchr(typed, '=');
        len = eq ? (size_t)(eq - typed) : strlen(typed);
        for (int j = 0; j < LONGS && len; j++) {
            if (strncmp(longs[j], typed, len) != 0)
                continue;
            if (strlen(longs[j]) == len) { /* an exact name wins over the names it prefixes */
                match = j;
                count = 1;
                break;
            }
            match = j;
            count++;
        }
        if (count != 1 || match >= FLAGS || (match >= VALUES && eq))
            return -1;
        if (match < VALUES) {
            const char *value = eq ? eq + 1 : NULL;
            if (!value) {
                if (i == n)
                    return -1;
                value = args[i++];
            }
            if (match == 4)
                *root = value;
        }
    }
    return -1;
}

/* 1 if the file mentions syscage (or cannot be read for certain), 0 if not, -1 if it does not exist. */
static int tagged_file(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC), found = 0;
    size_t size;
    char *text;
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? -1 : 1;
    text = slurp(fd, MAX_SPEC, &size);
    close(fd);
    if (!text)
        return 1; /* not a regular file, too large, or unreadable: Python reads it as the runtime would */
    for (size_t i = 0; i < sizeof TAGS / sizeof TAGS[0] && !found; i++)
        found = memmem(text, size, TAGS[i], strlen(TAGS[i])) != NULL;
    free(text);
    return found;
}

/* Might the runtime read a spec from `path`, and does it mention syscage? A directory's config.json (the
 * bundle), or a regular file itself (crun's --config); a socket (--console-socket) or nothing at all is no
 * spec; any other kind of file goes to Python. */
static int tagged_candidate(const char *path) {
    struct stat st;
    char spec[PATH_MAX];
    if (!*path || stat(path, &st) != 0)
        return *path && errno != ENOENT && errno != ENOTDIR && errno != ENAMETOOLONG;
    if (S_ISDIR(st.st_mode)) {
        if (snprintf(spec, sizeof spec, "%s/config.json", path) >= (int)sizeof spec)
            return 1;
        return tagged_file(spec) == 1;
    }
    if (S_ISSOCK(st.st_mode))
        return 0;
    return tagged_file(path) == 1;
}

/* Does any spec this command line could make the runtime read mention syscage? Candidates, whatever the
 * option syntax: the working directory, every argument, the part of it after the first '=' (--bundle=B),
 * and every tail of a short-option cluster (-bB, -dbB, -fFILE). A superset of what parse_create finds. */
static int tagged_spec(char **args, int n) {
    if (tagged_file("config.json") == 1)
        return 1;
    for (int i = 0; i < n; i++) {
        const char *arg = args[i], *eq = strchr(arg, '=');
        if (tagged_candidate(arg) || (eq && tagged_candidate(eq + 1)))
            return 1;
        if (arg[0] == '-' && arg[1] && arg[1] != '-')
            for (size_t k = 2; arg[k]; k++)
                if (tagged_candidate(arg + k))
                    return 1;
    }
    return 0;
}

/* Is there a learning marker (syscage/shim/markers.py marker_path) under the name of any argument? */
static int marked(const char *run_dir, const char *root, char **args, int n) {
    char dir[PATH_MAX];
    size_t at;
    struct stat st;
    int fd;
    at = (size_t)snprintf(dir, sizeof dir, "%s/learning/%s", run_dir, root && *root ? "root=" : "default");
    if (at >= sizeof dir)
        return 1;
    for (const char *p = root && *root ? root : ""; *p; p++) {
        const char *piece = *p == '%' ? "%25" : *p == '/' ? "%2F" : NULL;
        if (at + 4 >= sizeof dir)
            return 1;
        if (piece) {
            memcpy(dir + at, piece, 3);
            at += 3;
        } else {
            dir[at++] = *p;
        }
    }
    dir[at] = '\0';
    if (strlen(strrchr(dir, '/') + 1) > 200)
        return 1; /* marker_path gives no marker then; Python decides */
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno != ENOENT && errno != ENOTDIR; /* no marker directory for this root: the usual case */
    for (int i = 0; i < n; i++) {
        const char *name = args[i];
        if (!*name || name[0] == '.' || strchr(name, '/') || strlen(name) > 200)
            continue; /* never a marker's name */
        if (fstatat(fd, name, &st, 0) == 0 || (errno != ENOENT && errno != ENOTDIR)) {
            close(fd);
            return 1;
        }
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    struct keys k;
    const char *root = NULL, *base, *sub;
    char **args = argv + 1;
    int n = argc - 1, index;

    if (argc < 1) {
        fputs(SELF ": error: started without even a program name\n", stderr);
        return 2;
    }
    g_argv = argv;
    if (getenv(LOOP_GUARD) || !load_keys(&k))
        python();
    base = strrchr(k.runtime, '/') + 1;
    index = strstr(base, "crun") ? crun_global(args, n, &root) : runc_global(args, n, &root);
    if (index < 0)
        python();
    sub = args[index];
    if (strcmp(sub, "create") == 0 || strcmp(sub, "run") == 0) {
        if (tagged_spec(args, n) || marked(k.run_dir, root, args + index + 1, n - index - 1))
            python();
    } else if (strcmp(sub, "delete") == 0) {
        if (marked(k.run_dir, root, args + index + 1, n - index - 1))
            python();
    }
    setenv(LOOP_GUARD, "1", 1);
    argv[0] = k.runtime;
    execv(k.runtime, argv);
    fprintf(stderr, SELF ": error: cannot run the real runtime %s: %s; set runtime.path in the syscage config\n",
            k.runtime, strerror(errno));
    return 127;
}
