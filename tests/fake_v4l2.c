/* A V4L2 camera in user space, for tests and benchmarks on machines that have none.
 *
 * Preloaded (LD_PRELOAD), it answers for one device node the calls that a V4L2 client such as
 * OpenCV's videoio makes to a webcam: open, the capture ioctls, close. The descriptor it hands out is a
 * memfd holding the streaming buffers, so the client's mmap() of a buffer is a real mapping and
 * select() or poll() on it return at once. Every other path and descriptor goes on to the C library.
 *
 *   FAKE_V4L2_DEVICE   device node to answer for (default /dev/video0)
 *   FAKE_V4L2_FRAMES   raw YUYV 4:2:2 frames, one after another, played in a loop (required)
 *   FAKE_V4L2_SIZE     WIDTHxHEIGHT of those frames (required)
 *   FAKE_V4L2_FPS      frame rate, 0 to 1000 (default 30); 0: a new frame whenever the client asks for
 *                      one (reported to the client as 30)
 *   FAKE_V4L2_REPORT   file to write, on close, how many frames were captured, delivered and dropped (JSON)
 *   FAKE_V4L2_DEBUG    1: print the ioctls it does not support to stderr
 *
 * Like a camera, it captures on its own clock: at FAKE_V4L2_FPS it fills the buffers the client has
 * queued, in the order they were queued, and drops a frame when none is queued. A client slower than
 * the camera therefore gets older frames and loses some, as it would with a real one.
 * Where it differs from a driver:
 *   - frame size and format are fixed (YUYV at FAKE_V4L2_SIZE); S_FMT answers with them, as drivers do
 *     with sizes they do not have;
 *   - DQBUF waits for the next frame even on a non-blocking descriptor, where a driver would answer
 *     EAGAIN and the client would wait in select() or poll(); the time spent waiting is the same;
 *   - the device opens once at a time (a second open fails with EBUSY, where V4L2 refuses the second
 *     handle's S_FMT or REQBUFS instead), and it has no controls.
 *
 * Build: gcc -shared -fPIC -O2 -Wall -o fake_v4l2.so fake_v4l2.c -ldl -lpthread
 */
#define _GNU_SOURCE
#undef _FILE_OFFSET_BITS /* open and open64 are both defined below */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAX_BUFFERS 16

enum state { IDLE, QUEUED, DONE, DEQUEUED };

struct buffer {
    enum state state;
    uint64_t queued_at; /* order of QBUF calls: the camera fills the oldest queued buffer first */
    uint64_t done_at;   /* order of fills: DQBUF returns the oldest filled buffer first */
    uint32_t sequence;
    struct timeval timestamp;
};

static struct {
    pthread_mutex_t lock;
    atomic_int fd; /* the memfd handed out for the device, -1 when closed */
    pid_t owner;   /* the process that opened it (a vfork child's close() must not close it) */
    char device[256];
    unsigned width, height;
    double fps;
    int debug;
    unsigned char *frames;
    size_t frame_bytes, nframes, mapped_bytes, nbuf_ever;
    struct buffer buf[MAX_BUFFERS];
    unsigned nbuf;
    int streaming;
    struct timespec start; /* STREAMON: frame k is due at start + k / fps */
    uint64_t next_frame, counter, filled, delivered, dropped;
} dev = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_close)(int);
static int (*real_ioctl)(int, unsigned long, ...);

static void init(void) {
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_close = dlsym(RTLD_NEXT, "close");
    real_ioctl = dlsym(RTLD_NEXT, "ioctl");
    const char *device = getenv("FAKE_V4L2_DEVICE");
    snprintf(dev.device, sizeof dev.device, "%s", device && *device ? device : "/dev/video0");
    const char *debug = getenv("FAKE_V4L2_DEBUG");
    dev.debug = debug && *debug == '1';
}

static int is_device(const char *path) {
    pthread_once(&once, init);
    return path && strcmp(path, dev.device) == 0;
}

static int is_open_device(int fd) {
    pthread_once(&once, init);
    return fd >= 0 && fd == atomic_load(&dev.fd) && getpid() == dev.owner;
}

static int fail(int err) {
    errno = err;
    return -1;
}

/* Reads the settings and FAKE_V4L2_FRAMES; on a problem says what on stderr and returns 0. */
static int load_frames(void) {
    const char *path = getenv("FAKE_V4L2_FRAMES"), *size = getenv("FAKE_V4L2_SIZE"), *fps = getenv("FAKE_V4L2_FPS");
    if (!path || !*path || !size || sscanf(size, "%ux%u", &dev.width, &dev.height) != 2 || !dev.width ||
        !dev.height || dev.width % 2 || dev.width > 8192 || dev.height > 8192) {
        fprintf(stderr, "fake_v4l2: %s: set FAKE_V4L2_FRAMES to a file of YUYV frames and FAKE_V4L2_SIZE to their "
                        "WIDTHxHEIGHT (an even width, at most 8192x8192)\n", dev.device);
        return 0;
    }
    char *end = NULL;
    dev.fps = fps && *fps ? strtod(fps, &end) : 30.0;
    if (end && (*end || !isfinite(dev.fps) || dev.fps < 0 || dev.fps > 1000)) {
        fprintf(stderr, "fake_v4l2: %s: FAKE_V4L2_FPS=%s is not a frame rate from 0 to 1000\n", dev.device, fps);
        return 0;
    }
    dev.frame_bytes = (size_t)dev.width * dev.height * 2;
    long page = sysconf(_SC_PAGESIZE);
    dev.mapped_bytes = (dev.frame_bytes + page - 1) / page * page;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fake_v4l2: %s: cannot read %s: %s\n", dev.device, path, strerror(errno));
        return 0;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (bytes <= 0 || bytes % dev.frame_bytes) {
        fprintf(stderr, "fake_v4l2: %s: %s has %ld bytes, not a whole number of %ux%u YUYV frames (%zu bytes each)\n",
                dev.device, path, bytes, dev.width, dev.height, dev.frame_bytes);
        fclose(f);
        return 0;
    }
    dev.frames = malloc(bytes);
    size_t got = dev.frames ? fread(dev.frames, 1, bytes, f) : 0;
    fclose(f);
    if (got != (size_t)bytes) {
        fprintf(stderr, "fake_v4l2: %s: could not read all of %s\n", dev.device, path);
        free(dev.frames);
        dev.frames = NULL;
        return 0;
    }
    dev.nframes = bytes / dev.frame_bytes;
    return 1;
}

static int open_device(void) {
    pthread_mutex_lock(&dev.lock);
    int fd = -1, err = 0;
    if (atomic_load(&dev.fd) >= 0) {
        err = EBUSY;
    } else if (!load_frames()) {
        err = EIO;
    } else if ((fd = memfd_create("fake_v4l2", MFD_CLOEXEC)) < 0) {
        err = errno;
        free(dev.frames);
        dev.frames = NULL;
    } else {
        memset(dev.buf, 0, sizeof dev.buf);
        dev.nbuf = dev.nbuf_ever = 0;
        dev.streaming = 0;
        dev.next_frame = dev.counter = dev.filled = dev.delivered = dev.dropped = 0;
        dev.owner = getpid();
        atomic_store(&dev.fd, fd);
    }
    pthread_mutex_unlock(&dev.lock);
    errno = err;
    return fd;
}

static double since_start(const struct timespec *now) {
    return (now->tv_sec - dev.start.tv_sec) + (now->tv_nsec - dev.start.tv_nsec) / 1e9;
}

static struct buffer *oldest(enum state state) {
    struct buffer *best = NULL;
    for (unsigned i = 0; i < dev.nbuf; i++) {
        struct buffer *b = &dev.buf[i];
        if (b->state == state && (!best || (state == DONE ? b->done_at < best->done_at : b->queued_at < best->queued_at)))
            best = b;
    }
    return best;
}

static void capture(uint64_t k, double at) {
    struct buffer *b = oldest(QUEUED);
    if (!b) {
        dev.dropped++; /* no buffer queued: the frame is lost */
        return;
    }
    unsigned index = (unsigned)(b - dev.buf);
    if (pwrite(dev.fd, dev.frames + (k % dev.nframes) * dev.frame_bytes, dev.frame_bytes,
               (off_t)(index * dev.mapped_bytes)) != (ssize_t)dev.frame_bytes)
        fprintf(stderr, "fake_v4l2: %s: could not fill buffer %u: %s\n", dev.device, index, strerror(errno));
    dev.filled++;
    b->state = DONE;
    b->done_at = dev.counter++;
    b->sequence = (uint32_t)k;
    double t = dev.start.tv_sec + dev.start.tv_nsec / 1e9 + at;
    b->timestamp.tv_sec = (time_t)t;
    b->timestamp.tv_usec = (suseconds_t)((t - (double)b->timestamp.tv_sec) * 1e6);
}

/* While streaming: captures every frame due by now (at fps > 0), or one frame if none is waiting and a
 * buffer is queued (at fps 0). */
static void advance(void) {
    if (!dev.streaming)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (dev.fps <= 0) {
        if (!oldest(DONE) && oldest(QUEUED))
            capture(dev.next_frame++, since_start(&now));
        return;
    }
    uint64_t due = (uint64_t)(since_start(&now) * dev.fps) + 1;
    for (; dev.next_frame < due; dev.next_frame++)
        capture(dev.next_frame, dev.next_frame / dev.fps);
}

static void describe(struct buffer *b, struct v4l2_buffer *out) {
    unsigned index = (unsigned)(b - dev.buf);
    memset(out, 0, sizeof *out);
    out->index = index;
    out->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    out->memory = V4L2_MEMORY_MMAP;
    out->length = (uint32_t)dev.frame_bytes;
    out->m.offset = (uint32_t)(index * dev.mapped_bytes);
    out->field = V4L2_FIELD_NONE;
    out->flags = V4L2_BUF_FLAG_MAPPED | V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC |
                 (b->state == QUEUED ? V4L2_BUF_FLAG_QUEUED : 0) | (b->state == DONE ? V4L2_BUF_FLAG_DONE : 0);
    if (b->state == DONE || b->state == DEQUEUED) {
        out->bytesused = (uint32_t)dev.frame_bytes;
        out->sequence = b->sequence;
        out->timestamp = b->timestamp;
    }
}

static int dqbuf(struct v4l2_buffer *arg) {
    if (arg->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
        return fail(EINVAL);
    for (;;) {
        if (!dev.streaming)
            return fail(EINVAL);
        advance();
        struct buffer *b = oldest(DONE);
        if (b) {
            b->state = DEQUEUED;
            dev.delivered++;
            describe(b, arg);
            return 0;
        }
        if (!oldest(QUEUED))
            return fail(EINVAL); /* nothing queued: a driver would wait forever */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double wait = dev.next_frame / dev.fps - since_start(&now);
        struct timespec pause = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        pthread_mutex_unlock(&dev.lock);
        nanosleep(&pause, NULL);
        pthread_mutex_lock(&dev.lock);
    }
}

static void set_format(struct v4l2_format *f) {
    memset(&f->fmt.pix, 0, sizeof f->fmt.pix);
    f->fmt.pix.width = dev.width;
    f->fmt.pix.height = dev.height;
    f->fmt.pix.pixelformat = V4L2_PIX_FMT_YUYV;
    f->fmt.pix.field = V4L2_FIELD_NONE;
    f->fmt.pix.bytesperline = dev.width * 2;
    f->fmt.pix.sizeimage = (uint32_t)dev.frame_bytes;
    f->fmt.pix.colorspace = V4L2_COLORSPACE_SRGB;
}

static void set_timeperframe(struct v4l2_fract *t) {
    t->numerator = 1000;
    t->denominator = (uint32_t)((dev.fps > 0 ? dev.fps : 30.0) * 1000 + 0.5);
}

static int device_ioctl(unsigned request, void *arg) {
    switch (request) {
    case VIDIOC_QUERYCAP: {
        struct v4l2_capability *c = arg;
        memset(c, 0, sizeof *c);
        snprintf((char *)c->driver, sizeof c->driver, "fake_v4l2");
        snprintf((char *)c->card, sizeof c->card, "user-space test camera");
        snprintf((char *)c->bus_info, sizeof c->bus_info, "platform:fake_v4l2");
        c->version = (6u << 16) | (1u << 8);
        c->device_caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
        c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
        return 0;
    }
    case VIDIOC_ENUMINPUT: {
        struct v4l2_input *in = arg;
        if (in->index != 0)
            return fail(EINVAL);
        memset(in, 0, sizeof *in);
        snprintf((char *)in->name, sizeof in->name, "Camera");
        in->type = V4L2_INPUT_TYPE_CAMERA;
        return 0;
    }
    case VIDIOC_G_INPUT:
        *(int *)arg = 0;
        return 0;
    case VIDIOC_S_INPUT:
        return *(int *)arg == 0 ? 0 : fail(EINVAL);
    case VIDIOC_ENUM_FMT: {
        struct v4l2_fmtdesc *d = arg;
        if (d->index != 0 || d->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
            return fail(EINVAL);
        d->flags = 0;
        d->pixelformat = V4L2_PIX_FMT_YUYV;
        snprintf((char *)d->description, sizeof d->description, "YUYV 4:2:2");
        return 0;
    }
    case VIDIOC_G_FMT:
    case VIDIOC_TRY_FMT:
    case VIDIOC_S_FMT: {
        struct v4l2_format *f = arg;
        if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
            return fail(EINVAL);
        if (request == VIDIOC_S_FMT && dev.nbuf)
            return fail(EBUSY);
        set_format(f);
        return 0;
    }
    case VIDIOC_ENUM_FRAMESIZES: {
        struct v4l2_frmsizeenum *s = arg;
        if (s->index != 0 || s->pixel_format != V4L2_PIX_FMT_YUYV)
            return fail(EINVAL);
        s->type = V4L2_FRMSIZE_TYPE_DISCRETE;
        s->discrete.width = dev.width;
        s->discrete.height = dev.height;
        return 0;
    }
    case VIDIOC_ENUM_FRAMEINTERVALS: {
        struct v4l2_frmivalenum *i = arg;
        if (i->index != 0 || i->pixel_format != V4L2_PIX_FMT_YUYV || i->width != dev.width || i->height != dev.height)
            return fail(EINVAL);
        i->type = V4L2_FRMIVAL_TYPE_DISCRETE;
        set_timeperframe(&i->discrete);
        return 0;
    }
    case VIDIOC_G_PARM:
    case VIDIOC_S_PARM: {
        struct v4l2_streamparm *p = arg;
        if (p->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
            return fail(EINVAL);
        memset(&p->parm.capture, 0, sizeof p->parm.capture);
        p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
        set_timeperframe(&p->parm.capture.timeperframe);
        return 0;
    }
    case VIDIOC_REQBUFS: {
        struct v4l2_requestbuffers *r = arg;
        if (r->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || r->memory != V4L2_MEMORY_MMAP)
            return fail(EINVAL);
        if (dev.streaming)
            return fail(EBUSY);
        unsigned count = r->count > MAX_BUFFERS ? MAX_BUFFERS : r->count;
        if (count && count < 2)
            count = 2;
        /* The memfd only grows: the client may still have old buffers mapped. */
        if (count > dev.nbuf_ever) {
            if (ftruncate(dev.fd, (off_t)(count * dev.mapped_bytes)))
                return fail(ENOMEM);
            dev.nbuf_ever = count;
        }
        memset(dev.buf, 0, sizeof dev.buf);
        dev.nbuf = count;
        r->count = count;
        r->capabilities = V4L2_BUF_CAP_SUPPORTS_MMAP;
        return 0;
    }
    case VIDIOC_QUERYBUF: {
        struct v4l2_buffer *b = arg;
        if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || b->index >= dev.nbuf)
            return fail(EINVAL);
        describe(&dev.buf[b->index], b);
        return 0;
    }
    case VIDIOC_QBUF: {
        struct v4l2_buffer *b = arg;
        if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || b->memory != V4L2_MEMORY_MMAP || b->index >= dev.nbuf)
            return fail(EINVAL);
        struct buffer *mine = &dev.buf[b->index];
        if (mine->state == QUEUED || mine->state == DONE)
            return fail(EINVAL);
        advance(); /* frames due before now were captured (or lost) before this buffer was queued */
        mine->state = QUEUED;
        mine->queued_at = dev.counter++;
        describe(mine, b);
        return 0;
    }
    case VIDIOC_DQBUF:
        return dqbuf(arg);
    case VIDIOC_STREAMON:
    case VIDIOC_STREAMOFF: {
        if (*(int *)arg != V4L2_BUF_TYPE_VIDEO_CAPTURE)
            return fail(EINVAL);
        if (request == VIDIOC_STREAMON && !dev.streaming) {
            dev.streaming = 1;
            clock_gettime(CLOCK_MONOTONIC, &dev.start);
            dev.next_frame = 0;
        } else if (request == VIDIOC_STREAMOFF) {
            advance();
            dev.streaming = 0;
            for (unsigned i = 0; i < dev.nbuf; i++)
                dev.buf[i].state = IDLE;
        }
        return 0;
    }
    case VIDIOC_QUERYCTRL:
    case VIDIOC_QUERY_EXT_CTRL:
    case VIDIOC_G_CTRL:
    case VIDIOC_S_CTRL:
    case VIDIOC_G_EXT_CTRLS:
    case VIDIOC_S_EXT_CTRLS:
        return fail(EINVAL); /* a camera without controls */
    default:
        if (dev.debug)
            fprintf(stderr, "fake_v4l2: ioctl 0x%x not supported\n", request);
        return fail(ENOTTY);
    }
}

static void write_report(void) {
    const char *path = getenv("FAKE_V4L2_REPORT");
    if (!path || !*path)
        return;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "fake_v4l2: cannot write %s: %s\n", path, strerror(errno));
        return;
    }
    fprintf(f, "{\"device\": \"%s\", \"fps\": %g, \"size\": [%u, %u], \"captured\": %llu, \"delivered\": %llu, "
               "\"dropped\": %llu}\n", dev.device, dev.fps, dev.width, dev.height,
            (unsigned long long)(dev.filled + dev.dropped), (unsigned long long)dev.delivered,
            (unsigned long long)dev.dropped);
    fclose(f);
}

/* ------------------------------------------------------------------ the C library's entry points */

static mode_t mode_of(int flags, va_list ap) {
    return flags & O_CREAT || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

int open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_of(flags, ap);
    va_end(ap);
    return is_device(path) ? open_device() : real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_of(flags, ap);
    va_end(ap);
    return is_device(path) ? open_device() : real_open64(path, flags, mode);
}

int close(int fd) {
    if (is_open_device(fd)) {
        pthread_mutex_lock(&dev.lock);
        advance();
        write_report();
        free(dev.frames);
        dev.frames = NULL;
        dev.streaming = 0;
        atomic_store(&dev.fd, -1);
        pthread_mutex_unlock(&dev.lock);
    }
    return real_close(fd);
}

int ioctl(int fd, unsigned long request, ...) {
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (!is_open_device(fd))
        return real_ioctl(fd, request, arg);
    pthread_mutex_lock(&dev.lock);
    int result = device_ioctl((unsigned)request, arg);
    int err = errno;
    pthread_mutex_unlock(&dev.lock);
    errno = err;
    return result;
}
