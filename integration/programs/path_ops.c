/* path_ops: the path operations AppArmor mediates, named the ways a process can name them: relative to its
 * cwd (also in a mount below the root), relative to a directory fd, and the operations besides open.
 * Exits 0 when every one succeeded (the tracer must learn them all as absolute container paths). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int failed;

static void check(int ok, const char *what)
{
    if (!ok) {
        perror(what);
        failed = 1;
    }
}

int main(void)
{
    int etc = open("/etc", O_RDONLY | O_DIRECTORY);
    check(etc >= 0, "open /etc");
    int fd = openat(etc, "passwd", O_RDONLY);  /* dirfd-relative */
    check(fd >= 0, "openat etc passwd");
    close(fd);
    check(chdir("/dev") == 0, "chdir /dev");  /* a mount below the root */
    fd = open("null", O_WRONLY);
    check(fd >= 0, "open null");
    close(fd);
    check(chdir("/tmp") == 0, "chdir /tmp");
    check(mkdir("made", 0700) == 0, "mkdir");
    check(rename("made", "moved") == 0, "rename");
    check(rmdir("./moved") == 0, "rmdir");
    fd = open("f", O_WRONLY | O_CREAT, 0600);
    check(fd >= 0, "creat f");
    close(fd);
    check(link("f", "hard") == 0, "link");
    check(unlink("hard") == 0, "unlink hard");
    check(symlink("f", "soft") == 0, "symlink");
    check(unlinkat(AT_FDCWD, "soft", 0) == 0, "unlinkat soft");
    check(truncate("/tmp/f", 0) == 0, "truncate");
    check(unlink("/tmp/f") == 0, "unlink f");
    fd = open("/bin/path-ops", O_RDONLY);  /* a lock and an executable mapping name the fd, not a path */
    check(fd >= 0 && flock(fd, LOCK_SH) == 0, "flock");
    check(mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0) != MAP_FAILED, "mmap exec");
    close(fd);
    return failed;
}
