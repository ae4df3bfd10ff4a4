// Execs from a second thread: the kernel gives the exec'ing thread its process's pid.
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
static void *run(void *arg) { char *argv[] = {"/bin/busybox", "sync", NULL}; execv(argv[0], argv); return NULL; }
int main(void) { pthread_t t; pthread_create(&t, NULL, run, NULL); pthread_join(t, NULL); return 1; }
