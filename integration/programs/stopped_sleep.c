// Sleeps for argv[1] seconds with nanosleep(2) and says how it went. A sleep interrupted by a stop signal
// resumes, after SIGCONT, through restart_syscall, which the kernel makes for the process: if a filter denies
// it, nanosleep fails with the filter's errno (not EINTR) and this prints it and exits 1.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    struct timespec left = {argc > 1 ? atoi(argv[1]) : 1, 0};
    while (nanosleep(&left, &left) != 0) {
        if (errno != EINTR) {
            printf("nanosleep: %s\n", strerror(errno));
            return 1;
        }
    }
    printf("slept\n");
    return 0;
}
