/* Preloaded into cm-server under valgrind by bench/per_request.py. Debian 12's valgrind 3.19
 * writes into the signal mask a program hands to sigsuspend (to keep SIGKILL and SIGSTOP out of
 * it); libdispatch, which runs the main thread of every Swift program with an async main, keeps
 * that mask in read-only memory, so valgrind itself crashes with "the 'impossible' happened:
 * Killed by fatal signal" as soon as the program starts. This sigsuspend hands the kernel a
 * writable copy; the kernel's behaviour is unchanged. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, _NSIG / 8);
}
