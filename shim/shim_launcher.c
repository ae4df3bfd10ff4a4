/* containerd-shim-syscage-v2: the launcher in front of the Python shim wrapper (containerd-shim-syscage-v2-py,
 * syscage/shim/containerd_shim.py), which containerd starts for every container of the syscage handler.
 *
 * In the steady state it does what the Python wrapper does, without Python: <run_dir>/shim-path/runc already
 * links to the syscage-runtime beside this executable, so it execs the first containerd-shim-runc-v2 in PATH
 * (not in that directory) with that directory put first in PATH. Anything else (no valid config cache, the
 * link missing or pointing elsewhere, a PATH entry it would have to normalise, no runc shim) goes to Python,
 * which makes the link or says what is wrong. Build: syscage/shim/launcher_build.py. */
#include "launcher.h"

#define SELF "containerd-shim-syscage-v2"
#define RUNC_SHIM "containerd-shim-runc-v2"
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static char **g_argv;

static void python(void) __attribute__((noreturn));
static void python(void) { to_python(SELF, SELF "-py", g_argv); }

/* A PATH entry Python's os.path.abspath leaves as it is: absolute, no empty, "." or ".." part, no trailing /. */
static int plain(const char *entry, size_t len) {
    if (len == 0 || entry[0] != '/' || (len > 1 && entry[len - 1] == '/'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (entry[i] != '/')
            continue;
        const char *part = entry + i + 1;
        size_t rest = len - i - 1;
        if ((rest >= 1 && part[0] == '/') || (rest == 1 && part[0] == '.') || (rest >= 2 && part[0] == '.' &&
            (part[1] == '/' || (part[1] == '.' && (rest == 2 || part[2] == '/')))))
            return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    struct keys k;
    char exe[PATH_MAX], wrapper[PATH_MAX], dir[PATH_MAX], link[PATH_MAX], target[PATH_MAX], shim[PATH_MAX];
    const char *path = getenv("PATH"), *entry;
    char *slash, *newpath;
    ssize_t len;

    if (argc < 1) {
        fputs(SELF ": error: started without even a program name\n", stderr);
        return 2;
    }
    g_argv = argv;
    if (!load_keys(&k) || strlen(k.run_dir) < 2 || !plain(k.run_dir, strlen(k.run_dir)))
        python(); /* (an unusual run_dir spelling: Python joins it with shim-path its own way) */
    len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        python();
    exe[len] = '\0';
    slash = strrchr(exe, '/');
    if (!slash)
        python();
    *slash = '\0';
    if (snprintf(wrapper, sizeof wrapper, "%s/syscage-runtime", exe) >= (int)sizeof wrapper ||
        snprintf(dir, sizeof dir, "%s/shim-path", k.run_dir) >= (int)sizeof dir ||
        snprintf(link, sizeof link, "%s/runc", dir) >= (int)sizeof link)
        python();
    len = readlink(link, target, sizeof target - 1);
    if (len <= 0 || (size_t)len != strlen(wrapper) || memcmp(target, wrapper, (size_t)len) != 0)
        python(); /* the first start, or syscage moved: Python (re)makes the link */
    if (!path)
        path = DEFAULT_PATH;
    shim[0] = '\0';
    for (entry = path; !shim[0]; entry++) {
        const char *colon = strchr(entry, ':');
        size_t n = colon ? (size_t)(colon - entry) : strlen(entry);
        if (n > 0 && !(n == strlen(dir) && memcmp(entry, dir, n) == 0)) {
            if (!plain(entry, n) || n + sizeof "/" RUNC_SHIM > sizeof shim)
                python();
            memcpy(shim, entry, n);
            strcpy(shim + n, "/" RUNC_SHIM);
            if (access(shim, X_OK) != 0)
                shim[0] = '\0';
        }
        if (!colon)
            break;
        entry = colon;
    }
    if (!shim[0])
        python(); /* it says that containerd is missing */
    newpath = malloc(strlen(dir) + 1 + strlen(path) + 1);
    if (!newpath)
        python();
    sprintf(newpath, "%s:%s", dir, path);
    if (setenv("PATH", newpath, 1) != 0)
        python();
    argv[0] = shim;
    execv(shim, argv);
    fprintf(stderr, SELF ": error: cannot run %s: %s\n", shim, strerror(errno));
    return 1;
}
