// syscage tracer: records, per watched container, the set of syscalls its
// threads make from the moment the container's seccomp filter starts seeing
// them ("cut-over"), and nothing else.
//
// Kernel structs are not read, with one exception: the user register frame
// (struct pt_regs), whose layout is the syscall ABI and identical in every
// kernel version: the syscall arguments of prctl/seccomp, and which ABI a
// syscall came through (native, i386 or x32). The rest is raw tracepoint
// arguments, fields of sched tracepoints (parsed by bcc from the tracefs format
// files at load time) and helpers.
//
// Hot path (every syscall on the host, while at least one container is
// watched; sys_enter is detached otherwise): one array access indexed by thread
// id, inlined by the verifier. Its cost does not depend on how many containers
// are watched. A syscall of a watched thread costs one more helper call (the
// register frame read that tells its ABI). Only syscall tracepoints set the kernel's per-task syscall-trace
// flag, so sys_enter is the only syscall tracepoint used: filter loads and
// execs are recognised there, and exec success comes from sched_process_exec.
//
// AppArmor learning (only for armed threads, only in the few syscalls that name a file or create a
// socket, so the cost of every other syscall is unchanged): paths given to open, openat, openat2,
// creat, execve, execveat and the other path operations AppArmor mediates (unlink, mkdir, rename, ...)
// go into a bounded hash keyed by (slot, path) with the access kinds AppArmor checks; a relative name
// gets its directory (cwd or dirfd) resolved by a dentry walk (resolve_relative); socket and socketpair
// set a (family, type) bit per slot; a kprobe on cap_capable, where the kernel has kprobes, sets a
// capability bit per slot. Anything that cannot be recorded (an unresolvable directory, a path at the
// length limit, an unreadable path, a full table) is counted, never guessed. The path and socket recording
// is a program of its own (on_mediated), which on_sys_enter tail-calls: together they would exceed the
// 4096 instructions some kernels load (integration/test_tracer.py keeps each program well under it).
//
// Every constant user space shares (map sizes, MODE_*, SET_*, NR_SETS, PATH_ACC_*, NR_* and SC_*
// syscall numbers, CNT_* counter indexes, ...) comes from hooks/tracer_bpf.py (bpf_cflags) as -D flags.

// asm/ptrace.h, not linux/ptrace.h: the latter pulls in the scheduler's headers, and parsing them was
// most of the compile (seconds on a host, minutes under emulation). Only struct pt_regs is needed.
#include <asm/ptrace.h>

#define ARMED_EXECED 1   // the armed thread has completed an execve

#define USER32_CS       0x23        // __USER32_CS: the code segment of 32-bit user code
#define X32_SYSCALL_BIT 0x40000000  // set in the number of an x32 syscall
#define INSN_INT80      0x80cd      // `int $0x80` (CD 80), read as a little-endian u16

// Syscall ABI values (guarded: some are also in the headers bcc includes).
#ifndef SECCOMP_SET_MODE_FILTER
#define SECCOMP_SET_MODE_FILTER 1
#endif
#ifndef SECCOMP_FILTER_FLAG_TSYNC
#define SECCOMP_FILTER_FLAG_TSYNC 1
#endif
#ifndef PR_SET_SECCOMP
#define PR_SET_SECCOMP 22
#endif
#ifndef SECCOMP_MODE_FILTER
#define SECCOMP_MODE_FILTER 2
#endif

#define AT_FDCWD_ -100
#define O_ACCMODE_ 3
#define O_WRONLY_ 1
#define O_RDWR_ 2
#define O_CREAT_ 0100
#define O_TRUNC_ 01000
#define O_APPEND_ 02000
#define O_TMPFILE_ 020000000
#define O_DIRECTORY_ 0200000
#define SOCK_TYPE_MASK_ 0xf

struct path_key {
    u32 slot;
    u32 gen;
    char path[PATH_LEN];
    u32 dirlen;  // bytes of `path` that are the resolved directory of a relative name (0: absolute as given)
};

// Scratch for building a key: a resolved directory and a relative name may together run past `path`
// (the tail takes the overflow, which is then counted as truncated), and the walk's dentry names.
struct path_scratch_t {
    struct path_key k;
    char tail[PATH_LEN];
    u64 names[WALK_COMPONENTS];
    u32 depth;  // in the map, not a register: the verifier then need not follow each depth apart
};

struct watch_info {
    u32 slot;
    u32 mode;
    u32 gen;
    u32 pad;
    u64 pidns_dev;
    u64 pidns_ino;
};

// gen == 0: not armed. An entry is live only while slot_gen[slot] == gen, so
// releasing a slot invalidates all its threads at once, with no map walk.
struct armed_info {
    u32 gen;
    u16 slot;
    u16 flags;
};

// cgroup v2 id of a watched container -> its slot. Written by user space.
BPF_HASH(watch, u64, struct watch_info, MAX_SLOTS);
// thread id -> armed state, for thread ids below PID_TABLE (kernel.pid_max).
BPF_ARRAY(armed_tab, struct armed_info, PID_TABLE);
// thread ids at or above PID_TABLE (pid_max raised after the tracer started).
BPF_HASH(armed_overflow, u32, struct armed_info, MAX_OVERFLOW);
// process id -> armed state, for processes that loaded their filter with TSYNC.
BPF_HASH(armed_tgid, u32, struct armed_info, MAX_SLOTS);
// thread id -> syscall nr of an execve/execveat entered by a container in exec mode.
BPF_HASH(pending_exec, u32, u32, MAX_SLOTS);
// slot -> its current generation (0: free).
BPF_ARRAY(slot_gen, u32, MAX_SLOTS);
// syscall bitmaps: [slot][set][word]
BPF_ARRAY(seen, u64, MAX_SLOTS * NR_SETS * NR_WORDS);
// per-slot counters: [slot][counter]
BPF_ARRAY(counters, u64, MAX_SLOTS * NR_COUNTERS);
// (slot, generation, absolute path) -> access kinds (PATH_ACC_*); bounded per slot by user space's limit.
BPF_HASH(paths, struct path_key, u64, MAX_PATHS);
// scratch space for a path key (too big for the BPF stack)
BPF_PERCPU_ARRAY(path_scratch, struct path_scratch_t, 1);
// per slot: how many paths it holds (bounded by PATHS_PER_SLOT)
BPF_ARRAY(path_count, u64, MAX_SLOTS);
// socket (family, type) bitmaps: [slot][family] -> bit per type
BPF_ARRAY(sockets, u64, MAX_SLOTS * NR_FAMILIES);
// capabilities checked by cap_capable: [slot] -> bit per capability
BPF_ARRAY(caps, u64, MAX_SLOTS);
// Argument learning (syscage.arguments.ARGUMENTS): syscall nr -> which table entry reads which argument.
struct arg_rule {
    u32 entry;      // 1 + the entry's index in ARGUMENTS (0: the syscall's arguments are not learned)
    u32 index;      // argument index
    u64 mask;       // bits kept of the value (all ones for a value compared whole)
    u32 in_memory;  // 1: the argument is a pointer to the flag word (clone3's struct clone_args)
    u32 pad;
};
struct arg_key {
    u32 slot;
    u32 entry;
    u64 value;
};
BPF_ARRAY(arg_rules, struct arg_rule, NR_WORDS * 64);
// (slot, entry, masked value) seen; at most ARG_VALUES_CAP per (slot, entry), counted in arg_count.
BPF_HASH(arg_values, struct arg_key, u8, MAX_ARG_VALUES);
// [slot][entry] -> distinct values held; above ARG_VALUES_CAP: overflowed (the syscall is then unconditional)
BPF_ARRAY(arg_count, u64, MAX_SLOTS * NR_ARG_ENTRIES);
// [0]: non-zero once any process was armed by TSYNC (saves a lookup otherwise)
BPF_ARRAY(globals, u32, 1);
// Programs reached by tail call: [PROG_MEDIATED] on_mediated, put there by user space at load (tracer_bpf.py).
BPF_PROG_ARRAY(progs, 1);

static __always_inline void count(u32 slot, u32 which)
{
    u32 idx = slot * NR_COUNTERS + which;
    u64 *c = counters.lookup(&idx);
    if (c)
        __sync_fetch_and_add(c, 1);
}

static __always_inline void mark(u32 slot, u32 set, long nr)
{
    if (nr < 0 || nr >= NR_WORDS * 64) {
        count(slot, CNT_NR_OUT_OF_RANGE);
        return;
    }
    u32 idx = (slot * NR_SETS + set) * NR_WORDS + ((u32)nr >> 6);
    u64 *w = seen.lookup(&idx);
    if (!w)
        return;
    u64 bit = 1ULL << (nr & 63);
    // Read first: after warm-up every syscall is already known, so the hot
    // path never writes and never bounces the cache line between CPUs.
    if (!(*w & bit))
        __sync_fetch_and_or(w, bit);
}

static __always_inline int live(struct armed_info *a)
{
    if (!a || !a->gen)
        return 0;
    u32 slot = a->slot;
    u32 *gen = slot_gen.lookup(&slot);
    return gen && *gen == a->gen;
}

// The armed state of a thread (live or stale), or 0 when it has none.
static __always_inline struct armed_info *armed_of(u32 tid)
{
    if (tid < PID_TABLE)
        return armed_tab.lookup(&tid);
    return armed_overflow.lookup(&tid);
}

static __always_inline void arm(u32 tid, u32 slot, u32 gen, u32 flags)
{
    struct armed_info a = {.gen = gen, .slot = slot, .flags = flags};
    if (tid < PID_TABLE) {
        armed_tab.update(&tid, &a);
    } else if (armed_overflow.update(&tid, &a) != 0) {
        count(slot, CNT_ARMED_MAP_FULL);
        return;
    }
    count(slot, CNT_ARMED_THREADS);
}

static __always_inline void disarm(u32 tid)
{
    if (tid < PID_TABLE) {
        struct armed_info none = {};
        armed_tab.update(&tid, &none);
    } else {
        armed_overflow.delete(&tid);
    }
}

// The container this thread belongs to, if it is watched (cgroup match and
// same PID namespace, so a host process in a shared cgroup never counts).
static __always_inline struct watch_info *watched_container(void)
{
    u64 cg = bpf_get_current_cgroup_id();
    struct watch_info *w = watch.lookup(&cg);
    if (!w)
        return 0;
    struct bpf_pidns_info ns = {};
    if (bpf_get_ns_current_pid_tgid(w->pidns_dev, w->pidns_ino, &ns, sizeof(ns)))
        return 0;
    return w;
}

static __always_inline unsigned long syscall_arg(struct pt_regs *regs, int which)
{
    unsigned long value = 0;
    if (which == 1)
        bpf_probe_read_kernel(&value, sizeof(value), &regs->di);
    else
        bpf_probe_read_kernel(&value, sizeof(value), &regs->si);
    return value;
}

// The end of the user register frame, from cx to cs: struct pt_regs as in UAPI asm/ptrace.h.
struct frame_tail {
    unsigned long cx, dx, si, di, orig_ax, ip, cs;
};
_Static_assert(__builtin_offsetof(struct pt_regs, cs) - __builtin_offsetof(struct pt_regs, cx) ==
               6 * sizeof(unsigned long), "pt_regs is not the syscall ABI's register frame");

// Whether the current syscall is an i386 one. The tracepoint gives only its number, which means
// something else on the native ABI (i386 36 is sync, x86_64 36 is getitimer). The register frame
// tells: 32-bit code, and every 32-bit syscall entry (sysenter, 32-bit syscall), has cs ==
// __USER32_CS. 64-bit code can still make i386 syscalls with `int $0x80` (cs is then the 64-bit
// one), which the native `syscall` instruction never leaves behind: that one puts its return
// address in rcx, so cx == ip, and only when they differ are the two instruction bytes before ip
// read. (64-bit code could make an `int $0x80` look native by setting ecx to its return address:
// that is the same as making the native syscall, which it may do anyway.)
static __always_inline int is_i386(struct bpf_raw_tracepoint_args *ctx)
{
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    struct frame_tail f = {};
    if (bpf_probe_read_kernel(&f, sizeof(f), &regs->cx))
        return 0;
    if ((f.cs & 0xffff) == USER32_CS)  // the upper bits carry FRED event data on FRED kernels
        return 1;
    if (f.cx == f.ip)
        return 0;
    u16 insn = 0;
    if (bpf_probe_read_user(&insn, sizeof(insn), (void *)(f.ip - 2)))
        return 0;
    return insn == INSN_INT80;
}

// A thread that is not (yet) recorded makes syscall `nr`: is it a cut-over?
// Filter loads are armed on entry: from the next syscall on, the filter sees
// everything. (A load that then fails only makes the profile larger, never
// smaller; runtimes abort the container when it happens.)
static __always_inline void check_cutover(struct bpf_raw_tracepoint_args *ctx, u32 tid, long nr)
{
    struct watch_info *w = watched_container();
    if (!w)
        return;
    if (nr == NR_EXECVE || nr == NR_EXECVEAT) {
        if (w->mode == MODE_EXEC) {
            u32 n = nr;
            if (pending_exec.update(&tid, &n) != 0)
                count(w->slot, CNT_ARMED_MAP_FULL);
        }
        return;
    }
    if (w->mode != MODE_SECCOMP)
        return;
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    unsigned long a1 = syscall_arg(regs, 1), a2 = syscall_arg(regs, 2);
    u32 tsync = 0;
    if (nr == NR_PRCTL) {
        if (a1 != PR_SET_SECCOMP || a2 != SECCOMP_MODE_FILTER)
            return;
    } else {
        if (a1 != SECCOMP_SET_MODE_FILTER)
            return;
        tsync = a2 & SECCOMP_FILTER_FLAG_TSYNC;
    }
    u32 slot = w->slot, gen = w->gen;
    arm(tid, slot, gen, 0);
    count(slot, CNT_CUTOVER_SECCOMP);
    if (tsync) {
        u32 tgid = bpf_get_current_pid_tgid() >> 32;
        struct armed_info a = {.gen = gen, .slot = slot, .flags = 0};
        if (armed_tgid.update(&tgid, &a) != 0)
            count(slot, CNT_ARMED_MAP_FULL);
        u32 zero = 0, one = 1;
        globals.update(&zero, &one);
        count(slot, CNT_TSYNC);
    }
}

// The syscall's first arguments from the user register frame (the syscall ABI: di, si, dx, r10, r8).
struct frame_args {
    unsigned long r10, r9, r8, ax, cx, dx, si, di;
};
_Static_assert(__builtin_offsetof(struct pt_regs, di) - __builtin_offsetof(struct pt_regs, r10) ==
               7 * sizeof(unsigned long), "pt_regs is not the syscall ABI's register frame");

// Relative names: the directory (the cwd, or the dirfd's open file) is resolved by walking its dentries
// up to the task's root (fs->root: the container's root after pivot_root), crossing mounts, with struct
// offsets from the kernel's BTF (hooks/daemon/btf.py). What the walk cannot finish (deeper than
// WALK_COMPONENTS, a directory outside the root, a dirfd that is not open, no BTF) is counted, never guessed.
static __always_inline u64 kptr(u64 addr)
{
    u64 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (void *)addr);
    return v;
}

#ifdef OFF_TASK_FS
static __always_inline int resolve_relative(struct path_scratch_t *s, long dirfd, const char *upath)
{
    u64 task = (u64)bpf_get_current_task();
    u64 fs = kptr(task + OFF_TASK_FS);
    if (!fs)
        return CNT_PATHS_UNRESOLVED;
    u64 mnt, dentry;
    dirfd = (int)dirfd;  // an int in the syscall ABI: the register's upper half is not part of it
    if (dirfd == AT_FDCWD_) {
        mnt = kptr(fs + OFF_FS_PWD + OFF_PATH_MNT);
        dentry = kptr(fs + OFF_FS_PWD + OFF_PATH_DENTRY);
    } else {
        u64 fdt = kptr(kptr(task + OFF_TASK_FILES) + OFF_FILES_FDT);
        u32 max_fds = 0;
        if (!fdt || dirfd < 0 || bpf_probe_read_kernel(&max_fds, sizeof(max_fds), (void *)(fdt + OFF_FDT_MAX_FDS)) ||
            dirfd >= max_fds)
            return CNT_PATHS_UNRESOLVED;
        u64 file = kptr(kptr(fdt + OFF_FDT_FD) + 8 * (u64)dirfd);
        if (!file)
            return CNT_PATHS_UNRESOLVED;
        mnt = kptr(file + OFF_FILE_PATH + OFF_PATH_MNT);
        dentry = kptr(file + OFF_FILE_PATH + OFF_PATH_DENTRY);
    }
    u64 root_mnt = kptr(fs + OFF_FS_ROOT + OFF_PATH_MNT), root_dentry = kptr(fs + OFF_FS_ROOT + OFF_PATH_DENTRY);
    s->depth = 0;
    int reached = 0;
    for (int i = 0; i < WALK_STEPS; i++) {
        if (dentry == root_dentry && mnt == root_mnt) {
            reached = 1;
            break;
        }
        if (!dentry || !mnt)
            break;
        if (dentry == kptr(mnt + OFF_VFSMOUNT_ROOT)) {  // the top of a mount: continue at its mountpoint
            u64 mount = mnt - OFF_MOUNT_MNT, parent = kptr(mount + OFF_MOUNT_PARENT);
            if (!parent || parent == mount)
                break;  // the top of a mount tree the root is not in
            dentry = kptr(mount + OFF_MOUNT_MOUNTPOINT);
            mnt = parent + OFF_MOUNT_MNT;
            continue;
        }
        u64 up = kptr(dentry + OFF_DENTRY_PARENT);
        u32 depth = s->depth;
        if (up == dentry || depth >= WALK_COMPONENTS)
            break;
        s->names[depth & (WALK_COMPONENTS - 1)] = kptr(dentry + OFF_DENTRY_NAME + OFF_QSTR_NAME);
        s->depth = depth + 1;
        dentry = up;
    }
    if (!reached)
        return s->depth >= WALK_COMPONENTS ? CNT_PATHS_TRUNCATED : CNT_PATHS_UNRESOLVED;
    struct path_key *k = &s->k;
    __builtin_memset(k->path, 0, sizeof(k->path));
    u32 off = 0;
    for (u32 i = 0; i < WALK_COMPONENTS; i++) {
        u32 depth = s->depth;
        if (i >= depth)
            break;
        k->path[off & (PATH_LEN - 1)] = '/';
        off++;
        u64 name = s->names[(depth - 1 - i) & (WALK_COMPONENTS - 1)];
        long n = bpf_probe_read_kernel_str(&k->path[off & (PATH_LEN - 1)], PATH_LEN, (void *)name);
        if (n <= 0)
            return CNT_PATHS_FAULT;
        off += n - 1;
        if (off >= PATH_LEN - 1)
            return CNT_PATHS_TRUNCATED;
    }
    k->path[off & (PATH_LEN - 1)] = '/';
    off++;
    if (!upath) {  // an fd's own file (flock, mmap): no name follows
        k->path[(off - 1) & (PATH_LEN - 1)] = 0;
        k->dirlen = off - 1;
        return 0;
    }
    long n = bpf_probe_read_user_str(&k->path[off & (PATH_LEN - 1)], PATH_LEN, upath);
    if (n <= 0)
        return CNT_PATHS_FAULT;
    if (off + n > PATH_LEN)
        return CNT_PATHS_TRUNCATED;
    if (n == 1)
        k->path[(off - 1) & (PATH_LEN - 1)] = 0;  // AT_EMPTY_PATH: the file itself, no trailing slash
    k->dirlen = off - 1;
    return 0;
}
#else
static __always_inline int resolve_relative(struct path_scratch_t *s, long dirfd, const char *upath)
{
    return CNT_PATHS_UNRESOLVED;  // no BTF offsets: the directory cannot be resolved
}
#endif

static __always_inline int record_path(u32 slot, u32 gen, long dirfd, const char *upath, u64 access)
{
    u32 zero = 0;
    struct path_scratch_t *s = path_scratch.lookup(&zero);
    if (!s)
        return 0;
    struct path_key *k = &s->k;
    __builtin_memset(k, 0, sizeof(*k));
    k->slot = slot;
    k->gen = gen;
    long n = upath ? bpf_probe_read_user_str(k->path, sizeof(k->path), upath) : 1;  // none: the fd's own file
    if (n <= 0) {  // unreadable
        count(slot, CNT_PATHS_FAULT);
        return 0;
    }
    if (n >= PATH_LEN) {
        count(slot, CNT_PATHS_TRUNCATED);
        return 0;
    }
    if (n == 1 || k->path[0] != '/') {
        // Relative to the cwd or a dirfd (empty: AT_EMPTY_PATH, the dirfd's own file): resolved to the
        // container's path of that directory, or counted.
        int err = resolve_relative(s, dirfd, upath);
        if (err) {
            count(slot, err);
            return 0;
        }
    }
    u64 *old = paths.lookup(k);
    if (old) {
        if ((*old & access) != access)
            __sync_fetch_and_or(old, access);
        return 0;
    }
    u64 *held = path_count.lookup(&slot);
    if (!held)
        return 0;
    if (*held >= PATHS_PER_SLOT || paths.insert(k, &access) != 0) {
        count(slot, CNT_PATHS_DROPPED);
        return 0;
    }
    __sync_fetch_and_add(held, 1);
    return 0;
}

static __always_inline u32 open_access(unsigned long flags)
{
    u32 acc = 0;
    u32 mode = flags & O_ACCMODE_;
    if (mode == O_WRONLY_ || mode == O_RDWR_ || (flags & O_TRUNC_))
        acc |= (flags & O_APPEND_) && !(flags & O_TRUNC_) ? PATH_ACC_A : PATH_ACC_W;
    if (mode != O_WRONLY_)
        acc |= PATH_ACC_R;
    if (flags & (O_CREAT_ | O_TMPFILE_))
        acc |= PATH_ACC_C;
    if ((flags & O_DIRECTORY_) && !(flags & O_TMPFILE_))  // O_TMPFILE includes the O_DIRECTORY bit
        acc |= PATH_ACC_DIR;
    return acc;
}

static __always_inline void record_socket(u32 slot, unsigned long family, unsigned long type)
{
    type &= SOCK_TYPE_MASK_;
    if (family >= NR_FAMILIES) {
        count(slot, CNT_SOCKETS_OUT_OF_RANGE);
        return;
    }
    u32 idx = slot * NR_FAMILIES + (u32)family;
    u64 *w = sockets.lookup(&idx);
    if (!w)
        return;
    u64 bit = 1ULL << type;
    if (!(*w & bit))
        __sync_fetch_and_or(w, bit);
}

#define AT_REMOVEDIR_ 0x200
#define RENAME_EXCHANGE_ 2
#define PROT_EXEC_ 4
#define MAP_ANONYMOUS_ 0x20
#define F_SETLK_ 6
#define F_SETLKW_ 7
#define F_OFD_SETLK_ 37
#define F_OFD_SETLKW_ 38

// The other path operations AppArmor mediates, with the permissions it checks (security/apparmor/lsm.c):
// delete for unlink and rmdir, create for mkdir, mknod and symlink, link for the new name of a hard link,
// read+write+delete on a rename's source and create+write on its target (both ways for RENAME_EXCHANGE),
// write for truncate, chmod and chown. PATH_ACC_DIR marks a directory (AppArmor names it with a final "/"),
// PATH_ACC_EITHER a name that may be either (user space records both forms). Locks (flock, fcntl's lock
// commands: k) and executable file mappings (mmap with PROT_EXEC: m) name an fd: its open file's path.
static __always_inline void record_file_op(struct bpf_raw_tracepoint_args *ctx, struct armed_info *a, long nr)
{
    if (nr != SC_UNLINK && nr != SC_UNLINKAT && nr != SC_RMDIR && nr != SC_MKDIR && nr != SC_MKDIRAT &&
        nr != SC_MKNOD && nr != SC_MKNODAT && nr != SC_LINK && nr != SC_LINKAT && nr != SC_SYMLINK &&
        nr != SC_SYMLINKAT && nr != SC_RENAME && nr != SC_RENAMEAT && nr != SC_RENAMEAT2 && nr != SC_TRUNCATE &&
        nr != SC_CHMOD && nr != SC_FCHMODAT && nr != SC_CHOWN && nr != SC_LCHOWN && nr != SC_FCHOWNAT &&
        nr != SC_FLOCK && nr != SC_FCNTL && nr != SC_MMAP)
        return;
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    struct frame_args f = {};
    if (bpf_probe_read_kernel(&f, sizeof(f), &regs->r10))
        return;
    u32 slot = a->slot, gen = a->gen;
    long fd1 = AT_FDCWD_, fd2 = AT_FDCWD_;
    unsigned long p1 = f.di, p2 = 0;
    u64 acc1 = PATH_ACC_W, acc2 = 0;
    if (nr == SC_MMAP) {
        if (!(f.dx & PROT_EXEC_) || (f.r10 & MAP_ANONYMOUS_))
            return;
        fd1 = f.r8, p1 = 0, acc1 = PATH_ACC_M;
    } else if (nr == SC_FLOCK || nr == SC_FCNTL) {
        if (nr == SC_FCNTL && f.si != F_SETLK_ && f.si != F_SETLKW_ && f.si != F_OFD_SETLK_ && f.si != F_OFD_SETLKW_)
            return;
        fd1 = f.di, p1 = 0, acc1 = PATH_ACC_K;
    } else if (nr == SC_UNLINK) {
        acc1 = PATH_ACC_D;
    } else if (nr == SC_RMDIR) {
        acc1 = PATH_ACC_D | PATH_ACC_DIR;
    } else if (nr == SC_UNLINKAT) {
        fd1 = f.di, p1 = f.si, acc1 = PATH_ACC_D | (f.dx & AT_REMOVEDIR_ ? PATH_ACC_DIR : 0);
    } else if (nr == SC_MKDIR) {
        acc1 = PATH_ACC_C | PATH_ACC_DIR;
    } else if (nr == SC_MKDIRAT) {
        fd1 = f.di, p1 = f.si, acc1 = PATH_ACC_C | PATH_ACC_DIR;
    } else if (nr == SC_MKNOD) {
        acc1 = PATH_ACC_C;
    } else if (nr == SC_MKNODAT) {
        fd1 = f.di, p1 = f.si, acc1 = PATH_ACC_C;
    } else if (nr == SC_LINK) {
        p1 = f.si, acc1 = PATH_ACC_L;
    } else if (nr == SC_LINKAT) {
        fd1 = f.dx, p1 = f.r10, acc1 = PATH_ACC_L;
    } else if (nr == SC_SYMLINK) {
        p1 = f.si, acc1 = PATH_ACC_C;
    } else if (nr == SC_SYMLINKAT) {
        fd1 = f.si, p1 = f.dx, acc1 = PATH_ACC_C;
    } else if (nr == SC_RENAME || nr == SC_RENAMEAT || nr == SC_RENAMEAT2) {
        int at = nr != SC_RENAME;
        fd1 = at ? (long)f.di : AT_FDCWD_, p1 = at ? f.si : f.di;
        fd2 = at ? (long)f.dx : AT_FDCWD_, p2 = at ? f.r10 : f.si;
        // A directory's name ends in "/" for AppArmor, and which this is is not known before the call.
        acc1 = PATH_ACC_R | PATH_ACC_W | PATH_ACC_D | PATH_ACC_EITHER, acc2 = PATH_ACC_W | PATH_ACC_C | PATH_ACC_EITHER;
        if (nr == SC_RENAMEAT2 && (f.r8 & RENAME_EXCHANGE_))
            acc1 |= acc2, acc2 = acc1;
    } else if (nr == SC_FCHMODAT || nr == SC_FCHOWNAT) {
        fd1 = f.di, p1 = f.si, acc1 = PATH_ACC_W | PATH_ACC_EITHER;
    } else if (nr != SC_TRUNCATE) {  // chmod, chown, lchown: a file or a directory
        acc1 = PATH_ACC_W | PATH_ACC_EITHER;
    }
    record_path(slot, gen, fd1, (const char *)p1, acc1);
    if (p2)
        record_path(slot, gen, fd2, (const char *)p2, acc2);
}

static __always_inline int is_socket_nr(long nr)
{
    return nr == SC_SOCKET || nr == SC_SOCKETPAIR;
}

static __always_inline int is_mediated_nr(long nr)
{
    return nr == SC_OPEN || nr == SC_OPENAT || nr == SC_OPENAT2 || nr == SC_CREAT || nr == SC_EXECVE ||
           nr == SC_EXECVEAT || is_socket_nr(nr) || nr == SC_UNLINK || nr == SC_UNLINKAT || nr == SC_RMDIR ||
           nr == SC_MKDIR || nr == SC_MKDIRAT || nr == SC_MKNOD || nr == SC_MKNODAT || nr == SC_LINK ||
           nr == SC_LINKAT || nr == SC_SYMLINK || nr == SC_SYMLINKAT || nr == SC_RENAME || nr == SC_RENAMEAT ||
           nr == SC_RENAMEAT2 || nr == SC_TRUNCATE || nr == SC_CHMOD || nr == SC_FCHMODAT || nr == SC_CHOWN ||
           nr == SC_LCHOWN || nr == SC_FCHOWNAT || nr == SC_FLOCK || nr == SC_FCNTL || nr == SC_MMAP;
}

// The few syscalls AppArmor mediates by path or socket kind: their arguments, for an armed thread.
static __always_inline void record_mediated(struct bpf_raw_tracepoint_args *ctx, struct armed_info *a, long nr)
{
    if (nr != SC_OPEN && nr != SC_OPENAT && nr != SC_OPENAT2 && nr != SC_CREAT && nr != SC_EXECVE &&
        nr != SC_EXECVEAT && nr != SC_SOCKET && nr != SC_SOCKETPAIR) {
        record_file_op(ctx, a, nr);
        return;
    }
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    struct frame_args f = {};
    if (bpf_probe_read_kernel(&f, sizeof(f), &regs->r10))
        return;
    u32 slot = a->slot, gen = a->gen;
    if (nr == SC_SOCKET || nr == SC_SOCKETPAIR) {
        record_socket(slot, f.di, f.si);
        return;
    }
    long dirfd = AT_FDCWD_;
    unsigned long upath = f.di;
    u64 access;
    if (nr == SC_OPEN) {
        access = open_access(f.si);
    } else if (nr == SC_CREAT) {
        access = PATH_ACC_W | PATH_ACC_C;
    } else if (nr == SC_EXECVE) {
        access = PATH_ACC_X;
    } else if (nr == SC_EXECVEAT) {
        dirfd = f.di, upath = f.si, access = PATH_ACC_X;
    } else if (nr == SC_OPENAT) {
        dirfd = f.di, upath = f.si, access = open_access(f.dx);
    } else {  // openat2: the flags are the first field of struct open_how, in user memory
        u64 flags = 0;
        if (bpf_probe_read_user(&flags, sizeof(flags), (void *)f.dx)) {
            count(slot, CNT_PATHS_FAULT);
            return;
        }
        dirfd = f.di, upath = f.si, access = open_access(flags);
    }
    record_path(slot, gen, dirfd, (const char *)upath, access);  // one call site: one copy to verify
}

// The value of a learned argument of syscall `nr` (native ABI), for an armed thread: one array lookup for
// every syscall; a register read, and a hash lookup that finds the value after warm-up, for the few learned.
static __always_inline void record_argument(struct bpf_raw_tracepoint_args *ctx, u32 slot, long nr)
{
    if (nr < 0 || nr >= NR_WORDS * 64)
        return;
    u32 n = nr;
    struct arg_rule *r = arg_rules.lookup(&n);
    if (!r || !r->entry || r->entry > NR_ARG_ENTRIES)
        return;
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    struct frame_args f = {};
    if (bpf_probe_read_kernel(&f, sizeof(f), &regs->r10))
        return;
    unsigned long v = r->index == 0 ? f.di : r->index == 1 ? f.si : r->index == 2 ? f.dx
                    : r->index == 3 ? f.r10 : r->index == 4 ? f.r8 : f.r9;
    u32 idx = slot * NR_ARG_ENTRIES + (r->entry - 1);
    u64 *held = arg_count.lookup(&idx);
    if (!held)
        return;
    if (r->in_memory) {
        u64 word = 0;
        if (bpf_probe_read_user(&word, sizeof(word), (void *)v)) {
            if (*held <= ARG_VALUES_CAP)  // unreadable: its value is unknown, so any must stay allowed
                __sync_fetch_and_add(held, ARG_VALUES_CAP + 1);
            return;
        }
        v = word;
    }
    struct arg_key k = {.slot = slot, .entry = r->entry - 1, .value = v & r->mask};
    if (arg_values.lookup(&k))
        return;
    if (*held >= ARG_VALUES_CAP) {
        if (*held == ARG_VALUES_CAP)
            __sync_fetch_and_add(held, 1);
        return;
    }
    u8 one = 1;
    if (arg_values.insert(&k, &one) != 0) {  // the map is full: as an overflow, never a silent loss
        __sync_fetch_and_add(held, ARG_VALUES_CAP + 1);
        return;
    }
    __sync_fetch_and_add(held, 1);
}

// Compat syscalls (i386, x32) go to sets of their own, never into the native ones: the same number
// names another syscall there.
static __always_inline void record(struct bpf_raw_tracepoint_args *ctx, struct armed_info *a, long nr)
{
    u32 slot = a->slot;
    if (nr >= 0 && (nr & X32_SYSCALL_BIT)) {
        count(slot, CNT_COMPAT_X32);
        mark(slot, SET_X32, nr & ~X32_SYSCALL_BIT);
        return;
    }
    if (is_i386(ctx)) {
        count(slot, CNT_COMPAT_I386);
        mark(slot, SET_I386, nr);
        return;
    }
    mark(slot, SET_ALL, nr);
    if (!(a->flags & ARMED_EXECED))
        mark(slot, SET_PRE_EXEC, nr);
    record_argument(ctx, slot, nr);
    if (!is_mediated_nr(nr))
        return;
    // The path and socket recording (dentry walk included) is a program of its own, on_mediated: inlined
    // here it would make this one too large for the kernel. A tail call does not return; when it does
    // (no program in the array), what it would have recorded is counted as lost, never silently missing.
    progs.call(ctx, PROG_MEDIATED);
    count(slot, is_socket_nr(nr) ? CNT_SOCKETS_OUT_OF_RANGE : CNT_PATHS_DROPPED);
}

static __always_inline int is_cutover_nr(long nr)
{
    return nr == NR_PRCTL || nr == NR_SECCOMP || nr == NR_EXECVE || nr == NR_EXECVEAT;
}

// Everything rare: thread ids beyond the table, TSYNC-armed processes and cut-over candidates.
// Kept apart from the hot lookup in on_sys_enter: a map lookup call site shared by two maps is
// not inlined by the verifier, and that costs every syscall on the host about 40 ns.
static __always_inline int slow_path(struct bpf_raw_tracepoint_args *ctx, u64 id, long nr)
{
    u32 tid = (u32)id;
    if (tid >= PID_TABLE) {
        struct armed_info *o = armed_overflow.lookup(&tid);
        if (live(o)) {
            record(ctx, o, nr);
            return 0;
        }
    }
    u32 tgid = id >> 32;
    struct armed_info *t = armed_tgid.lookup(&tgid);
    if (live(t)) {
        record(ctx, t, nr);
        return 0;
    }
    check_cutover(ctx, tid, nr);
    return 0;
}

int on_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    long nr = ctx->args[1];
    if (tid < PID_TABLE) {
        struct armed_info *a = armed_tab.lookup(&tid);
        if (a && a->gen && live(a)) {
            record(ctx, a, nr);
            return 0;
        }
    }
    u32 zero = 0;
    u32 *any_tsync = globals.lookup(&zero);
    if (tid >= PID_TABLE || (any_tsync && *any_tsync) || is_cutover_nr(nr))
        return slow_path(ctx, id, nr);
    return 0;
}

// Tail-called by on_sys_enter for a mediated syscall of an armed native thread. The armed state is looked
// up again (the same lookups as on_sys_enter's; no scratch handed over between the programs).
int on_mediated(struct bpf_raw_tracepoint_args *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    struct armed_info *a = armed_of((u32)id);
    if (!live(a)) {
        u32 tgid = id >> 32;
        a = armed_tgid.lookup(&tgid);
        if (!live(a))
            return 0;  // released since on_sys_enter looked: nothing to record for it
    }
    record_mediated(ctx, a, ctx->args[1]);
    return 0;
}

// A filter is inherited by every thread and process the armed thread creates.
TRACEPOINT_PROBE(sched, sched_process_fork)
{
    u32 parent = args->parent_pid;
    struct armed_info *a = armed_of(parent);
    if (!live(a)) {
        u32 tgid = bpf_get_current_pid_tgid() >> 32;
        a = armed_tgid.lookup(&tgid);
        if (!live(a))
            return 0;
    }
    struct armed_info copy = *a;
    arm(args->child_pid, copy.slot, copy.gen, copy.flags);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    disarm(tid);
    pending_exec.delete(&tid);
    u32 tgid = id >> 32;
#ifdef HAVE_GROUP_DEAD
    if (args->group_dead)
        armed_tgid.delete(&tgid);
#else
    // Kernels before 6.16 have no group_dead field: drop it when the leader exits (a leftover
    // entry is harmless anyway: the generation check ignores it once its slot is released).
    if (tid == tgid)
        armed_tgid.delete(&tgid);
#endif
    return 0;
}

// A successful exec. Runs in the new image's context; a non-leader thread that
// execs has taken over its process's pid (old_pid -> pid).
TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u32 old_tid = args->old_pid, new_tid = args->pid;
    struct armed_info *a = armed_of(old_tid);
    if (live(a)) {
        struct armed_info copy = *a;
        copy.flags |= ARMED_EXECED;
        if (old_tid != new_tid)
            disarm(old_tid);
        if (new_tid < PID_TABLE)
            armed_tab.update(&new_tid, &copy);
        else if (armed_overflow.update(&new_tid, &copy) != 0)
            count(copy.slot, CNT_ARMED_MAP_FULL);
        return 0;
    }
    u32 *nr = pending_exec.lookup(&old_tid);
    if (!nr)
        return 0;
    u32 exec_nr = *nr;
    pending_exec.delete(&old_tid);
    struct watch_info *w = watched_container();
    if (!w || w->mode != MODE_EXEC)
        return 0;
    // No filter to cut over at: the workload's first exec is the cut-over. The
    // exec itself was entered unarmed: record it here.
    u32 slot = w->slot;
    arm(new_tid, slot, w->gen, ARMED_EXECED);
    mark(slot, SET_ALL, exec_nr);
    count(slot, CNT_CUTOVER_EXEC);
    return 0;
}

// Capabilities, where the kernel has kprobes: cap_capable(cred, ns, cap, opts) is asked for every
// capability check (also those the process then fails: the set is a superset of what it used).
int on_cap_capable(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id, tgid = id >> 32;
    struct armed_info *a = armed_of(tid);
    if (!live(a)) {
        a = armed_tgid.lookup(&tgid);
        if (!live(a))
            return 0;
    }
    u32 slot = a->slot;
    unsigned long cap = PT_REGS_PARM3(ctx);
    if (cap >= 64) {
        count(slot, CNT_CAPS_OUT_OF_RANGE);
        return 0;
    }
    u64 *w = caps.lookup(&slot);
    if (!w)
        return 0;
    u64 bit = 1ULL << cap;
    if (!(*w & bit))
        __sync_fetch_and_or(w, bit);
    return 0;
}
