// parallel.cpp: the thread pool behind parallel.h's loops.
//
// One loop runs at a time. Its pieces are cut into one contiguous range per
// thread (the caller's first, then worker 1's, ...), each range one 64-bit word:
// (end << 32) | next. A thread claims the next piece of its own range by moving
// the word from (e, i) to (e, i + 1) with a compare-and-swap, only while i < e;
// with its own range done it takes the last piece of another's, moving (e, i)
// to (e - 1, i). So with the cores to ourselves each thread runs the same part of
// every loop, and a layer finds the part of the previous layer's output that it
// reads in its own core's cache, while a thread that falls behind (its core
// taken by another program) still has its pieces done by the others. (Handed out
// from one counter instead, in the order threads came for them, `ddpm bench
// --config small --batch 64 --threads 2` on a Zen 5, 3 alternating pairs: train
// step 0.347-0.352 s against 0.317-0.329 now, no-grad forward 0.107-0.111 against
// 0.095-0.100. There a core read what the other had just written at half the
// speed of what it had written itself: 22-31 against 55-58 GB/s.) A thread
// that wakes late, after its loop has ended and another begun, claims a piece
// of the loop that is running or none: it reads which function to run only
// after its claim succeeded, and the loop cannot end (nor the next one be set
// up) before that piece is done. `remaining` counts the pieces not yet done;
// the thread that started the loop returns when it reaches 0.
//
// Waiting: a worker with nothing to do polls for a new loop for about 50
// microseconds (the next loop of a training step usually starts sooner than
// a sleeping thread could be woken), then sleeps on the loop counter (a Linux
// futex; a thread about to sleep says so first, so that starting a loop costs
// a system call only when some worker sleeps).
// Polling longer takes the core from whatever else wants it (another program,
// or our own thread that still has work): libgomp's default ~300,000 polls made
// a step 3.4x slower next to a busy process on 2 cores; so while the kernel
// keeps taking our threads' cores for another program, a worker polls only
// about 7 microseconds (polls_before_sleep).
//
// Cores: on a CPU shared with another program, the kernel often woke a worker
// onto the core of the thread that woke it, the one starting the loop; our two
// threads then took turns on one core while the other program had the second
// to itself. So while the cores are contended the workers may run anywhere but
// on the caller's present core (WorkerCores); before the caller sleeps waiting
// for a worker's piece, the workers may have its core again, so that the kernel
// can move the one it waits for there. Measured on 2 cores (a Zen 5, Linux 6.18),
// `tiny` training next to an always-busy process, two runs each way: both our
// threads runnable on one core in 42-56% of samples 5 ms apart before, 13-21%
// after; per second our threads ran 1.10-1.15 s and the other program 0.75-0.81 s
// before, 1.18-1.20 s and 0.63-0.67 s (a fair third) after; bench/cpu_sharing.sh's
// busy ratio 1.82-1.91 before, 1.58-1.79 after (three alternating runs each).
#include "tensor/parallel.h"

#include <omp.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "tensor/scratch.h"

#if defined(__linux__)
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace ddpm {
namespace {

thread_local bool t_in_piece = false;

// Polls of a waiting thread before it sleeps: each is a pause and a load, about
// 25 ns on a Zen 3, so 50 microseconds in all while the cores are ours, and 7
// while another program competes for them. Measured (`ddpm bench --config tiny
// --batch 32 --threads 2`, a Zen 5, three rounds): next to an always-busy process
// a step took 0.079-0.084 s polling 300 times, 0.090-0.093 s polling 2000 times;
// alone, 2-3% longer polling 300 times than 2000 (a sleeping thread costs a
// system call to wake).
constexpr int kPollsAlone = 2000;
constexpr int kPollsShared = 300;

// The kernel's count of the times it took a core from one of this process's
// threads for another thread (involuntary context switches); 0 where unknown.
long involuntary_switches() {
#if defined(__linux__)
    struct rusage r {};
    if (getrusage(RUSAGE_SELF, &r) == 0) return r.ru_nivcsw;
#endif
    return 0;
}

// Whether another program competes for our cores: judged by the thread that starts
// loops (ContentionJudge), read by every thread of the pool.
std::atomic<bool> g_contended{false};
std::atomic<int> g_contention_for_testing{-1};  // detail::set_contention_for_testing

bool cores_contended() {
    if (const int forced = g_contention_for_testing.load(std::memory_order_relaxed); forced >= 0) return forced == 1;
    return g_contended.load(std::memory_order_relaxed);
}

// Every 50 ms, from how long the pool's threads waited for a core meanwhile: more
// than 8% of their time, and another program competes. Measured per 50 ms (`tiny`,
// 2 threads, a Zen 5, 60 windows each): alone, the thread starting loops waited
// 0-3.4 ms and the worker 0-4.2 ms; next to an always-busy process the worker waited
// 11-28 ms in every window. (The count of involuntary context switches, judged
// before, > 20 in 50 ms, missed it: 0-72, median 15, next to the busy process, and
// a median of 3 once the workers kept off the caller's core, so the pool judged two
// thirds of a step's loops uncontended, and in the next window the kernel stacked
// our two threads on one core again.) Where the kernel does not give run_delay,
// that count is still the judge.
class ContentionJudge {
    using clock = std::chrono::steady_clock;

public:
    bool due() const { return clock::now() - since_ >= std::chrono::milliseconds(50); }
    // `waited_ns`: our `threads` threads' run_delay summed (-1: unknown). A change of
    // the thread that starts loops may leave one window misjudged.
    void judge(int64_t waited_ns, int threads);

private:
    clock::time_point since_ = clock::now();
    int64_t waited_ = -1;
    long switches_ = involuntary_switches();
};

void ContentionJudge::judge(int64_t waited_ns, int threads) {
    const clock::time_point now = clock::now();
    const int64_t window = std::chrono::duration_cast<std::chrono::nanoseconds>(now - since_).count();
    if (waited_ns >= 0 && waited_ >= 0) {
        g_contended.store(waited_ns - waited_ > window * threads * 8 / 100, std::memory_order_relaxed);
    } else if (waited_ns < 0) {  // no run_delay: the switch count, read only then
        const long switches = involuntary_switches();
        g_contended.store(switches - switches_ > 20, std::memory_order_relaxed);
        switches_ = switches;
    }
    since_ = now, waited_ = waited_ns;
}

// How long a waiting thread polls before it sleeps: briefly while the cores are
// contended, leaving its core sooner to whoever else wants it.
int polls_before_sleep() { return cores_contended() ? kPollsShared : kPollsAlone; }

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Sleeps while `word` holds `old` (returns at once if it no longer does, and
// may return early), and wakes every thread sleeping on `word`.
void sleep_while(std::atomic<uint32_t>& word, uint32_t old) {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, old, nullptr, nullptr, 0);
#else
    if (word.load() == old) std::this_thread::yield();
#endif
}
void wake_all(std::atomic<uint32_t>& word) {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
    (void)word;
#endif
}

// Polls `word` while it holds `old`, up to polls_before_sleep() times; true if it changed.
bool poll_while(const std::atomic<uint32_t>& word, uint32_t old) {
    const int polls = polls_before_sleep();
    for (int i = 0; i < polls; ++i) {
        if (word.load(std::memory_order_acquire) != old) return true;
        cpu_relax();
    }
    return word.load(std::memory_order_acquire) != old;
}

// Sleeps on `word` while it holds `old`; `sleepers` counts the threads asleep (or
// about to be) so a waker knows to call wake_all.
void sleep_while_same(std::atomic<uint32_t>& word, uint32_t old, std::atomic<int>& sleepers) {
    while (word.load(std::memory_order_seq_cst) == old) {
        sleepers.fetch_add(1, std::memory_order_seq_cst);
        sleep_while(word, old);  // the kernel compares word with old again: a wake in between is not lost
        sleepers.fetch_sub(1, std::memory_order_seq_cst);
    }
}

// Polls `word` while it holds `old`, then sleeps on it while it does.
void wait_while(std::atomic<uint32_t>& word, uint32_t old, std::atomic<int>& sleepers) {
    if (!poll_while(word, old)) sleep_while_same(word, old, sleepers);
}

// The cores the pool's workers may run on: those the caller could use when the
// workers were made, less one (the caller's present core) while the cores are
// contended (see the top of this file). Linux only; elsewhere it does nothing.
class WorkerCores {
public:
    void reset();                // a new set of workers: the caller's cores, no worker known
    void add_this_thread();      // called by each worker as it starts
    void keep_off(int core);     // the workers' cores less `core`; all of them when core < 0
    int64_t waited_ns();         // how long this thread and the workers waited for a core (-1: unknown)

private:
#if defined(__linux__)
    void apply(pid_t tid) const;  // with mu_ held
    // reset() and keep_off() are called only by the thread that holds the pool's loop
    // lock; they write under mu_, which workers take in add_this_thread() to read.
    std::mutex mu_;
    std::vector<pid_t> tids_;
    cpu_set_t allowed_{};
    bool spreadable_ = false;      // at least two cores allowed
    int excluded_ = -1;            // the core the workers keep off; -1: none
#endif
};

#if defined(__linux__)
// How long thread `tid` of this process has waited, runnable, for a core since it
// started (the kernel's run_delay: the second field of its schedstat), in ns; -1
// where the kernel does not say. Read with plain system calls: no allocation.
int64_t waited_for_core_ns(long tid) {
    char path[64], text[128];
    std::snprintf(path, sizeof path, "/proc/self/task/%ld/schedstat", tid);
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    const ssize_t n = ::read(fd, text, sizeof text - 1);
    ::close(fd);
    if (n <= 0) return -1;
    text[n] = '\0';
    unsigned long long ran = 0, waited = 0;
    if (std::sscanf(text, "%llu %llu", &ran, &waited) != 2) return -1;
    return static_cast<int64_t>(waited);
}

void WorkerCores::reset() {
    std::lock_guard<std::mutex> lock(mu_);
    tids_.clear();
    excluded_ = -1;
    spreadable_ = sched_getaffinity(0, sizeof allowed_, &allowed_) == 0 && CPU_COUNT(&allowed_) >= 2;
}

void WorkerCores::add_this_thread() {
    std::lock_guard<std::mutex> lock(mu_);
    tids_.push_back(static_cast<pid_t>(syscall(SYS_gettid)));
    if (excluded_ >= 0) apply(tids_.back());
}

void WorkerCores::apply(pid_t tid) const {
    cpu_set_t cores = allowed_;
    if (excluded_ >= 0) CPU_CLR(excluded_, &cores);
    sched_setaffinity(tid, sizeof cores, &cores);  // a worker that has ended: ESRCH, nothing to do
}

// Reads without mu_: the loop lock's holder, which calls this, is the only writer (see the class).
void WorkerCores::keep_off(int core) {
    if (core < 0 || !spreadable_ || core >= CPU_SETSIZE || !CPU_ISSET(core, &allowed_)) core = -1;
    if (core == excluded_) return;
    std::lock_guard<std::mutex> lock(mu_);
    excluded_ = core;
    for (pid_t tid : tids_) apply(tid);
}

int64_t WorkerCores::waited_ns() {
    int64_t sum = waited_for_core_ns(syscall(SYS_gettid));
    if (sum < 0) return -1;
    std::lock_guard<std::mutex> lock(mu_);
    for (pid_t tid : tids_) {
        const int64_t w = waited_for_core_ns(tid);
        if (w < 0) return -1;
        sum += w;
    }
    return sum;
}

int present_core() { return sched_getcpu(); }
#else
void WorkerCores::reset() {}
void WorkerCores::add_this_thread() {}
void WorkerCores::keep_off(int) {}
int64_t WorkerCores::waited_ns() { return -1; }
int present_core() { return -1; }
#endif

// One thread's range of the pieces of a loop: (end << 32) | next, on a cache line of its own.
struct alignas(64) PieceRange {
    std::atomic<uint64_t> word{0};
};

// Claims the next piece of `r` (from_back: its last) into `piece`; false when it has none left.
bool claim(PieceRange& r, bool from_back, int64_t& piece) {
    uint64_t w = r.word.load(std::memory_order_acquire);
    for (;;) {
        const uint64_t next = w & 0xffffffffu, end = w >> 32;
        if (next >= end) return false;
        const uint64_t after = from_back ? ((end - 1) << 32) | next : w + 1;
        if (r.word.compare_exchange_weak(w, after, std::memory_order_acquire)) {  // else w reloaded
            piece = static_cast<int64_t>(from_back ? end - 1 : next);
            return true;
        }
    }
}

class Pool {
public:
    void run(int64_t pieces, detail::PieceFn fn, const void* body, int threads);

private:
    void set_workers(int n);
    void work(int index, uint32_t seen);
    bool next_piece(int index, int64_t& piece);
    void take_pieces(int index) noexcept;  // a piece that throws ends the program, as in an OpenMP region
    void start_loop();
    void wait_for_pieces();

    std::mutex loop_;                    // one loop at a time (others run serially)
    std::vector<std::thread> workers_;
    std::unique_ptr<PieceRange[]> ranges_ = std::make_unique<PieceRange[]>(1);  // per thread: caller 0, worker i as i + 1
    int threads_ = 1;                    // the caller and the workers: ranges_ has one per thread
    std::atomic<uint32_t> loops_{0};     // bumped when a loop starts: what sleeping workers wait on
    std::atomic<uint32_t> remaining_{0};  // pieces not yet done
    std::atomic<detail::PieceFn> fn_{nullptr};
    std::atomic<const void*> body_{nullptr};
    std::atomic<bool> stop_{false};
    std::atomic<int> sleeping_workers_{0}, sleeping_caller_{0};
    WorkerCores cores_;
    ContentionJudge contention_;
};

// The next piece for thread `index`: the front of its own range, else the back of
// another's (the next thread's first, so that two helpers do not start on one range).
bool Pool::next_piece(int index, int64_t& piece) {
    const int n = threads_;
    if (claim(ranges_[index], false, piece)) return true;
    for (int k = 1; k < n; ++k)
        if (claim(ranges_[(index + k) % n], true, piece)) return true;
    return false;
}

// Claims and runs pieces of the current loop until none is left to claim.
// While it runs pieces a thread asks OpenMP for one thread: a BLAS call inside a
// piece (OpenBLAS's OpenMP build reads omp_get_max_threads()) then stays on it.
void Pool::take_pieces(int index) noexcept {
    const int openmp_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    t_in_piece = true;
    for (int64_t piece; next_piece(index, piece);) {
        // The piece then finds its work buffers grown (scratch.h). Before each piece, not once:
        // a thread that ends the last piece of one loop may go straight on to the next loop's.
        grow_thread_scratch();
        fn_.load(std::memory_order_relaxed)(body_.load(std::memory_order_relaxed), piece);
        if (remaining_.fetch_sub(1, std::memory_order_seq_cst) == 1 && sleeping_caller_.load() > 0) wake_all(remaining_);
    }
    t_in_piece = false;
    omp_set_num_threads(openmp_threads);
}

// A worker's life: it was made when the loop counter was `seen`, and runs each
// loop started after that, until stop_.
void Pool::work(int index, uint32_t seen) {
    cores_.add_this_thread();
    for (;;) {
        wait_while(loops_, seen, sleeping_workers_);
        seen = loops_.load(std::memory_order_acquire);
        if (stop_.load(std::memory_order_acquire)) return;
        take_pieces(index);
    }
}

// Tells the workers a new loop (or stop_) is there.
void Pool::start_loop() {
    loops_.fetch_add(1, std::memory_order_seq_cst);
    if (sleeping_workers_.load(std::memory_order_seq_cst) > 0) wake_all(loops_);
}

void Pool::set_workers(int n) {
    if (static_cast<int>(workers_.size()) == n) return;
    stop_.store(true, std::memory_order_release);
    start_loop();
    for (std::thread& w : workers_) w.join();
    workers_.clear();
    stop_.store(false, std::memory_order_release);
    threads_ = n + 1;
    ranges_ = std::make_unique<PieceRange[]>(static_cast<size_t>(threads_));
    cores_.reset();
    for (int i = 0; i < n; ++i) workers_.emplace_back(&Pool::work, this, i + 1, loops_.load());
}

void Pool::run(int64_t pieces, detail::PieceFn fn, const void* body, int threads) {
    std::unique_lock<std::mutex> lock(loop_, std::try_to_lock);
    if (!lock.owns_lock()) {  // another thread's loop is running: this one runs here
        for (int64_t p = 0; p < pieces; ++p) fn(body, p);
        return;
    }
    set_workers(threads - 1);
    fn_.store(fn, std::memory_order_relaxed);
    body_.store(body, std::memory_order_relaxed);
    remaining_.store(static_cast<uint32_t>(pieces), std::memory_order_relaxed);
    for (int k = 0; k < threads_; ++k) {  // range k: pieces [pieces k / threads, pieces (k + 1) / threads)
        const uint64_t first = static_cast<uint64_t>(pieces * k / threads_), end = static_cast<uint64_t>(pieces * (k + 1) / threads_);
        ranges_[k].word.store((end << 32) | first, std::memory_order_release);
    }
    if (contention_.due()) contention_.judge(cores_.waited_ns(), threads_);
    cores_.keep_off(cores_contended() ? present_core() : -1);
    start_loop();
    take_pieces(0);
    wait_for_pieces();
}

// Pieces other threads began: poll briefly, then sleep until the last one ends,
// the workers first allowed on this thread's core again (the one with the piece may
// be waiting for a core while this one sleeps).
void Pool::wait_for_pieces() {
    for (uint32_t r; (r = remaining_.load(std::memory_order_acquire)) != 0;) {
        if (poll_while(remaining_, r)) continue;
        cores_.keep_off(-1);
        sleep_while_same(remaining_, r, sleeping_caller_);
    }
}

// Never destroyed: its workers sleep until the process ends. A child made by
// fork() has none of them (only the forking thread is copied): it starts a pool
// of its own, leaving the parent's copy untouched.
Pool* the_pool = nullptr;

Pool& pool() {
    static const bool once = [] {
        the_pool = new Pool;
        return pthread_atfork(nullptr, nullptr, [] { the_pool = new Pool; }) == 0;
    }();
    (void)once;
    return *the_pool;
}

}  // namespace

bool in_parallel_piece() { return t_in_piece; }

void detail::set_contention_for_testing(int contended) { g_contention_for_testing.store(contended); }

bool detail::cores_contended_for_testing() { return cores_contended(); }

int max_threads() { return t_in_piece ? 1 : omp_get_max_threads(); }

void detail::run_pieces(int64_t pieces, PieceFn fn, const void* body) {
    const int threads = max_threads();
    if (pieces <= 1 || threads <= 1 || pieces > int64_t{0xffffffff}) {
        for (int64_t p = 0; p < pieces; ++p) fn(body, p);
        return;
    }
    pool().run(pieces, fn, body, threads);
}

}  // namespace ddpm
