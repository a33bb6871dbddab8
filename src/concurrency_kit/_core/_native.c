/* The compiled fast path of the shared-memory core: what Python cannot do fast (or at all).
 *
 * Robust process-shared pthread mutexes, futex waits, and atomic operations on words in
 * shared memory, each a thin call; plus LockHandle, the C fast path of a lock's acquire and
 * release (the method call itself is the cost of an uncontended lock). Every decision beyond
 * "did the one call succeed" stays in Python: waiting in slices, recovery after an owner
 * died, warnings, statistics. Types come from the system headers (<pthread.h>, <linux/futex.h>);
 * the atomics are the compiler's __atomic builtins, inlined (no libatomic).
 *
 * Addresses are passed as Python ints: the caller keeps the memory mapped for the duration of
 * the call (it holds a reference to the mapping). Calls that may block release the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if !defined(__linux__) || !defined(__GLIBC__)
#error "concurrency_kit's native core needs Linux with glibc (robust process-shared mutexes)"
#endif

#define NS_PER_SECOND 1000000000LL

/* Every layout gives a mutex one 64-byte cache line; the atomics must not fall back to locks. */
_Static_assert(sizeof(pthread_mutex_t) <= 64, "pthread_mutex_t larger than 64 bytes");
_Static_assert(__atomic_always_lock_free(8, 0), "64-bit atomics are not lock-free here");

/* This process's id, read on the lock's hot path; a forked child refreshes it. */
static pid_t cached_pid;

static void
refresh_pid(void)
{
    cached_pid = getpid();
}

static int
check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, expected, nargs);
        return 0;
    }
    return 1;
}

static int
int_arg(PyObject *arg, int *out)
{
    long value = PyLong_AsLong(arg);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (value < INT_MIN || value > INT_MAX) {
        PyErr_Format(PyExc_OverflowError, "%ld does not fit in a C int", value);
        return -1;
    }
    *out = (int)value;
    return 0;
}

static int
address_arg(PyObject *arg, void **out)
{
    unsigned long long value = PyLong_AsUnsignedLongLong(arg);
    if (value == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    if (value == 0 || value % 4 != 0) {
        PyErr_Format(PyExc_ValueError, "not an aligned address: %llu", value);
        return -1;
    }
    *out = (void *)(uintptr_t)value;
    return 0;
}

static struct timespec
to_timespec(long long ns)
{
    struct timespec ts;
    if (ns < 0) {
        ns = 0;
    }
    ts.tv_sec = (time_t)(ns / NS_PER_SECOND);
    ts.tv_nsec = (long)(ns % NS_PER_SECOND);
    return ts;
}

/* -- robust mutexes ---------------------------------------------------------------------- */

static PyObject *
mutex_init(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    void *address;
    if (!check_nargs("mutex_init", nargs, 2) || address_arg(args[0], &address) < 0) {
        return NULL;
    }
    int recursive = PyObject_IsTrue(args[1]);
    if (recursive < 0) {
        return NULL;
    }
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc == 0) {
        rc = pthread_mutexattr_settype(
            &attr, recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_NORMAL);
        if (rc == 0) {
            rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        }
        if (rc == 0) {
            rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        }
        if (rc == 0) {
            rc = pthread_mutex_init((pthread_mutex_t *)address, &attr);
        }
        pthread_mutexattr_destroy(&attr);
    }
    if (rc != 0) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

#define ONE_ADDRESS()                                                                      \
    void *address;                                                                             \
    if (address_arg(arg, &address) < 0) {                                                      \
        return NULL;                                                                           \
    }                                                                                          \
    pthread_mutex_t *mutex = (pthread_mutex_t *)address;

static PyObject *
mutex_trylock(PyObject *module, PyObject *arg)
{
    ONE_ADDRESS()
    return PyLong_FromLong(pthread_mutex_trylock(mutex));
}

static PyObject *
mutex_unlock(PyObject *module, PyObject *arg)
{
    ONE_ADDRESS()
    return PyLong_FromLong(pthread_mutex_unlock(mutex));
}

static PyObject *
mutex_consistent(PyObject *module, PyObject *arg)
{
    ONE_ADDRESS()
    return PyLong_FromLong(pthread_mutex_consistent(mutex));
}

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Tries a busy mutex gets, with the GIL released, before its caller sleeps in the kernel:
 * glibc's robust mutexes never spin, so two processes taking turns at one mutex (a channel's
 * sender and receiver) would otherwise put each other to sleep and wake each other on every
 * turn, at a few microseconds a turn. A holder in this process can take the GIL meanwhile. */
#define LOCK_SPIN_TRIES 100

/* Lock, waiting until deadline_ns on CLOCK_MONOTONIC at most (a brief spin first). */
static int
lock_until(pthread_mutex_t *mutex, long long deadline_ns)
{
    struct timespec deadline = to_timespec(deadline_ns);
    int rc = EBUSY;
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < LOCK_SPIN_TRIES && rc == EBUSY; i++) {
        cpu_relax();
        /* Look before trying: a failed try writes the lock's cache line. */
        if ((__atomic_load_n(&mutex->__data.__lock, __ATOMIC_RELAXED) & FUTEX_TID_MASK) == 0) {
            rc = pthread_mutex_trylock(mutex);
        }
    }
    if (rc != EBUSY) {
        goto done;
    }
#if __GLIBC_PREREQ(2, 30)
    rc = pthread_mutex_clocklock(mutex, CLOCK_MONOTONIC, &deadline);
#else
    /* Before glibc 2.30: an absolute CLOCK_REALTIME deadline, computed as late as possible. */
    struct timespec now_mono, now_real;
    clock_gettime(CLOCK_MONOTONIC, &now_mono);
    clock_gettime(CLOCK_REALTIME, &now_real);
    long long left = deadline_ns - (now_mono.tv_sec * NS_PER_SECOND + now_mono.tv_nsec);
    deadline = to_timespec(now_real.tv_sec * NS_PER_SECOND + now_real.tv_nsec + (left > 0 ? left : 0));
    rc = pthread_mutex_timedlock(mutex, &deadline);
#endif
done:
    Py_END_ALLOW_THREADS
    return rc;
}

static PyObject *
mutex_lock_until(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    void *address;
    if (!check_nargs("mutex_lock_until", nargs, 2)
        || address_arg(args[0], &address) < 0) {
        return NULL;
    }
    long long deadline_ns = PyLong_AsLongLong(args[1]);
    if (deadline_ns == -1 && PyErr_Occurred()) {
        return NULL;
    }
    pthread_mutex_t *mutex = (pthread_mutex_t *)address;
    int rc = pthread_mutex_trylock(mutex);
    if (rc == EBUSY) {
        rc = lock_until(mutex, deadline_ns);
    }
    return PyLong_FromLong(rc);
}

/* The lock word of glibc's mutex: [waiters | owner died | owner's kernel thread id]. */
static PyObject *
mutex_holder(PyObject *module, PyObject *arg)
{
    ONE_ADDRESS()
    int word = __atomic_load_n(&mutex->__data.__lock, __ATOMIC_RELAXED);
    return PyLong_FromLong(word & FUTEX_TID_MASK);
}

static PyObject *
mutex_count(PyObject *module, PyObject *arg)
{
    ONE_ADDRESS()
    return PyLong_FromUnsignedLong(__atomic_load_n(&mutex->__data.__count, __ATOMIC_RELAXED));
}

/* -- futexes --------------------------------------------------------------------------------
 * Shared (no FUTEX_PRIVATE_FLAG): the words live in memory shared between processes. */

static PyObject *
futex_wait(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    void *address;
    if (!check_nargs("futex_wait", nargs, 3) || address_arg(args[0], &address) < 0) {
        return NULL;
    }
    unsigned long expected = PyLong_AsUnsignedLong(args[1]);
    if (expected == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    long long deadline_ns = PyLong_AsLongLong(args[2]);
    if (deadline_ns == -1 && PyErr_Occurred()) {
        return NULL;
    }
    struct timespec deadline = to_timespec(deadline_ns);
    long rc;
    int err = 0;
    Py_BEGIN_ALLOW_THREADS
    /* FUTEX_WAIT_BITSET: an absolute deadline on CLOCK_MONOTONIC. */
    rc = syscall(SYS_futex, (uint32_t *)address, FUTEX_WAIT_BITSET, (uint32_t)expected, &deadline,
                 NULL, FUTEX_BITSET_MATCH_ANY);
    if (rc != 0) {
        err = errno;
    }
    Py_END_ALLOW_THREADS
    if (err == EAGAIN) {
        err = 0; /* the word had changed already: as good as woken */
    }
    return PyLong_FromLong(err);
}

static PyObject *
futex_wake(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    void *address;
    if (!check_nargs("futex_wake", nargs, 2) || address_arg(args[0], &address) < 0) {
        return NULL;
    }
    int count;
    if (int_arg(args[1], &count) < 0) {
        return NULL;
    }
    long rc = syscall(SYS_futex, (uint32_t *)address, FUTEX_WAKE, count, NULL, NULL, 0);
    if (rc < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(rc);
}

/* -- pipes -----------------------------------------------------------------------------------
 * A non-blocking read that reports "nothing there" as None, not as an exception: a channel's
 * receiver finds its pipe empty on most looks, and raising and catching BlockingIOError costs
 * more than the read. The GIL stays held: the descriptor is non-blocking. */

static PyObject *
read_nowait(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int fd, size;
    if (!check_nargs("read_nowait", nargs, 2) || int_arg(args[0], &fd) < 0
        || int_arg(args[1], &size) < 0) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "read_nowait: size must be >= 0");
        return NULL;
    }
    PyObject *data = PyBytes_FromStringAndSize(NULL, size);
    if (data == NULL) {
        return NULL;
    }
    ssize_t n;
    for (;;) {
        n = read(fd, PyBytes_AS_STRING(data), (size_t)size);
        if (n >= 0) {
            break;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            Py_DECREF(data);
            Py_RETURN_NONE;
        }
        if (errno != EINTR) {
            Py_DECREF(data);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (PyErr_CheckSignals() < 0) {
            Py_DECREF(data);
            return NULL;
        }
    }
    if (n != size && _PyBytes_Resize(&data, n) < 0) {
        return NULL;
    }
    return data;
}

/* -- atomics --------------------------------------------------------------------------------
 * Unsigned words of 1, 2, 4 or 8 bytes, sequentially consistent; the callers convert signed
 * integers and floats to and from their bit patterns. */

static int
width_arg(PyObject *arg, int *width)
{
    if (int_arg(arg, width) < 0) {
        return -1;
    }
    if (*width != 1 && *width != 2 && *width != 4 && *width != 8) {
        PyErr_Format(PyExc_ValueError, "an atomic word is 1, 2, 4 or 8 bytes, not %d", *width);
        return -1;
    }
    return 0;
}

static int
bits_arg(PyObject *arg, int width, uint64_t *bits)
{
    unsigned long long value = PyLong_AsUnsignedLongLong(arg);
    if (value == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    if (width < 8 && value >> (8 * width) != 0) {
        PyErr_Format(PyExc_OverflowError, "%llu does not fit in %d bytes", value, width);
        return -1;
    }
    *bits = value;
    return 0;
}

static int
word_args(const char *name, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t n, void **address,
          int *width)
{
    if (!check_nargs(name, nargs, n) || address_arg(args[0], address) < 0
        || width_arg(args[1], width) < 0) {
        return -1;
    }
    if ((uintptr_t)*address % *width != 0) {
        PyErr_Format(PyExc_ValueError, "%s: address not aligned to %d bytes", name, *width);
        return -1;
    }
    return 0;
}

/* fence(): a full memory barrier (sequentially consistent): this thread's earlier loads and
 * stores take effect before its later ones, as seen by every other thread and process. */
static PyObject *
fence(PyObject *module, PyObject *unused)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

/* Add to a signed 64-bit word, wrapping around as the hardware does; the previous value. */
static long long
fetch_add(void *a, long long delta)
{
    return (long long)__atomic_fetch_add((uint64_t *)a, (uint64_t)delta, __ATOMIC_SEQ_CST);
}

static uint64_t
load_word(void *a, int width)
{
    switch (width) {
    case 1: return __atomic_load_n((uint8_t *)a, __ATOMIC_SEQ_CST);
    case 2: return __atomic_load_n((uint16_t *)a, __ATOMIC_SEQ_CST);
    case 4: return __atomic_load_n((uint32_t *)a, __ATOMIC_SEQ_CST);
    default: return __atomic_load_n((uint64_t *)a, __ATOMIC_SEQ_CST);
    }
}

static void
store_word(void *a, int width, uint64_t bits)
{
    switch (width) {
    case 1: __atomic_store_n((uint8_t *)a, (uint8_t)bits, __ATOMIC_SEQ_CST); break;
    case 2: __atomic_store_n((uint16_t *)a, (uint16_t)bits, __ATOMIC_SEQ_CST); break;
    case 4: __atomic_store_n((uint32_t *)a, (uint32_t)bits, __ATOMIC_SEQ_CST); break;
    default: __atomic_store_n((uint64_t *)a, bits, __ATOMIC_SEQ_CST); break;
    }
}

static PyObject *
atomic_load(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    void *a;
    int width;
    if (word_args("atomic_load", args, nargs, 2, &a, &width) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(load_word(a, width));
}

static int
compare_exchange(void *a, int width, uint64_t expected, uint64_t desired)
{
    switch (width) {
    case 1: {
        uint8_t e = (uint8_t)expected;
        return __atomic_compare_exchange_n((uint8_t *)a, &e, (uint8_t)desired, 0,
                                           __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
    case 2: {
        uint16_t e = (uint16_t)expected;
        return __atomic_compare_exchange_n((uint16_t *)a, &e, (uint16_t)desired, 0,
                                           __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
    case 4: {
        uint32_t e = (uint32_t)expected;
        return __atomic_compare_exchange_n((uint32_t *)a, &e, (uint32_t)desired, 0,
                                           __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
    default: {
        uint64_t e = expected;
        return __atomic_compare_exchange_n((uint64_t *)a, &e, desired, 0, __ATOMIC_SEQ_CST,
                                           __ATOMIC_SEQ_CST);
    }
    }
}

/* Add delta to the signed 64-bit word at address; return its previous value. */
static PyObject *
atomic_add(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    void *a;
    if (!check_nargs("atomic_add", nargs, 2) || address_arg(args[0], &a) < 0) {
        return NULL;
    }
    if ((uintptr_t)a % 8 != 0) {
        PyErr_SetString(PyExc_ValueError, "atomic_add: address not aligned to 8 bytes");
        return NULL;
    }
    long long delta = PyLong_AsLongLong(args[1]);
    if (delta == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromLongLong(fetch_add(a, delta));
}

/* -- memory mappings ----------------------------------------------------------------------- */

static PyObject *
map_shared(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int fd;
    if (!check_nargs("map_shared", nargs, 2) || int_arg(args[0], &fd) < 0) {
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[1]);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size <= 0) {
        PyErr_Format(PyExc_ValueError, "a mapping needs a positive size, got %zd", size);
        return NULL;
    }
    void *address;
    Py_BEGIN_ALLOW_THREADS
    address = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    Py_END_ALLOW_THREADS
    if (address == MAP_FAILED) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromVoidPtr(address);
}

static PyObject *
unmap(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    void *address;
    if (!check_nargs("unmap", nargs, 2) || address_arg(args[0], &address) < 0) {
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[1]);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (munmap(address, (size_t)size) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* madvise(address, length, advice) -> 0 or an error number (MADV_POPULATE_WRITE may block). */
static PyObject *
advise(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    void *address;
    int advice;
    if (!check_nargs("advise", nargs, 3) || address_arg(args[0], &address) < 0
        || int_arg(args[2], &advice) < 0) {
        return NULL;
    }
    Py_ssize_t length = PyLong_AsSsize_t(args[1]);
    if (length == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int rc, err = 0;
    Py_BEGIN_ALLOW_THREADS
    rc = madvise(address, (size_t)length, advice);
    if (rc != 0) {
        err = errno;
    }
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(err);
}

/* -- AtomicWord: one word of a mapping, with its atomic operations ------------------------
 *
 * Holds a reference to the mapping while it is open, so the memory stays mapped during every
 * call; close(message) lets go of it, and every later call raises ValueError(message). */

typedef struct {
    PyObject_HEAD
    void *address;
    int width;
    PyObject *mapping;     /* keeps the memory mapped; NULL once closed */
    PyObject *closed_text; /* the message of a call on a closed word */
    PyObject *check;       /* add_fetch's converter for anything but an exact int, or NULL */
} AtomicWord;

static int
AtomicWord_traverse(AtomicWord *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->mapping);
    Py_VISIT(self->check);
    return 0;
}

static int
AtomicWord_clear(AtomicWord *self)
{
    Py_CLEAR(self->mapping);
    Py_CLEAR(self->closed_text);
    Py_CLEAR(self->check);
    return 0;
}

static void
AtomicWord_dealloc(AtomicWord *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    AtomicWord_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int
AtomicWord_init(AtomicWord *self, PyObject *args, PyObject *kwargs)
{
    PyObject *mapping, *address_obj, *check = Py_None;
    int width;
    static char *keywords[] = {"", "", "", "check", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOi|$O:AtomicWord", keywords, &mapping,
                                     &address_obj, &width, &check)) {
        return -1;
    }
    void *address;
    if (address_arg(address_obj, &address) < 0) {
        return -1;
    }
    if (width != 1 && width != 2 && width != 4 && width != 8) {
        PyErr_Format(PyExc_ValueError, "an atomic word is 1, 2, 4 or 8 bytes, not %d", width);
        return -1;
    }
    if ((uintptr_t)address % width != 0) {
        PyErr_Format(PyExc_ValueError, "address not aligned to %d bytes", width);
        return -1;
    }
    Py_INCREF(mapping);
    Py_XSETREF(self->mapping, mapping);
    Py_CLEAR(self->closed_text);
    if (check == Py_None) {
        Py_CLEAR(self->check);
    }
    else {
        Py_INCREF(check);
        Py_XSETREF(self->check, check);
    }
    self->address = address;
    self->width = width;
    return 0;
}

static void *
open_word(AtomicWord *self)
{
    if (self->mapping == NULL) {
        if (self->closed_text != NULL) {
            PyErr_SetObject(PyExc_ValueError, self->closed_text);
        }
        else {
            PyErr_SetString(PyExc_ValueError, "the shared word is closed");
        }
        return NULL;
    }
    return self->address;
}

static PyObject *
AtomicWord_close(AtomicWord *self, PyObject *message)
{
    Py_INCREF(message);
    Py_XSETREF(self->closed_text, message);
    Py_CLEAR(self->mapping);
    Py_RETURN_NONE;
}

static PyObject *
AtomicWord_load(AtomicWord *self, PyObject *unused)
{
    void *a = open_word(self);
    if (a == NULL) {
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(load_word(a, self->width));
}

static PyObject *
AtomicWord_store(AtomicWord *self, PyObject *arg)
{
    void *a = open_word(self);
    uint64_t bits;
    if (a == NULL || bits_arg(arg, self->width, &bits) < 0) {
        return NULL;
    }
    store_word(a, self->width, bits);
    Py_RETURN_NONE;
}

static int compare_exchange(void *a, int width, uint64_t expected, uint64_t desired);

static PyObject *
AtomicWord_compare_exchange(AtomicWord *self, PyObject *const *args, Py_ssize_t nargs)
{
    void *a = open_word(self);
    uint64_t expected, desired;
    if (a == NULL || !check_nargs("compare_exchange", nargs, 2)
        || bits_arg(args[0], self->width, &expected) < 0
        || bits_arg(args[1], self->width, &desired) < 0) {
        return NULL;
    }
    return PyBool_FromLong(compare_exchange(a, self->width, expected, desired));
}

/* add(delta) -> the previous value, for a signed 64-bit word (wraps around). */
static PyObject *
AtomicWord_add(AtomicWord *self, PyObject *arg)
{
    void *a = open_word(self);
    if (a == NULL) {
        return NULL;
    }
    if (self->width != 8) {
        PyErr_SetString(PyExc_TypeError, "add() needs a 64-bit word");
        return NULL;
    }
    long long delta = PyLong_AsLongLong(arg);
    if (delta == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromLongLong(fetch_add(a, delta));
}

/* add_fetch(delta=1) -> the new value of a signed 64-bit word, wrapped around as the hardware
 * adds. An exact int in range is used as it is; anything else first goes through the check
 * given at construction (which raises TypeError or OverflowError, or returns an int). */
static PyObject *
AtomicWord_add_fetch(AtomicWord *self, PyObject *const *args, Py_ssize_t nargs)
{
    void *a = open_word(self);
    if (a == NULL) {
        return NULL;
    }
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "add() takes at most 1 argument (%zd given)", nargs);
        return NULL;
    }
    if (self->width != 8) {
        PyErr_SetString(PyExc_TypeError, "add() needs a 64-bit word");
        return NULL;
    }
    long long delta = 1;
    if (nargs == 1) {
        int overflow = 0;
        PyObject *arg = args[0];
        if (PyLong_CheckExact(arg)) {
            delta = PyLong_AsLongLongAndOverflow(arg, &overflow);
        }
        if (!PyLong_CheckExact(arg) || overflow) {
            if (self->check == NULL) {
                PyErr_SetString(PyExc_TypeError, "add() takes an int in the signed 64-bit range");
                return NULL;
            }
            PyObject *checked = PyObject_CallOneArg(self->check, arg);
            if (checked == NULL) {
                return NULL;
            }
            delta = PyLong_AsLongLongAndOverflow(checked, &overflow);
            Py_DECREF(checked);
            if (overflow) {
                PyErr_SetString(PyExc_OverflowError, "add(): the check let an out-of-range int by");
                return NULL;
            }
            if (delta == -1 && PyErr_Occurred()) {
                return NULL;
            }
            a = open_word(self); /* the check ran Python code: the word may be closed now */
            if (a == NULL) {
                return NULL;
            }
        }
    }
    return PyLong_FromLongLong((long long)((uint64_t)fetch_add(a, delta) + (uint64_t)delta));
}

static PyMethodDef AtomicWord_methods[] = {
    {"add", (PyCFunction)AtomicWord_add, METH_O,
     "add($self, delta, /)\n--\n\nAdd ``delta`` atomically; return the previous value."},
    {"add_fetch", (PyCFunction)(void (*)(void))AtomicWord_add_fetch, METH_FASTCALL,
     "add_fetch($self, delta=1, /)\n--\n\n"
     "Add ``delta`` (negative to subtract) atomically and return the new value (a signed\n"
     "64-bit word, wrapped around as the hardware adds)."},
    {"load", (PyCFunction)AtomicWord_load, METH_NOARGS, "load() -> the word's bits"},
    {"store", (PyCFunction)AtomicWord_store, METH_O, "store(bits)"},
    {"compare_exchange", (PyCFunction)(void (*)(void))AtomicWord_compare_exchange, METH_FASTCALL,
     "compare_exchange(expected, desired) -> whether the word held expected (and now desired)"},
    {"close", (PyCFunction)AtomicWord_close, METH_O,
     "close(message): let go of the mapping; later calls raise ValueError(message)"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot AtomicWord_slots[] = {
    {Py_tp_doc, "AtomicWord(mapping, address, width): one aligned word of shared memory."},
    {Py_tp_dealloc, AtomicWord_dealloc},
    {Py_tp_traverse, AtomicWord_traverse},
    {Py_tp_clear, AtomicWord_clear},
    {Py_tp_init, AtomicWord_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_methods, AtomicWord_methods},
    {0, NULL},
};

static PyType_Spec AtomicWord_spec = {
    .name = "concurrency_kit._core._native.AtomicWord",
    .basicsize = sizeof(AtomicWord),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = AtomicWord_slots,
};

/* -- ByteRing: the common case of a channel's store ---------------------------------------
 *
 * channels/_ring.py owns the store's design and layout; this compiles its two hot operations
 * for the common entry, a READY one holding a pickle without out-of-band buffers or a raw
 * bytes item: put() places and publishes one (_ring.Ring.allocate + put), take() copies the
 * oldest out and drops it (next_entry + copy_out + pop). The caller holds the channel's mutex.
 * Anything else (offers, batches, buffers, retracted entries, a value that fails a check) is
 * answered with a code that hands the call to the Python methods, which take it from there or
 * report the corruption in detail. The word indices and codes come from Python at init, so the
 * layout is written down once (_layout.py, _ring.py, _items.py); the entry header's shape is
 * checked against _ring.ENTRY there. */

typedef struct {
    uint64_t size;
    uint16_t state;
    uint16_t kind;
    uint32_t ack;
    uint64_t length;
    uint64_t number;
} RingEntry; /* _ring.ENTRY: "<QHHIQQ" */

_Static_assert(sizeof(RingEntry) == 32, "a ring entry header is 32 bytes");
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the channel's ring is little-endian"
#endif

#define RING_PICKLE_HEAD 12 /* _ring.PAYLOAD: "<QI", pickle length and buffer count */
#define RING_NOGIL_COPY (256 * 1024) /* copies this large release the GIL */

enum { R_HEAD, R_TAIL, R_ENTRIES, R_PUT_SEQ, R_TAKE_SEQ, R_HIGH_WATER, R_WORDS };

typedef struct {
    PyObject_HEAD
    PyObject *keep; /* what keeps the words and the store mapped */
    int64_t *words;
    uint8_t *buf;
    uint64_t size;
    int index[R_WORDS];
    int ready, wrap, pickled, raw_bytes, batch;
} ByteRing;

static int
ByteRing_traverse(ByteRing *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->keep);
    return 0;
}

static int
ByteRing_clear(ByteRing *self)
{
    Py_CLEAR(self->keep);
    return 0;
}

static void
ByteRing_dealloc(ByteRing *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    ByteRing_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int
ByteRing_init(ByteRing *self, PyObject *args, PyObject *kwargs)
{
    PyObject *keep, *words_obj, *buf_obj;
    unsigned long long size;
    int *i = self->index;
    if (!PyArg_ParseTuple(args, "OOOK(iiiiii)(iiiii):ByteRing", &keep, &words_obj, &buf_obj,
                          &size, &i[R_HEAD], &i[R_TAIL], &i[R_ENTRIES], &i[R_PUT_SEQ],
                          &i[R_TAKE_SEQ], &i[R_HIGH_WATER], &self->ready, &self->wrap,
                          &self->pickled, &self->raw_bytes, &self->batch)) {
        return -1;
    }
    void *words, *buf;
    if (address_arg(words_obj, &words) < 0 || address_arg(buf_obj, &buf) < 0) {
        return -1;
    }
    if ((uintptr_t)words % 8 || (uintptr_t)buf % 8 || size % 8 || size > INT64_MAX) {
        PyErr_SetString(PyExc_ValueError, "ByteRing: words, store and size must be 8-aligned");
        return -1;
    }
    for (int k = 0; k < R_WORDS; k++) {
        if (i[k] < 0) {
            PyErr_SetString(PyExc_ValueError, "ByteRing: a word index is negative");
            return -1;
        }
    }
    Py_INCREF(keep);
    Py_XSETREF(self->keep, keep);
    self->words = (int64_t *)words;
    self->buf = (uint8_t *)buf;
    self->size = size;
    return 0;
}

#define RW(name) (self->words[self->index[name]])

static void
ring_copy(void *dst, const void *src, size_t n)
{
    if (n < RING_NOGIL_COPY) {
        memcpy(dst, src, n);
        return;
    }
    Py_BEGIN_ALLOW_THREADS
    memcpy(dst, src, n);
    Py_END_ALLOW_THREADS
}

/* put(kind, data) -> the entry's offset; -1: no room now; -2: not this path's (Python's).
 * A batch's payload (_ring.batch_payload) is written as it is, like a raw bytes item. */
static PyObject *
ByteRing_put(ByteRing *self, PyObject *const *args, Py_ssize_t nargs)
{
    int kind;
    if (!check_nargs("put", nargs, 2) || int_arg(args[0], &kind) < 0) {
        return NULL;
    }
    if (self->keep == NULL) {
        PyErr_SetString(PyExc_ValueError, "the ring is closed");
        return NULL;
    }
    PyObject *data = args[1];
    if (!PyBytes_CheckExact(data)
        || (kind != self->pickled && kind != self->raw_bytes && kind != self->batch)) {
        return PyLong_FromLong(-2);
    }
    uint64_t n = (uint64_t)PyBytes_GET_SIZE(data);
    uint64_t payload = kind == self->pickled ? RING_PICKLE_HEAD + n : n;
    uint64_t size = (sizeof(RingEntry) + payload + 7) & ~(uint64_t)7;
    uint64_t store = self->size;
    if (size > store) {
        return PyLong_FromLong(-2); /* Python says how large is too large */
    }
    int64_t at;
    if (RW(R_ENTRIES) == 0) {
        RW(R_HEAD) = RW(R_TAIL) = 0;
        at = 0;
    }
    else {
        int64_t head = RW(R_HEAD), tail = RW(R_TAIL);
        if (head < 0 || tail < 0 || (uint64_t)head > store || (uint64_t)tail > store
            || (head | tail) & 7) {
            return PyLong_FromLong(-2); /* Python reports the corruption */
        }
        if (head > tail) {
            if (store - (uint64_t)head >= size) {
                at = head;
            }
            else if ((uint64_t)tail >= size) {
                if (store - (uint64_t)head >= sizeof(RingEntry)) {
                    RingEntry wrap = {0, (uint16_t)self->wrap, 0, 0, 0, 0};
                    memcpy(self->buf + head, &wrap, sizeof wrap);
                }
                RW(R_HEAD) = 0;
                at = 0;
            }
            else {
                return PyLong_FromLong(-1);
            }
        }
        else if ((uint64_t)(tail - head) >= size) {
            at = head;
        }
        else {
            return PyLong_FromLong(-1);
        }
    }
    if (at + (int64_t)size > RW(R_HIGH_WATER)) {
        RW(R_HIGH_WATER) = at + (int64_t)size;
    }
    uint8_t *pos = self->buf + at + sizeof(RingEntry);
    if (kind == self->pickled) {
        uint32_t buffers = 0;
        memcpy(pos, &n, 8);
        memcpy(pos + 8, &buffers, 4);
        pos += RING_PICKLE_HEAD;
    }
    ring_copy(pos, PyBytes_AS_STRING(data), n);
    RingEntry entry = {size, (uint16_t)self->ready, (uint16_t)kind, 0, payload,
                       (uint64_t)RW(R_PUT_SEQ)};
    memcpy(self->buf + at, &entry, sizeof entry);
    RW(R_PUT_SEQ) += 1;
    RW(R_HEAD) = at + (int64_t)size; /* published: the entry is complete */
    RW(R_ENTRIES) += 1;
    return PyLong_FromLongLong(at);
}

#define RING_BATCH_HEAD 8 /* _ring.BATCH_HEAD: "<II", items and items taken */

/* take(limit, cached) -> (kind, bytes, None), the oldest entry, dropped; or for a batch entry
 * (BATCH, its pickle or None if its number is `cached`, (number, first, n, count)): up to
 * `limit` of its items, the entry dropped once all are taken; 0: the ring is empty; 1: the
 * oldest entry is not this path's, or fails a check (Python's next_entry takes it from
 * there, checking everything again). */
static PyObject *
ByteRing_take(ByteRing *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long limit, cached;
    if (!check_nargs("take", nargs, 2)) {
        return NULL;
    }
    limit = PyLong_AsLongLong(args[0]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    cached = PyLong_AsLongLong(args[1]);
    if (cached == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (limit < 1) {
        PyErr_SetString(PyExc_ValueError, "take: limit must be >= 1");
        return NULL;
    }
    if (self->keep == NULL) {
        PyErr_SetString(PyExc_ValueError, "the ring is closed");
        return NULL;
    }
    uint64_t store = self->size;
    for (int wrapped = 0;; wrapped++) {
        if (RW(R_ENTRIES) == 0) {
            return PyLong_FromLong(0);
        }
        int64_t at = RW(R_TAIL), head = RW(R_HEAD);
        if (wrapped > 1 || at < 0 || head < 0 || (uint64_t)at > store || (uint64_t)head > store
            || (at | head) & 7) {
            return PyLong_FromLong(1);
        }
        RingEntry e;
        if ((uint64_t)at + sizeof e > store) {
            return PyLong_FromLong(1); /* a wrap without a marker: Python's */
        }
        memcpy(&e, self->buf + at, sizeof e);
        if (e.state == self->wrap) {
            if (at < head || at == 0) {
                return PyLong_FromLong(1);
            }
            RW(R_TAIL) = 0;
            continue;
        }
        if (e.state != self->ready
            || (e.kind != self->pickled && e.kind != self->raw_bytes && e.kind != self->batch)
            || e.number != (uint64_t)RW(R_TAKE_SEQ) || e.ack != 0
            || e.length > store || e.size != ((sizeof e + e.length + 7) & ~(uint64_t)7)
            || (uint64_t)at + e.size > store || (at < head && head < at + (int64_t)e.size)) {
            return PyLong_FromLong(1);
        }
        const uint8_t *pos = self->buf + at + sizeof e;
        uint64_t n = e.length;
        if (e.kind == self->batch) {
            uint32_t count, first;
            if (n <= RING_BATCH_HEAD) {
                return PyLong_FromLong(1);
            }
            memcpy(&count, pos, 4);
            memcpy(&first, pos + 4, 4);
            if (first >= count) {
                return PyLong_FromLong(1);
            }
            long long left = (long long)(count - first);
            long long taking = left < limit ? left : limit;
            PyObject *data;
            if (cached >= 0 && e.number == (uint64_t)cached) {
                data = Py_NewRef(Py_None);
            }
            else {
                data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n - RING_BATCH_HEAD));
                if (data == NULL) {
                    return NULL;
                }
                ring_copy(PyBytes_AS_STRING(data), pos + RING_BATCH_HEAD, n - RING_BATCH_HEAD);
            }
            PyObject *result = Py_BuildValue("(iN(KILI))", (int)e.kind, data,
                                             (unsigned long long)e.number, (unsigned int)first,
                                             taking, (unsigned int)count);
            if (result == NULL) {
                return NULL;
            }
            if (taking < left) {
                uint32_t now = first + (uint32_t)taking;
                memcpy(self->buf + at + sizeof e + 4, &now, 4);
                return result;
            }
            RW(R_TAIL) = at + (int64_t)e.size;
            RW(R_ENTRIES) -= 1;
            RW(R_TAKE_SEQ) += 1;
            if (RW(R_ENTRIES) == 0) {
                RW(R_HEAD) = RW(R_TAIL) = 0;
            }
            return result;
        }
        if (e.kind == self->pickled) {
            uint64_t length;
            uint32_t buffers;
            if (n < RING_PICKLE_HEAD) {
                return PyLong_FromLong(1);
            }
            memcpy(&length, pos, 8);
            memcpy(&buffers, pos + 8, 4);
            if (buffers != 0 || length != n - RING_PICKLE_HEAD) {
                return PyLong_FromLong(1);
            }
            pos += RING_PICKLE_HEAD;
            n = length;
        }
        PyObject *data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
        if (data == NULL) {
            return NULL; /* nothing was taken */
        }
        ring_copy(PyBytes_AS_STRING(data), pos, n);
        PyObject *result = Py_BuildValue("(iNO)", (int)e.kind, data, Py_None);
        if (result == NULL) {
            return NULL;
        }
        RW(R_TAIL) = at + (int64_t)e.size;
        RW(R_ENTRIES) -= 1;
        RW(R_TAKE_SEQ) += 1;
        if (RW(R_ENTRIES) == 0) {
            RW(R_HEAD) = RW(R_TAIL) = 0;
        }
        return result;
    }
}

#undef RW

static PyObject *
ByteRing_close(ByteRing *self, PyObject *Py_UNUSED(ignored))
{
    Py_CLEAR(self->keep);
    Py_RETURN_NONE;
}

static PyMethodDef ByteRing_methods[] = {
    {"put", (PyCFunction)(void (*)(void))ByteRing_put, METH_FASTCALL,
     "put(kind, data) -> offset of the published entry; -1: no room; -2: not this path's"},
    {"take", (PyCFunction)(void (*)(void))ByteRing_take, METH_FASTCALL,
     "take(limit, cached) -> the oldest entry's (kind, data, extra), or up to limit items of a\n"
     "batch; 0: empty; 1: not this path's"},
    {"close", (PyCFunction)ByteRing_close, METH_NOARGS, "close(): let go of the mapping"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ByteRing_slots[] = {
    {Py_tp_doc, "ByteRing(keep, words, store, size, (word indices), (codes)): see _ring.py."},
    {Py_tp_dealloc, ByteRing_dealloc},
    {Py_tp_traverse, ByteRing_traverse},
    {Py_tp_clear, ByteRing_clear},
    {Py_tp_init, ByteRing_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_methods, ByteRing_methods},
    {0, NULL},
};

static PyType_Spec ByteRing_spec = {
    .name = "concurrency_kit._core._native.ByteRing",
    .basicsize = sizeof(ByteRing),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = ByteRing_slots,
};

/* -- LockHandle: the fast path of a process lock --------------------------------------------
 *
 * The base class of ProcessLock and ProcessRLock. bind() points it at a mutex and the lock's
 * owner_pid (int32), acquisitions and contentions (uint64) fields, and keeps the mapping they
 * live in alive; bind(None) closes it. acquire() with no arguments and release() run here; any
 * other call, and every outcome but "locked at once" or "unlocked", is handed to the Python
 * methods _acquire_slow(blocking, timeout, rc) and _release_failed(rc). */

typedef struct {
    PyObject_HEAD
    pthread_mutex_t *mutex;
    int32_t *owner_pid;
    uint64_t *acquisitions;
    uint64_t *contentions;
    PyObject *mapping; /* keeps the memory above mapped */
} LockHandle;

/* How many more tries a busy mutex gets, held by a thread of another process, before the
 * caller goes to sleep: the other holder runs on another core and most critical sections are
 * short. Never when a thread of this process holds it: that thread may need this GIL. */
#define SPIN_TRIES 200


static int
LockHandle_traverse(LockHandle *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->mapping);
    return 0;
}

/* Whether a thread of this process holds the mutex (its holder records its pid). */
static int
held_here(LockHandle *self)
{
    return self->mutex != NULL
           && (__atomic_load_n(&self->mutex->__data.__lock, __ATOMIC_RELAXED) & FUTEX_TID_MASK)
           && __atomic_load_n(self->owner_pid, __ATOMIC_RELAXED) == cached_pid;
}

static int
LockHandle_clear(LockHandle *self)
{
    if (held_here(self)) {
        /* The holder's robust list points into this memory: it must outlive the holder, so
         * the reference to the mapping is kept for the life of the process. */
        self->mapping = NULL;
    }
    self->mutex = NULL;
    Py_CLEAR(self->mapping);
    return 0;
}

static void
LockHandle_dealloc(LockHandle *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    LockHandle_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
LockHandle_bind(LockHandle *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs == 1 && args[0] == Py_None) {
        self->mutex = NULL;
        Py_CLEAR(self->mapping);
        Py_RETURN_NONE;
    }
    void *mutex, *owner_pid, *acquisitions, *contentions;
    if (!check_nargs("_bind", nargs, 5) || address_arg(args[1], &mutex) < 0
        || address_arg(args[2], &owner_pid) < 0 || address_arg(args[3], &acquisitions) < 0
        || address_arg(args[4], &contentions) < 0) {
        return NULL;
    }
    if ((uintptr_t)acquisitions % 8 || (uintptr_t)contentions % 8) {
        PyErr_SetString(PyExc_ValueError, "_bind: counters not aligned to 8 bytes");
        return NULL;
    }
    Py_INCREF(args[0]);
    Py_XSETREF(self->mapping, args[0]);
    self->mutex = (pthread_mutex_t *)mutex;
    self->owner_pid = (int32_t *)owner_pid;
    self->acquisitions = (uint64_t *)acquisitions;
    self->contentions = (uint64_t *)contentions;
    Py_RETURN_NONE;
}

static inline void
note_acquired(LockHandle *self)
{
    /* Written by the holder only, while it holds the mutex. */
    *self->owner_pid = cached_pid;
    __atomic_store_n(self->acquisitions, *self->acquisitions + 1, __ATOMIC_RELAXED);
}

/* self._acquire_slow(blocking, timeout, rc): rc is None when no try was made yet. */
static PyObject *
call_slow(LockHandle *self, PyObject *blocking, PyObject *timeout, PyObject *rc)
{
    return PyObject_CallMethod((PyObject *)self, "_acquire_slow", "OOO", blocking, timeout, rc);
}

static PyObject *
call_slow_default(LockHandle *self, PyObject *rc)
{
    PyObject *timeout = PyLong_FromLong(-1);
    if (timeout == NULL) {
        return NULL;
    }
    PyObject *result = call_slow(self, Py_True, timeout, rc);
    Py_DECREF(timeout);
    return result;
}

static PyObject *
LockHandle_acquire(LockHandle *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 0 || kwnames != NULL) {
        /* Anything but the default blocking acquire: checked and done in Python. */
        PyObject *blocking = Py_True, *timeout = NULL;
        static const char *const names[] = {"blocking", "timeout"};
        Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
        if (nargs + nkw > 2) {
            PyErr_SetString(PyExc_TypeError, "acquire() takes at most 2 arguments");
            return NULL;
        }
        if (nargs > 0) {
            blocking = args[0];
        }
        if (nargs > 1) {
            timeout = args[1];
        }
        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, i);
            int slot = -1;
            for (int j = 0; j < 2; j++) {
                if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0) {
                    slot = j;
                }
            }
            if (slot < 0 || slot < nargs) {
                PyErr_Format(PyExc_TypeError, "acquire() got an unexpected or repeated argument %R",
                             key);
                return NULL;
            }
            if (slot == 0) {
                blocking = args[nargs + i];
            }
            else {
                timeout = args[nargs + i];
            }
        }
        if (timeout != NULL) {
            return call_slow(self, blocking, timeout, Py_None);
        }
        PyObject *minus_one = PyLong_FromLong(-1);
        if (minus_one == NULL) {
            return NULL;
        }
        PyObject *result = call_slow(self, blocking, minus_one, Py_None);
        Py_DECREF(minus_one);
        return result;
    }
    pthread_mutex_t *mutex = self->mutex;
    if (mutex == NULL) {
        return call_slow_default(self, Py_None); /* closed: Python raises */
    }
    int rc = pthread_mutex_trylock(mutex);
    if (rc == 0) {
        note_acquired(self);
        Py_RETURN_TRUE;
    }
    if (rc == EBUSY) {
        __atomic_fetch_add(self->contentions, 1, __ATOMIC_RELAXED);
        if (__atomic_load_n(self->owner_pid, __ATOMIC_RELAXED) != cached_pid) {
            for (int i = 0; i < SPIN_TRIES; i++) {
                cpu_relax();
                /* Look before trying: a failed try writes the lock's cache line. */
                if ((__atomic_load_n(&mutex->__data.__lock, __ATOMIC_RELAXED) & FUTEX_TID_MASK)
                    != 0) {
                    continue;
                }
                rc = pthread_mutex_trylock(mutex);
                if (rc == 0) {
                    note_acquired(self);
                    Py_RETURN_TRUE;
                }
                if (rc != EBUSY) {
                    break;
                }
            }
        }
    }
    PyObject *code = PyLong_FromLong(rc);
    if (code == NULL) {
        return NULL;
    }
    PyObject *result = call_slow_default(self, code);
    Py_DECREF(code);
    return result;
}

static PyObject *
release_failed(LockHandle *self, int rc)
{
    return PyObject_CallMethod((PyObject *)self, "_release_failed", "i", rc);
}

static PyObject *
LockHandle_release(LockHandle *self, PyObject *unused)
{
    if (self->mutex == NULL) {
        return release_failed(self, EBADF); /* closed: Python raises */
    }
    /* The last level of a re-entrant lock (or any release of a plain one) frees it: counted
     * in the record's "frees" word, next to owner_pid, for the async face's task owner. */
    int last = self->mutex->__data.__count <= 1;
    int rc = pthread_mutex_unlock(self->mutex);
    if (rc != 0) {
        return release_failed(self, rc);
    }
    if (last) {
        __atomic_fetch_add((uint32_t *)(self->owner_pid + 1), 1, __ATOMIC_RELAXED);
    }
    Py_RETURN_NONE;
}

static PyObject *
LockHandle_exit(LockHandle *self, PyObject *const *args, Py_ssize_t nargs)
{
    return LockHandle_release(self, NULL);
}

static PyObject *
LockHandle_enter(LockHandle *self, PyObject *unused)
{
    return LockHandle_acquire(self, NULL, 0, NULL);
}

static PyMethodDef LockHandle_methods[] = {
    {"_bind", (PyCFunction)(void (*)(void))LockHandle_bind, METH_FASTCALL,
     "_bind(mapping, mutex, owner_pid, acquisitions, contentions) or _bind(None): point the "
     "handle at a lock in shared memory (the addresses of its fields), or close it."},
    {"acquire", (PyCFunction)(void (*)(void))LockHandle_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire($self, /, blocking=True, timeout=-1)\n--\n\n"
     "Acquire the lock, waiting for it if ``blocking`` and for up to ``timeout`` seconds.\n\n"
     "``timeout=-1`` (or ``None``, or ``math.inf``) waits as long as it takes. As in\n"
     ":mod:`threading`, a holder of a (non-re-entrant) lock that acquires it again waits.\n"
     "Returns whether the lock was acquired. Raises :exc:`TypeError` for a timeout that is\n"
     "not a number; :exc:`ValueError` for a timeout with ``blocking=False``, NaN, a\n"
     "negative timeout other than -1, or a closed handle (checked before anything changes)."},
    {"release", (PyCFunction)LockHandle_release, METH_NOARGS,
     "release($self, /)\n--\n\n"
     "Release the lock (once, for a re-entrant lock), which the calling thread must hold.\n\n"
     "Raises :exc:`RuntimeError` if the calling thread does not hold it, :exc:`ValueError`\n"
     "if the handle is closed."},
    {"__enter__", (PyCFunction)LockHandle_enter, METH_NOARGS,
     "__enter__($self, /)\n--\n\nAcquire the lock at the start of a ``with`` block."},
    {"__exit__", (PyCFunction)(void (*)(void))LockHandle_exit, METH_FASTCALL,
     "__exit__($self, exc_type, exc, tb, /)\n--\n\nRelease the lock at the end of a ``with`` "
     "block."},
    {NULL, NULL, 0, NULL},
};


static PyType_Slot LockHandle_slots[] = {
    {Py_tp_doc, "The C fast path of a process lock: acquire() and release()."},
    {Py_tp_dealloc, LockHandle_dealloc},
    {Py_tp_traverse, LockHandle_traverse},
    {Py_tp_clear, LockHandle_clear},
    {Py_tp_methods, LockHandle_methods},
    {0, NULL},
};

static PyType_Spec LockHandle_spec = {
    .name = "concurrency_kit._core._native.LockHandle",
    .basicsize = sizeof(LockHandle),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = LockHandle_slots,
};

/* -- the module ------------------------------------------------------------------------- */

static PyMethodDef native_methods[] = {
    {"mutex_init", (PyCFunction)(void (*)(void))mutex_init, METH_FASTCALL,
     "mutex_init(address, recursive): initialise a robust, process-shared mutex."},
    {"mutex_trylock", mutex_trylock, METH_O, "mutex_trylock(address) -> 0 or an error number"},
    {"mutex_lock_until", (PyCFunction)(void (*)(void))mutex_lock_until, METH_FASTCALL,
     "mutex_lock_until(address, deadline_ns) -> 0, EOWNERDEAD or ETIMEDOUT (monotonic clock)"},
    {"mutex_unlock", mutex_unlock, METH_O, "mutex_unlock(address) -> 0 or an error number"},
    {"mutex_consistent", mutex_consistent, METH_O,
     "mutex_consistent(address) -> 0 or an error number"},
    {"mutex_holder", mutex_holder, METH_O,
     "mutex_holder(address) -> the holder's kernel thread id, or 0"},
    {"mutex_count", mutex_count, METH_O, "mutex_count(address) -> a recursive mutex's depth"},
    {"futex_wait", (PyCFunction)(void (*)(void))futex_wait, METH_FASTCALL,
     "futex_wait(address, expected, deadline_ns) -> 0, ETIMEDOUT or EINTR"},
    {"read_nowait", (PyCFunction)(void (*)(void))read_nowait, METH_FASTCALL,
     "read_nowait(fd, size) -> up to size bytes read from non-blocking fd, or None if none"},
    {"futex_wake", (PyCFunction)(void (*)(void))futex_wake, METH_FASTCALL,
     "futex_wake(address, count) -> how many sleepers were woken"},
    {"fence", fence, METH_NOARGS,
     "fence(): a full, sequentially consistent memory barrier (mfence / dmb ish)"},
    {"atomic_load", (PyCFunction)(void (*)(void))atomic_load, METH_FASTCALL,
     "atomic_load(address, width) -> the word's bits"},
    {"atomic_add", (PyCFunction)(void (*)(void))atomic_add, METH_FASTCALL,
     "atomic_add(address, delta) -> the previous value (signed 64-bit word)"},
    {"map_shared", (PyCFunction)(void (*)(void))map_shared, METH_FASTCALL,
     "map_shared(fd, size) -> address: mmap(PROT_READ | PROT_WRITE, MAP_SHARED)"},
    {"unmap", (PyCFunction)(void (*)(void))unmap, METH_FASTCALL, "unmap(address, size)"},
    {"advise", (PyCFunction)(void (*)(void))advise, METH_FASTCALL,
     "advise(address, length, advice) -> 0 or an error number (madvise)"},
    {NULL, NULL, 0, NULL},
};

static int
native_exec(PyObject *module)
{
    refresh_pid();
    if (pthread_atfork(NULL, NULL, refresh_pid) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
        return -1;
    }
    PyType_Spec *specs[] = {&LockHandle_spec, &AtomicWord_spec, &ByteRing_spec};
    const char *names[] = {"LockHandle", "AtomicWord", "ByteRing"};
    for (int i = 0; i < 3; i++) {
        PyObject *type = PyType_FromModuleAndSpec(module, specs[i], NULL);
        if (type == NULL || PyModule_AddObjectRef(module, names[i], type) < 0) {
            Py_XDECREF(type);
            return -1;
        }
        Py_DECREF(type);
    }
    if (PyModule_AddIntConstant(module, "MUTEX_SIZE", sizeof(pthread_mutex_t)) < 0
        || PyModule_AddIntConstant(module, "FUTEX_TID_MASK", FUTEX_TID_MASK) < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot native_slots[] = {
    {Py_mod_exec, native_exec},
#ifdef Py_mod_multiple_interpreters
    /* No state shared between interpreters but this process's id. */
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "concurrency_kit._core._native",
    .m_doc = "The compiled fast path of concurrency_kit's shared-memory core (see _native.c).",
    .m_size = 0,
    .m_methods = native_methods,
    .m_slots = native_slots,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModuleDef_Init(&native_module);
}
