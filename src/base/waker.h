/*
 * waker.h — a cross-thread wake-up for a libuv loop: an eventfd polled by the receiving loop.
 *
 * Not uv_async_t: in libuv 1.44 the receiving loop spins, then sched_yield()s, for as long as a
 * sender is between its two atomic steps around the eventfd write, and on two shared cores a
 * sender preempted there cost the receiving loop 4-8 ms at a time (perf trace of a paced write
 * run). Here the queue's mutex carries `signaled` (a wake-up is on its way): the sender that sets
 * it writes the eventfd after unlocking, the receiver clears it when it takes the queue, so no
 * one ever waits on anyone. The descriptor stays open until every sender has stopped (joined),
 * so a late write is harmless.
 *
 * Use: the sender queues under the mutex, then cl_waker_unlock_send(k, mu). The receiver's poll
 * callback calls cl_waker_drain, then takes the queue under the mutex and clears k->signaled.
 * Closing: uv_close((uv_handle_t *)&k->poll, ...), and cl_waker_close_fd once no sender is left.
 */
#ifndef CLEDGER_BASE_WAKER_H
#define CLEDGER_BASE_WAKER_H

#include <uv.h>

typedef struct {
    uv_poll_t poll;
    int fd;
    int signaled; /* under the queue's mutex */
} cl_waker;

/* Creates the eventfd and starts polling it on loop with cb (poll.data = data). */
int cl_waker_init(cl_waker *k, uv_loop_t *loop, uv_poll_cb cb, void *data);
void cl_waker_send(const cl_waker *k);
/* Called with the queue's mutex held after queueing: unless a wake-up is already on its way,
 * marks one, and writes the eventfd after unlocking. Always unlocks mu. */
void cl_waker_unlock_send(cl_waker *k, uv_mutex_t *mu);
/* Like cl_waker_unlock_send, but the eventfd write is left to the caller: returns 1 when this
 * call marked the wake-up (the caller then owes one cl_waker_send), 0 when one was already on
 * its way. Always unlocks mu. */
int cl_waker_unlock_mark(cl_waker *k, uv_mutex_t *mu);
/* In the poll callback, before taking the queue (and clearing `signaled` under its mutex). */
void cl_waker_drain(const cl_waker *k);
void cl_waker_close_fd(cl_waker *k);

#endif
