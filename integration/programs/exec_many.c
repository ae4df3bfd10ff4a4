/* exec_many N PATH: run PATH N times, one after the other (fork, execve, wait); print how many exited 0.
 * A container that execs without end: every exec is a new image the tracer must follow. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    long n = strtol(argv[1], NULL, 10), ok = 0;
    char *child_argv[] = {argv[2], NULL}, *child_env[] = {NULL};
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 3;
        if (pid == 0) {
            execve(argv[2], child_argv, child_env);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ok++;
    }
    printf("%ld of %ld execs exited 0\n", ok, n);
    return ok == n ? 0 : 1;
}
