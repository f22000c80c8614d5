/* waker.c — see waker.h. */
#include "base/waker.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/err.h"

int cl_waker_init(cl_waker *k, uv_loop_t *loop, uv_poll_cb cb, void *data)
{
    k->signaled = 0;
    k->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (k->fd < 0)
        return CL_EIO;
    if (uv_poll_init(loop, &k->poll, k->fd) != 0) {
        close(k->fd);
        k->fd = -1;
        return CL_EIO;
    }
    k->poll.data = data;
    (void)uv_poll_start(&k->poll, UV_READABLE, cb); /* cannot fail on an initialised eventfd */
    return CL_OK;
}

void cl_waker_send(const cl_waker *k)
{
    uint64_t one = 1;
    while (write(k->fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

int cl_waker_unlock_mark(cl_waker *k, uv_mutex_t *mu)
{
    int wake = !k->signaled;
    k->signaled = 1;
    uv_mutex_unlock(mu);
    return wake;
}

void cl_waker_unlock_send(cl_waker *k, uv_mutex_t *mu)
{
    if (cl_waker_unlock_mark(k, mu))
        cl_waker_send(k);
}

void cl_waker_drain(const cl_waker *k)
{
    uint64_t v;
    while (read(k->fd, &v, sizeof v) < 0 && errno == EINTR)
        ;
}

void cl_waker_close_fd(cl_waker *k)
{
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
}
