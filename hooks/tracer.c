// syscage tracer: records, per watched container, the set of syscalls its
// threads make from the moment the container's seccomp filter would start
// seeing them ("cut-over"), and nothing else.
//
// No kernel struct is read: only raw tracepoint arguments (syscall id),
// per-syscall tracepoint fields (parsed by bcc from tracefs format files) and
// helpers. Nothing here depends on kernel headers matching the kernel.
//
// Hot path (every syscall on the host): one hash lookup keyed by thread id.
// Its cost does not depend on how many containers are watched.
//
// Constants MAX_SLOTS, MAX_THREADS, NR_WORDS, NR_EXECVE, NR_EXECVEAT and the
// counter indexes come from the Python side (hooks/tracer_bpf.py) as -D flags.

#define MODE_SECCOMP 1   // arm a thread when it loads a seccomp filter
#define MODE_EXEC    2   // no filter in the spec: arm at the first execve

#define ARMED_EXECED 1   // the armed thread has completed an execve

#define SET_ALL      0   // bitmap of every syscall seen after cut-over
#define SET_PRE_EXEC 1   // subset seen before the workload's execve
#define NR_SETS      2

#define SECCOMP_SET_MODE_FILTER 1
#define SECCOMP_FILTER_FLAG_TSYNC 1
#define PR_SET_SECCOMP 22
#define SECCOMP_MODE_FILTER 2

struct watch_info {
    u32 slot;
    u32 mode;
    u64 pidns_dev;
    u64 pidns_ino;
};

struct armed_info {
    u32 slot;
    u32 flags;
};

struct pending_load {
    u32 slot;
    u32 tsync;
};

// cgroup v2 id of a watched container -> its slot. Written by user space.
BPF_HASH(watch, u64, struct watch_info, MAX_SLOTS);
// thread id -> slot, for every thread past its container's cut-over point.
BPF_HASH(armed, u32, struct armed_info, MAX_THREADS);
// process id -> slot, for processes that loaded their filter with TSYNC.
BPF_HASH(armed_tgid, u32, struct armed_info, MAX_SLOTS);
// thread id -> slot, between entry and exit of a seccomp filter load.
BPF_HASH(pending, u32, struct pending_load, MAX_SLOTS);
// syscall bitmaps: [slot][set][word]
BPF_ARRAY(seen, u64, MAX_SLOTS * NR_SETS * NR_WORDS);
// per-slot counters: [slot][counter]
BPF_ARRAY(counters, u64, MAX_SLOTS * NR_COUNTERS);
// [0]: non-zero once any process was armed by TSYNC (saves a lookup otherwise)
BPF_ARRAY(globals, u32, 1);

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

static __always_inline void arm(u32 tid, u32 slot, u32 flags)
{
    struct armed_info a = {.slot = slot, .flags = flags};
    if (armed.insert(&tid, &a) == 0)
        count(slot, CNT_ARMED_THREADS);
    else if (!armed.lookup(&tid))
        count(slot, CNT_ARMED_MAP_FULL);
}

RAW_TRACEPOINT_PROBE(sys_enter)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    struct armed_info *a = armed.lookup(&tid);
    if (!a) {
        u32 zero = 0;
        u32 *any_tsync = globals.lookup(&zero);
        if (!any_tsync || !*any_tsync)
            return 0;
        u32 tgid = id >> 32;
        a = armed_tgid.lookup(&tgid);
        if (!a)
            return 0;
    }
    long nr = ctx->args[1];
    mark(a->slot, SET_ALL, nr);
    if (!(a->flags & ARMED_EXECED))
        mark(a->slot, SET_PRE_EXEC, nr);
    return 0;
}

// A filter is inherited by every thread and process the armed thread creates.
TRACEPOINT_PROBE(sched, sched_process_fork)
{
    u32 parent = args->parent_pid;
    struct armed_info *a = armed.lookup(&parent);
    if (!a) {
        u32 tgid = bpf_get_current_pid_tgid() >> 32;
        a = armed_tgid.lookup(&tgid);
        if (!a)
            return 0;
    }
    struct armed_info copy = *a;
    arm(args->child_pid, copy.slot, copy.flags);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    armed.delete(&tid);
    if (args->group_dead) {
        u32 tgid = id >> 32;
        armed_tgid.delete(&tgid);
    }
    return 0;
}

// A non-leader thread that execs takes over its process's pid: carry its armed state over, or the
// process would silently stop being recorded (the leader's entry went away when the leader exited).
TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u32 old_tid = args->old_pid, new_tid = args->pid;
    if (old_tid == new_tid)
        return 0;
    struct armed_info *a = armed.lookup(&old_tid);
    if (!a)
        return 0;
    struct armed_info copy = *a;
    armed.update(&new_tid, &copy);
    armed.delete(&old_tid);
    return 0;
}

static __always_inline void note_filter_load(u32 tsync)
{
    u32 tid = bpf_get_current_pid_tgid();
    if (armed.lookup(&tid))
        return;  // already past cut-over (a nested filter changes nothing)
    struct watch_info *w = watched_container();
    if (!w || w->mode != MODE_SECCOMP)
        return;
    struct pending_load p = {.slot = w->slot, .tsync = tsync};
    pending.update(&tid, &p);
}

static __always_inline void finish_filter_load(long ret)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    struct pending_load *p = pending.lookup(&tid);
    if (!p)
        return;
    struct pending_load load = *p;
    pending.delete(&tid);
    if (ret < 0)
        return;
    arm(tid, load.slot, 0);
    count(load.slot, CNT_CUTOVER_SECCOMP);
    if (load.tsync) {
        u32 tgid = id >> 32;
        struct armed_info a = {.slot = load.slot, .flags = 0};
        armed_tgid.update(&tgid, &a);
        u32 zero = 0, one = 1;
        globals.update(&zero, &one);
        count(load.slot, CNT_TSYNC);
    }
}

TRACEPOINT_PROBE(syscalls, sys_enter_seccomp)
{
    if (args->op == SECCOMP_SET_MODE_FILTER)
        note_filter_load(args->flags & SECCOMP_FILTER_FLAG_TSYNC);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_seccomp)
{
    finish_filter_load(args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_prctl)
{
    if (args->option == PR_SET_SECCOMP && args->arg2 == SECCOMP_MODE_FILTER)
        note_filter_load(0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_prctl)
{
    finish_filter_load(args->ret);
    return 0;
}

static __always_inline void finish_exec(long ret, long nr)
{
    if (ret != 0)
        return;
    u32 tid = bpf_get_current_pid_tgid();
    struct armed_info *a = armed.lookup(&tid);
    if (a) {
        a->flags |= ARMED_EXECED;
        return;
    }
    struct watch_info *w = watched_container();
    if (!w || w->mode != MODE_EXEC)
        return;
    // No filter to cut over at: the workload's first execve is the cut-over.
    // The execve itself was not seen on entry (not armed yet): record it here.
    arm(tid, w->slot, ARMED_EXECED);
    mark(w->slot, SET_ALL, nr);
    count(w->slot, CNT_CUTOVER_EXEC);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
    finish_exec(args->ret, NR_EXECVE);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
    finish_exec(args->ret, NR_EXECVEAT);
    return 0;
}
