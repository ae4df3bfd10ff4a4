/* What syscage-runtime's and containerd-shim-syscage-v2's launchers share: the two config keys they need,
 * read only from the cache the Python side writes (syscage/configcache.py, syscage/shim/fastconfig.py), and
 * the hand-over to the Python entry installed beside the launcher.
 *
 * Rule for everything here: when in doubt, hand over to Python, which decides as it always has. Only the
 * standard C library; no allocation that outlives main, since every path ends in exec or exit. */
#ifndef SYSCAGE_LAUNCHER_H
#define SYSCAGE_LAUNCHER_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CACHE_DIR
#define CACHE_DIR "/run/syscage-runtime" /* syscage.configcache.CACHE_DIR (tests build with their own) */
#endif
#define DEFAULT_CONFIG "/etc/syscage/config.toml"
#define DEFAULT_RUNTIME "/usr/sbin/runc"
#define DEFAULT_RUN_DIR "/run/syscage"
#define MAX_CONFIG (1 << 20)

struct keys {
    char runtime[PATH_MAX];
    char run_dir[PATH_MAX];
};

/* The Python entry beside this executable (its real path: an install links /usr/local/bin to a venv). */
static void to_python(const char *self, const char *entry, char **argv) __attribute__((noreturn));
static void to_python(const char *self, const char *entry, char **argv) {
    char path[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", path, sizeof path - 1);
    char *slash;
    if (len > 0) {
        path[len] = '\0';
        slash = strrchr(path, '/');
        if (slash && (size_t)(slash + 1 - path) + strlen(entry) < sizeof path) {
            strcpy(slash + 1, entry);
            argv[0] = path;
            execv(path, argv);
        }
    }
    fprintf(stderr, "%s: error: cannot run its Python entry %s beside /proc/self/exe: %s; reinstall syscage\n",
            self, entry, strerror(errno ? errno : ENOENT));
    exit(1);
}

/* A whole regular file into a new buffer (NUL-terminated); NULL with errno set. */
static char *slurp(int fd, size_t max, size_t *size) {
    struct stat st;
    char *buf;
    size_t got = 0;
    if (fstat(fd, &st) != 0)
        return NULL;
    if (!S_ISREG(st.st_mode) || st.st_size < 0 || (size_t)st.st_size > max) {
        errno = EFBIG;
        return NULL;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        return NULL;
    for (;;) { /* read to the end, not to st_size: the file may have grown since */
        ssize_t n;
        if (got == (size_t)st.st_size) {
            char extra;
            n = read(fd, &extra, 1);
            if (n == 0)
                break;
            free(buf);
            errno = n > 0 ? EAGAIN : errno; /* it changed under us */
            return NULL;
        }
        n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            errno = n == 0 ? EAGAIN : errno;
            return NULL;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *size = got;
    return buf;
}

/* One line of the cache body: an absolute path of printable ASCII; the end of the line, or NULL. */
static const char *cache_line(const char *p, const char *end, char *out) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl || nl == p || *p != '/' || (size_t)(nl - p) >= PATH_MAX)
        return NULL;
    for (const char *c = p; c < nl; c++)
        if (*c < 0x20 || *c > 0x7e)
            return NULL;
    memcpy(out, p, (size_t)(nl - p));
    out[nl - p] = '\0';
    return nl + 1;
}

/* runtime.path and paths.run_dir, as syscage.shim.fastconfig.read_keys gives them; 0: ask Python (no valid
 * cache yet, an unreadable config, anything unusual). */
static int load_keys(struct keys *k) {
    const char *config = getenv("SYSCAGE_CONFIG");
    char cache[PATH_MAX];
    size_t config_len, cache_len, at = 0, length = 0;
    char *text, *cached;
    const char *p, *end;
    struct stat st;
    int fd, ok = 0;

    if (!config || !*config)
        config = DEFAULT_CONFIG;
    fd = open(config, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            return 0;
        strcpy(k->runtime, DEFAULT_RUNTIME); /* no config file: the defaults, as Python reads it */
        strcpy(k->run_dir, DEFAULT_RUN_DIR);
        return 1;
    }
    text = slurp(fd, MAX_CONFIG, &config_len);
    close(fd);
    if (!text)
        return 0;
    /* The cache file's name: the config path with % and / escaped (configcache.cache_path). */
    at = (size_t)snprintf(cache, sizeof cache, "%s/", CACHE_DIR);
    for (p = config; *p && at + 4 < sizeof cache; p++) {
        const char *piece = *p == '%' ? "%25" : *p == '/' ? "%2F" : NULL;
        if (piece) {
            memcpy(cache + at, piece, 3);
            at += 3;
        } else {
            cache[at++] = *p;
        }
    }
    if (*p || at + sizeof ".keys" > sizeof cache) {
        free(text);
        return 0;
    }
    memcpy(cache + at, ".keys", sizeof ".keys");
    fd = open(cache, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        free(text);
        return 0;
    }
    /* Trusted only if ours and nobody else can write it: it names the binary we exec. */
    cached = fstat(fd, &st) == 0 && st.st_uid == geteuid() && !(st.st_mode & 022)
                 ? slurp(fd, 2 * MAX_CONFIG + 2 * PATH_MAX, &cache_len) : NULL;
    close(fd);
    if (cached) {
        /* "<length of the config text>\n<the config text><runtime path>\n<run dir>\n" */
        end = cached + cache_len;
        for (p = cached; p < end && *p >= '0' && *p <= '9' && p - cached < 12; p++)
            length = length * 10 + (size_t)(*p - '0');
        if (p > cached && p < end && *p == '\n' && length == config_len && (size_t)(end - p - 1) >= length &&
            memcmp(p + 1, text, length) == 0) {
            p = cache_line(p + 1 + length, end, k->runtime);
            p = p ? cache_line(p, end, k->run_dir) : NULL;
            ok = p == end;
        }
        free(cached);
    }
    free(text);
    return ok;
}

#endif
