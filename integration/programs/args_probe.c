// Uses the syscall arguments syscage learns, then (with "more") tries the ones a learned profile must deny;
// prints one line per attempt. Learning runs it without "more": AF_UNIX and AF_INET sockets, a thread (glibc
// 2.36 tries clone3 first, and falls back to clone when clone3 answers ENOSYS), a fork, unshare(0) and
// personality(PER_LINUX).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void *noop(void *arg) { return arg; }

static const char *outcome(long r) { return r < 0 ? strerror(errno) : "ok"; }

static void sock(const char *name, int family, int type) {
    int fd = socket(family, type, 0);
    printf("socket(%s): %s\n", name, outcome(fd));
    if (fd >= 0) close(fd);
}

int main(int argc, char **argv) {
    int more = argc > 1 && strcmp(argv[1], "more") == 0;
    int status;
    sock("AF_UNIX", AF_UNIX, SOCK_STREAM);
    sock("AF_INET", AF_INET, SOCK_DGRAM);
    pthread_t t;
    int err = pthread_create(&t, NULL, noop, NULL);
    printf("thread: %s\n", err == 0 && pthread_join(t, NULL) == 0 ? "ok" : strerror(err));
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    printf("fork: %s\n", pid > 0 && waitpid(pid, &status, 0) == pid ? "ok" : strerror(errno));
    printf("unshare(0): %s\n", outcome(syscall(SYS_unshare, 0)));
    printf("personality(PER_LINUX): %s\n", outcome(syscall(SYS_personality, PER_LINUX)));
    if (!more)
        return 0;
    sock("AF_INET6", AF_INET6, SOCK_DGRAM);
    sock("AF_PACKET", AF_PACKET, SOCK_DGRAM);
    sock("AF_NETLINK", AF_NETLINK, SOCK_DGRAM);
    fflush(stdout);
    long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    if (r > 0) waitpid((pid_t)r, &status, 0);
    printf("clone(CLONE_NEWUSER): %s\n", outcome(r));
    printf("unshare(CLONE_NEWUSER): %s\n", outcome(syscall(SYS_unshare, CLONE_NEWUSER)));
    printf("personality(PER_LINUX32): %s\n", outcome(syscall(SYS_personality, PER_LINUX32)));
    printf("clone3: %s\n", outcome(syscall(SYS_clone3, NULL, 0)));
    return 0;
}
