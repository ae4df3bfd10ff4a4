// Forks, starts a thread, then asks for a new user namespace with unshare(2) and with clone(2); prints what
// happened. Under a filter that allows clone and unshare only without CLONE_NEWUSER (as containerd's
// RuntimeDefault does), the first two work and the last two fail.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void *noop(void *arg) { return arg; }

static const char *outcome(long r) { return r < 0 ? strerror(errno) : "ok"; }

// unshare(CLONE_NEWUSER) refuses a multithreaded caller with EINVAL, and a joined thread can still count in
// the thread group for a moment after pthread_join: try again briefly (a filter's EPERM is not retried).
static long unshare_user(void) {
    long r = syscall(SYS_unshare, CLONE_NEWUSER);
    for (int i = 0; i < 200 && r < 0 && errno == EINVAL; i++) {
        usleep(5000);
        r = syscall(SYS_unshare, CLONE_NEWUSER);
    }
    return r;
}

int main(void) {
    int status;
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    printf("fork: %s\n", pid > 0 && waitpid(pid, &status, 0) == pid ? "ok" : strerror(errno));
    pthread_t t;
    int err = pthread_create(&t, NULL, noop, NULL);
    printf("thread: %s\n", err == 0 && pthread_join(t, NULL) == 0 ? "ok" : strerror(err));
    printf("unshare(0): %s\n", outcome(syscall(SYS_unshare, 0)));
    fflush(stdout);
    long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    if (r > 0) waitpid((pid_t)r, &status, 0);
    printf("clone(CLONE_NEWUSER): %s\n", outcome(r));
    printf("unshare(CLONE_NEWUSER): %s\n", outcome(unshare_user()));
    return 0;
}
