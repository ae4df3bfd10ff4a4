// i386 syscall 36 (sync; on x86_64, 36 is getitimer), exit status 0 when it succeeded.
// Built two ways: as a 64-bit static program that makes it with `int $0x80` (the 64-bit code segment:
// only the instruction tells the ABI), and with -m32 -nostdlib as a whole 32-bit process (every syscall
// i386, through the 32-bit code segment). The 64-bit build also makes one x32 syscall (getpid, which
// fails with ENOSYS on kernels without x32: its result is not checked).
#ifdef __i386__
void _start(void)
{
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(36L) : "memory");
    __asm__ volatile("int $0x80" : : "a"(1L), "b"(ret != 0) : "memory");  // i386 exit (1 is write on x86_64)
    for (;;) {
    }
}
#else
#include <stdio.h>

#define X32_SYSCALL_BIT 0x40000000L
#define X32_GETPID 39L

int main(void)
{
    long ret, ignored;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(36L) : "rcx", "r8", "r9", "r10", "r11", "memory");
    __asm__ volatile("syscall" : "=a"(ignored) : "a"(X32_SYSCALL_BIT | X32_GETPID) : "rcx", "r11", "memory");
    if (ret != 0) {
        printf("int 0x80 sync failed: %ld\n", ret);
        return 1;
    }
    printf("synced through int 0x80\n");
    return 0;
}
#endif
