/*
 * ferry-workload: the test workload Ferry migrates in its tests, demo and benchmarks.
 *
 * It holds N MiB of memory in a verifiable pattern, dirties it at a given rate, ticks every
 * 10 ms (recording the largest gap between ticks: a migration's freeze as the workload saw it),
 * optionally appends a line per tick to a file, and serves a line protocol on TCP:
 *   inc | get | stats | verify | reset-gaps | quit
 * The ticks come from a timerfd; a POSIX timer (timer_create) and an interval timer (setitimer)
 * tick alongside and are counted apart, so a test can see that each kind still fires after a
 * checkpoint and restore (`stats`: ticks, posixTicks, itimerTicks).
 * Built static by deploy/setup so it runs in any template.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define MAX_CLIENTS 64
#define LINE_MAX_LEN 256

struct page_header {
  uint64_t index;
  uint64_t generation;
  uint64_t check;
};

struct client {
  int fd;
  char buf[LINE_MAX_LEN];
  size_t len;
};

static uint8_t *memory;
static size_t pages;
static size_t dirty_cursor;
static uint64_t counter;
static uint64_t ticks;
static int64_t max_gap_us, last_gap_us, gaps_over_50ms;
static int64_t started_ms;
static double dirty_mib_per_s;
static long mem_mib;
static int tick_ms = 10;
static FILE *tick_log;
/* bumped by signal handlers: the POSIX timer's (SIGRTMIN) and the interval timer's (SIGALRM) */
static volatile sig_atomic_t posix_ticks, itimer_ticks;
#define SIDE_TIMER_MS 20
static struct client clients[MAX_CLIENTS];

/* As the init of its PID namespace it gets no default signal actions: handle SIGTERM itself. */
static void on_sigterm(int sig) {
  (void)sig;
  _exit(0);
}

static void on_posix_timer(int sig) {
  (void)sig;
  posix_ticks++;
}

static void on_itimer(int sig) {
  (void)sig;
  itimer_ticks++;
}

/* The two side timers: a periodic POSIX timer on CLOCK_MONOTONIC and ITIMER_REAL, both 20 ms. */
static int start_side_timers(void) {
  struct sigaction sa = {0};
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_posix_timer;
  if (sigaction(SIGRTMIN, &sa, NULL) < 0) return -1;
  sa.sa_handler = on_itimer;
  if (sigaction(SIGALRM, &sa, NULL) < 0) return -1;
  struct sigevent sev = {0};
  sev.sigev_notify = SIGEV_SIGNAL;
  sev.sigev_signo = SIGRTMIN;
  timer_t posix_timer;
  if (timer_create(CLOCK_MONOTONIC, &sev, &posix_timer) < 0) return -1;
  struct itimerspec every = {.it_interval = {0, SIDE_TIMER_MS * 1000000L}, .it_value = {0, SIDE_TIMER_MS * 1000000L}};
  if (timer_settime(posix_timer, 0, &every, NULL) < 0) return -1;
  struct itimerval itv = {.it_interval = {0, SIDE_TIMER_MS * 1000}, .it_value = {0, SIDE_TIMER_MS * 1000}};
  return setitimer(ITIMER_REAL, &itv, NULL);
}

static int64_t now_us(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t check_of(uint64_t index, uint64_t generation) {
  uint64_t x = index * 0x9E3779B97F4A7C15ull ^ (generation + 0x632BE59BD9B4E019ull);
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 29);
}

static void write_page(size_t index, uint64_t generation) {
  struct page_header *h = (struct page_header *)(memory + index * PAGE);
  h->index = index;
  h->generation = generation;
  h->check = check_of(index, generation);
  /* touch the rest of the page so it is really dirty, not only its first cache line */
  memset(memory + index * PAGE + sizeof *h, (int)(generation & 0xff), PAGE - sizeof *h);
}

static size_t verify_memory(void) {
  size_t bad = 0;
  for (size_t i = 0; i < pages; i++) {
    struct page_header *h = (struct page_header *)(memory + i * PAGE);
    uint8_t fill = (uint8_t)(h->generation & 0xff);
    if (h->index != i || h->check != check_of(i, h->generation) || memory[i * PAGE + PAGE - 1] != fill) bad++;
  }
  return bad;
}

static void dirty_some(double seconds) {
  if (pages == 0 || dirty_mib_per_s <= 0) return;
  size_t n = (size_t)(dirty_mib_per_s * seconds * 1024 * 1024 / PAGE);
  if (n == 0) n = 1;
  for (size_t k = 0; k < n; k++) {
    struct page_header *h = (struct page_header *)(memory + dirty_cursor * PAGE);
    write_page(dirty_cursor, h->generation + 1);
    dirty_cursor = (dirty_cursor + 1) % pages;
  }
}

static void on_tick(void) {
  static int64_t last = 0;
  int64_t now = now_us(CLOCK_REALTIME);
  if (last != 0) {
    last_gap_us = now - last;
    if (last_gap_us > max_gap_us) max_gap_us = last_gap_us;
    if (last_gap_us > 50000) gaps_over_50ms++;
  }
  last = now;
  ticks++;
  dirty_some(tick_ms / 1000.0);
  if (tick_log) {
    fprintf(tick_log, "%lld %llu\n", (long long)now, (unsigned long long)ticks);
    fflush(tick_log);
  }
}

static void reply(struct client *c, const char *text) {
  size_t len = strlen(text), off = 0;
  while (off < len) {
    ssize_t n = write(c->fd, text + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; /* a slow or gone client loses its reply, never blocks the ticks */
    off += (size_t)n;
  }
}

static int handle_line(struct client *c, char *line) {
  char out[512];
  if (strcmp(line, "inc") == 0) {
    snprintf(out, sizeof out, "%llu\n", (unsigned long long)++counter);
  } else if (strcmp(line, "get") == 0) {
    snprintf(out, sizeof out, "%llu\n", (unsigned long long)counter);
  } else if (strcmp(line, "stats") == 0) {
    snprintf(out, sizeof out,
             "{\"counter\":%llu,\"ticks\":%llu,\"posixTicks\":%lld,\"itimerTicks\":%lld,\"maxGapUs\":%lld,"
             "\"lastGapUs\":%lld,\"gapsOver50ms\":%lld,\"memMiB\":%ld,\"dirtyMiBps\":%g,\"pid\":%d,\"uptimeMs\":%lld}\n",
             (unsigned long long)counter, (unsigned long long)ticks, (long long)posix_ticks, (long long)itimer_ticks,
             (long long)max_gap_us, (long long)last_gap_us,
             (long long)gaps_over_50ms, mem_mib, dirty_mib_per_s, (int)getpid(),
             (long long)(now_us(CLOCK_REALTIME) / 1000 - started_ms));
  } else if (strcmp(line, "verify") == 0) {
    size_t bad = verify_memory();
    snprintf(out, sizeof out, "{\"ok\":%s,\"pages\":%zu,\"bad\":%zu}\n", bad ? "false" : "true", pages, bad);
  } else if (strcmp(line, "reset-gaps") == 0) {
    max_gap_us = 0;
    gaps_over_50ms = 0;
    snprintf(out, sizeof out, "ok\n");
  } else if (strcmp(line, "quit") == 0) {
    return -1;
  } else {
    snprintf(out, sizeof out, "error unknown command\n");
  }
  reply(c, out);
  return 0;
}

static void drop_client(struct client *c) {
  close(c->fd);
  c->fd = -1;
  c->len = 0;
}

static void on_client_readable(struct client *c) {
  ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    drop_client(c);
    return;
  }
  c->len += (size_t)n;
  for (;;) {
    char *nl = memchr(c->buf, '\n', c->len);
    if (!nl) break;
    *nl = 0;
    if (nl > c->buf && nl[-1] == '\r') nl[-1] = 0;
    if (handle_line(c, c->buf) < 0) {
      drop_client(c);
      return;
    }
    size_t used = (size_t)(nl - c->buf) + 1;
    memmove(c->buf, nl + 1, c->len - used);
    c->len -= used;
  }
  if (c->len == sizeof c->buf) drop_client(c); /* a line longer than any command */
}

static void usage(const char *argv0) {
  fprintf(stderr, "usage: %s [--mem MiB] [--dirty MiB/s] [--port N] [--tick-ms N] [--tick-log FILE]\n", argv0);
  exit(2);
}

int main(int argc, char **argv) {
  int port = 7000;
  const char *tick_log_path = NULL;
  static struct option options[] = {{"mem", required_argument, 0, 'm'},     {"dirty", required_argument, 0, 'd'},
                                    {"port", required_argument, 0, 'p'},    {"tick-ms", required_argument, 0, 't'},
                                    {"tick-log", required_argument, 0, 'l'}, {0, 0, 0, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "m:d:p:t:l:", options, NULL)) != -1) {
    char *end = NULL;
    switch (opt) {
      case 'm': mem_mib = strtol(optarg, &end, 10); break;
      case 'd': dirty_mib_per_s = strtod(optarg, &end); break;
      case 'p': port = (int)strtol(optarg, &end, 10); break;
      case 't': tick_ms = (int)strtol(optarg, &end, 10); break;
      case 'l': tick_log_path = optarg; end = optarg + strlen(optarg); break;
      default: usage(argv[0]);
    }
    if (!end || *end) usage(argv[0]);
  }
  if (mem_mib < 0 || dirty_mib_per_s < 0 || port <= 0 || port > 65535 || tick_ms <= 0) usage(argv[0]);

  /* CRIU wants the container's init to lead its own session */
  setsid();
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_sigterm);
  started_ms = now_us(CLOCK_REALTIME) / 1000;

  pages = (size_t)mem_mib * 1024 * 1024 / PAGE;
  if (pages) {
    memory = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
      perror("mmap");
      return 1;
    }
    for (size_t i = 0; i < pages; i++) write_page(i, 0);
  }
  if (tick_log_path) {
    tick_log = fopen(tick_log_path, "a");
    if (!tick_log) {
      perror(tick_log_path);
      return 1;
    }
  }

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = {htonl(INADDR_ANY)}};
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 16) < 0) {
    perror("listen");
    return 1;
  }
  int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  struct itimerspec every = {.it_interval = {0, tick_ms * 1000000L}, .it_value = {0, tick_ms * 1000000L}};
  timerfd_settime(timer, 0, &every, NULL);
  if (start_side_timers() < 0) {
    perror("timers");
    return 1;
  }
  for (int i = 0; i < MAX_CLIENTS; i++) clients[i].fd = -1;
  printf("ferry-workload pid %d: %ld MiB, dirtying %g MiB/s, port %d\n", getpid(), mem_mib, dirty_mib_per_s, port);
  fflush(stdout);

  for (;;) {
    struct pollfd fds[MAX_CLIENTS + 2];
    int map[MAX_CLIENTS + 2];
    int n = 0;
    fds[n] = (struct pollfd){.fd = timer, .events = POLLIN};
    map[n++] = -1;
    fds[n] = (struct pollfd){.fd = listener, .events = POLLIN};
    map[n++] = -2;
    for (int i = 0; i < MAX_CLIENTS; i++) {
      if (clients[i].fd < 0) continue;
      fds[n] = (struct pollfd){.fd = clients[i].fd, .events = POLLIN};
      map[n++] = i;
    }
    if (poll(fds, (nfds_t)n, -1) < 0) {
      if (errno == EINTR) continue;
      perror("poll");
      return 1;
    }
    for (int k = 0; k < n; k++) {
      if (!fds[k].revents) continue;
      if (map[k] == -1) {
        uint64_t expirations;
        if (read(timer, &expirations, sizeof expirations) == sizeof expirations) on_tick();
      } else if (map[k] == -2) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int slot = -1;
        for (int i = 0; i < MAX_CLIENTS; i++)
          if (clients[i].fd < 0) { slot = i; break; }
        if (slot < 0) {
          close(fd);
          continue;
        }
        clients[slot].fd = fd;
        clients[slot].len = 0;
      } else {
        on_client_readable(&clients[map[k]]);
      }
    }
  }
}
