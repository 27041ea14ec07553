// The thread pool behind parallel_for / parallel_range / parallel_pieces
// (tensor/parallel.h): every piece runs exactly once, on any thread count; a
// thread held up in a piece has the rest of its range of pieces run by another;
// loops inside a piece run on that piece's thread; a second thread's loop
// while one runs is run serially; thousands of short loops in a row (where a
// worker that wakes late meets a later loop) lose or repeat no piece; a thread
// sharing the caller's core makes the pool hold the cores contended, and while
// they are the workers keep off the caller's core (Linux); a child
// made by fork() runs its loops on a pool of its own.
#include <doctest/doctest.h>
#include <omp.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "tensor/parallel.h"
#include "tensor/scratch.h"

using namespace ddpm;

namespace {

// Sets OpenMP's thread count (which parallel.h reads) for a scope.
struct Threads {
    int saved = omp_get_max_threads();
    explicit Threads(int n) { omp_set_num_threads(n); }
    ~Threads() { omp_set_num_threads(saved); }
};

// How many times each of the n pieces ran.
std::vector<int> run_counts(int64_t n) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    parallel_pieces(n, [&](int64_t p) { hits[static_cast<size_t>(p)].fetch_add(1); });
    std::vector<int> out;
    for (auto& h : hits) out.push_back(h.load());
    return out;
}

}  // namespace

TEST_CASE("parallel_pieces runs every piece exactly once on 1 to 4 threads") {
    for (int threads : {1, 2, 3, 4}) {
        Threads t(threads);
        for (int64_t n : {0, 1, 2, 3, 7, 64, 1000}) {
            CAPTURE(threads);
            CAPTURE(n);
            const std::vector<int> counts = run_counts(n);
            CHECK(counts == std::vector<int>(static_cast<size_t>(n), 1));
        }
    }
}

// Each thread starts on its own range of the pieces (parallel.cpp); one held up in
// a piece must not hold up the rest of its range. Piece 0 waits until all the
// others are done: they get done only if the thread not in piece 0 takes over the
// remainder of the waiting thread's range.
TEST_CASE("a piece that waits for all the others sees them done: another thread takes over its range") {
    Threads t(2);
    for (int64_t n : {2, 3, 8, 64}) {
        CAPTURE(n);
        std::atomic<int64_t> done{0}, seen_by_piece0{-1};
        std::vector<int> counts(static_cast<size_t>(n), 0);
        parallel_pieces(n, [&](int64_t p) {
            ++counts[static_cast<size_t>(p)];
            if (p > 0) {
                done.fetch_add(1);
                return;
            }
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
            while (done.load() < n - 1 && std::chrono::steady_clock::now() < give_up)
                std::this_thread::sleep_for(std::chrono::microseconds(100));
            seen_by_piece0 = done.load();
        });
        CHECK(seen_by_piece0.load() == n - 1);
        CHECK(counts == std::vector<int>(static_cast<size_t>(n), 1));
    }
}

TEST_CASE("parallel_for and parallel_range cover each index once in pieces no shorter than the grain") {
    Threads t(2);
    for (int64_t n : {1, 5, 100, 12345}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        parallel_for(n, 1, [&](int64_t i) { hits[static_cast<size_t>(i)].fetch_add(1); });
        for (auto& h : hits) CHECK(h.exchange(0) == 1);
        std::atomic<int64_t> shortest{n};
        parallel_range(n, 16, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
            int64_t s = shortest.load();
            while (e - b < s && !shortest.compare_exchange_weak(s, e - b)) {
            }
        });
        for (auto& h : hits) CHECK(h.load() == 1);
        CHECK(shortest.load() >= std::min<int64_t>(n, 16));
    }
}

TEST_CASE("a loop inside a piece runs on the piece's own thread") {
    Threads t(2);
    CHECK_FALSE(in_parallel_piece());
    CHECK(max_threads() == 2);
    std::atomic<int> inner_elsewhere{0}, not_marked{0}, total{0};
    parallel_pieces(8, [&](int64_t) {
        // OpenMP is asked for one thread too, which is what OpenBLAS reads: a GEMM here stays on this core.
        if (!in_parallel_piece() || max_threads() != 1 || omp_get_max_threads() != 1) not_marked.fetch_add(1);
        const std::thread::id me = std::this_thread::get_id();
        parallel_for(100, 1, [&](int64_t) {
            if (std::this_thread::get_id() != me) inner_elsewhere.fetch_add(1);
            total.fetch_add(1);
        });
    });
    CHECK(not_marked.load() == 0);
    CHECK(inner_elsewhere.load() == 0);
    CHECK(total.load() == 800);
    CHECK_FALSE(in_parallel_piece());
    CHECK(omp_get_max_threads() == 2);
}

// Yields this thread until done() or the deadline.
template <class Done> void yield_until(std::chrono::steady_clock::time_point deadline, Done done) {
    while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
}

// Runs f() in each of 64 pieces of one loop, each piece then waiting, up to 10 s
// from the start, until a second thread has begun one: so a worker that the
// kernel schedules late (a busy machine, a sanitizer's build) still gets its
// turn. Returns how many threads ran pieces.
template <class F> size_t run_on_two_threads(F f) {
    std::mutex m;
    std::set<std::thread::id> seen;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    auto seen_count = [&] {
        std::lock_guard<std::mutex> lock(m);
        return seen.size();
    };
    parallel_pieces(64, [&](int64_t) {
        f();
        {
            std::lock_guard<std::mutex> lock(m);
            seen.insert(std::this_thread::get_id());
        }
        yield_until(deadline, [&] { return seen_count() >= 2; });
    });
    return seen.size();
}

size_t threads_taking_part() { return run_on_two_threads([] {}); }

TEST_CASE("the pool's threads take part and follow a change of thread count") {
    for (int threads : {2, 3}) {
        Threads t(threads);
        const size_t n = threads_taking_part();
        CHECK(n >= 2);
        CHECK(n <= static_cast<size_t>(threads));
    }
}

TEST_CASE("a thread joining a loop finds its scratch buffers grown to the largest size any thread asked for") {
    // So that a worker's first piece of some kind, late (a busy machine), allocates nothing.
    struct LateTag {};
    using S = detail::Scratch<float, LateTag>;
    Threads t(2);
    CHECK(run_counts(8) == std::vector<int>(8, 1));  // the workers exist before the buffer kind does
    thread_scratch<float, LateTag>(5000);              // asked for on this thread only
    std::mutex m;
    std::vector<size_t> sizes;
    const size_t threads = run_on_two_threads([&] {
        const size_t before = S::buffer().size();  // this thread's, before it asks
        std::lock_guard<std::mutex> lock(m);
        sizes.push_back(before);
    });
    // A second thread's first use, outside the pool: grow_thread_scratch() is what the pool calls.
    size_t outside_before = 1, outside_after = 0;
    std::thread([&] {
        outside_before = S::buffer().size();
        grow_thread_scratch();
        outside_after = S::buffer().size();
    }).join();
    CHECK(threads == 2);
    for (size_t n : sizes) CHECK(n >= 5000);
    CHECK(outside_before == 0);
    CHECK(outside_after >= 5000);
}

TEST_CASE("two threads starting loops at once both get every piece done") {
    Threads t(2);
    auto many_loops = [](int64_t* sum) {
        omp_set_num_threads(2);  // each std::thread starts from OpenMP's default
        for (int rep = 0; rep < 200; ++rep) {
            std::atomic<int64_t> s{0};
            parallel_pieces(16, [&](int64_t p) { s.fetch_add(p + 1); });
            *sum += s.load();
        }
    };
    int64_t a = 0, b = 0;
    std::thread ta(many_loops, &a), tb(many_loops, &b);
    ta.join();
    tb.join();
    CHECK(a == 200 * 136);
    CHECK(b == 200 * 136);
}

TEST_CASE("thousands of short loops in a row lose and repeat no piece") {
    Threads t(2);
    int64_t wrong = 0;
    for (int rep = 0; rep < 20000; ++rep) {
        const int64_t n = 2 + rep % 5;  // the piece count changes from loop to loop
        std::atomic<int64_t> mask{0};
        parallel_pieces(n, [&](int64_t p) { mask.fetch_add(int64_t{1} << (p * 8)); });
        int64_t want = 0;
        for (int64_t p = 0; p < n; ++p) want += int64_t{1} << (p * 8);
        wrong += mask.load() != want;
    }
    CHECK(wrong == 0);
}

#if defined(__linux__)
namespace {

cpu_set_t cores_of(pid_t tid) {
    cpu_set_t set;
    CPU_ZERO(&set);
    REQUIRE(sched_getaffinity(tid, sizeof set, &set) == 0);
    return set;
}

bool same_cores(const cpu_set_t& a, const cpu_set_t& b) { return CPU_EQUAL(&a, &b); }

cpu_set_t one_core(int core) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    return set;
}

// The kernel's thread ids of the pool's workers that take part in a loop (with 2
// threads: the one worker).
std::set<pid_t> worker_ids() {
    std::mutex m;
    std::set<pid_t> ids;
    run_on_two_threads([&] {
        std::lock_guard<std::mutex> lock(m);
        ids.insert(static_cast<pid_t>(::gettid()));
    });
    ids.erase(static_cast<pid_t>(::gettid()));
    return ids;
}

// Whether, in each piece of a loop that the calling thread runs, every worker may run on
// exactly `cores`. Checked from the caller's own pieces: the workers get the caller's core
// back when it sleeps waiting for a piece, which may happen once its own are done.
bool caller_finds_workers_on(const std::set<pid_t>& workers, const cpu_set_t& cores) {
    const pid_t caller = ::gettid();
    std::atomic<int> checked{0}, wrong{0};
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    parallel_pieces(64, [&](int64_t) {
        if (::gettid() != caller) {  // a worker waits until the caller has checked (else it might take all the pieces)
            yield_until(deadline, [&] { return checked.load() > 0; });
            return;
        }
        checked.fetch_add(1);
        for (pid_t w : workers) {
            cpu_set_t set;
            if (sched_getaffinity(w, sizeof set, &set) != 0 || !same_cores(set, cores)) wrong.fetch_add(1);
        }
    });
    return checked.load() > 0 && wrong.load() == 0;
}

// The calling thread on other cores, and the pool told whether the cores are contended, for a scope.
struct CoresAndContention {
    cpu_set_t saved = cores_of(0);
    CoresAndContention(const cpu_set_t& cores, int contended) {
        REQUIRE(sched_setaffinity(0, sizeof cores, &cores) == 0);
        detail::set_contention_for_testing(contended);
    }
    ~CoresAndContention() {
        detail::set_contention_for_testing(-1);
        sched_setaffinity(0, sizeof saved, &saved);
    }
};

}  // namespace

TEST_CASE("while the cores are contended the workers keep off the caller's core, and get it back after") {
    const cpu_set_t all = cores_of(0);
    if (CPU_COUNT(&all) < 2) {
        MESSAGE("one core: nothing to keep off");
        return;
    }
    int first = 0;
    while (!CPU_ISSET(first, &all)) ++first;
    cpu_set_t rest = all;
    CPU_CLR(first, &rest);
    Threads t(2);
    const std::set<pid_t> workers = worker_ids();  // the workers are made now, with all the cores
    REQUIRE(workers.size() == 1);
    {
        CoresAndContention scope(one_core(first), 1);  // the caller on `first`, another program competing
        CHECK(caller_finds_workers_on(workers, rest));
        CHECK(run_counts(64) == std::vector<int>(64, 1));
        detail::set_contention_for_testing(0);  // the other program has gone
        CHECK(caller_finds_workers_on(workers, all));
        CHECK(run_counts(64) == std::vector<int>(64, 1));
    }
}

TEST_CASE("a thread sharing the caller's core makes the pool hold the cores contended") {
    Threads t(2);
    const int core = sched_getcpu();
    CoresAndContention scope(one_core(core), -1);  // the caller on one core; the pool judges by itself
    std::atomic<bool> stop{false};
    std::thread spinner([&] {  // another program's thread, on the caller's core
        const cpu_set_t mine = one_core(core);
        sched_setaffinity(0, sizeof mine, &mine);
        while (!stop.load()) {
        }
    });
    // The caller now waits for its core about half the time (the pool's threshold: 8%).
    // The pool judges every 50 ms, at the start of a loop: loops for up to 5 s.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    bool contended = false, every_piece_once = true;
    while (!contended && std::chrono::steady_clock::now() < deadline) {
        every_piece_once = every_piece_once && run_counts(8) == std::vector<int>(8, 1);
        contended = detail::cores_contended_for_testing();
    }
    stop.store(true);
    spinner.join();
    CHECK(contended);
    CHECK(every_piece_once);
}

TEST_CASE("with one core allowed the workers stay on it while the cores are contended, and every piece runs") {
    {
        CoresAndContention scope(one_core(sched_getcpu()), 1);
        const cpu_set_t one = cores_of(0);
        Threads t(3);  // a new thread count: the workers are made now, on the one core
        const std::set<pid_t> workers = worker_ids();
        CHECK(caller_finds_workers_on(workers, one));
        CHECK(run_counts(64) == std::vector<int>(64, 1));
    }
    Threads t(2);  // workers made again with all the cores, for the tests after this one
    CHECK(run_counts(8) == std::vector<int>(8, 1));
}
#endif

// POSIX allows the child of a multi-threaded process only async-signal-safe calls
// until it calls exec; glibc's malloc and thread creation work there all the same,
// AddressSanitizer's allocator does not: in its build the child's new worker was
// seen waiting forever on an allocator lock held by a thread the fork left behind.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kForkedChildMayStartThreads = false;
#else
constexpr bool kForkedChildMayStartThreads = true;
#endif

TEST_CASE("a process forked after the pool started runs its loops on a pool of its own" *
          doctest::skip(!kForkedChildMayStartThreads)) {
    Threads t(2);
    CHECK(run_counts(8) == std::vector<int>(8, 1));  // the parent's workers exist now
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // The parent's workers are not here: loops must still end, and run on new workers.
        bool ok = run_counts(100) == std::vector<int>(100, 1) && threads_taking_part() == 2;
        omp_set_num_threads(3);
        ok = ok && run_counts(100) == std::vector<int>(100, 1);
        ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(run_counts(8) == std::vector<int>(8, 1));  // and the parent's pool still works
}
