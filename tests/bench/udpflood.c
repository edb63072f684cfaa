/*
 * Small UDP traffic generator for tests/bench (issue 7): 64-byte payloads, sendmmsg() batches, so the
 * per-frame cost of the bridge and its filter dominates, not one syscall per frame (as with iperf3).
 *
 *   udpflood send DST PORT SECONDS         sends as fast as it can to DST (IPv4 or IPv6); prints
 *                                          datagrams attempted and the CPU seconds it used
 *   udpflood sink PORT SECONDS             receives IPv4 and IPv6 and discards (the receiver then sends
 *                                          no ICMP errors)
 *
 * The benchmark counts frames delivered to the receiver's interface, not what this sender attempted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define PAYLOAD 64

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "send") == 0) {
    int v6 = strchr(argv[2], ':') != NULL;
    int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
    struct sockaddr_in6 to6 = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[3]))};
    int ok = v6 ? inet_pton(AF_INET6, argv[2], &to6.sin6_addr) : inet_pton(AF_INET, argv[2], &to.sin_addr);
    if (s < 0 || ok != 1 || (v6 ? connect(s, (void *)&to6, sizeof to6) : connect(s, (void *)&to, sizeof to)) < 0) {
      perror("udpflood send");
      return 1;
    }
    static char buf[PAYLOAD];
    struct iovec iov = {.iov_base = buf, .iov_len = PAYLOAD};
    struct mmsghdr m[BATCH];
    memset(m, 0, sizeof m);
    for (int i = 0; i < BATCH; i++) {
      m[i].msg_hdr.msg_iov = &iov;
      m[i].msg_hdr.msg_iovlen = 1;
    }
    double end = now() + atof(argv[4]);
    unsigned long long sent = 0;
    while (now() < end) {
      int n = sendmmsg(s, m, BATCH, 0);
      if (n > 0) {
        sent += n;
      }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    /* datagrams attempted, and the CPU seconds this sender used (including the softirq work of the
       bridge and its filter that ran in its context) */
    printf("%llu %.3f\n", sent, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec
        + ru.ru_stime.tv_usec / 1e6);
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "sink") == 0) {
    int s = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 me = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[2])), .sin6_addr = IN6ADDR_ANY_INIT};
    int big = 8 << 20, no = 0;
    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof no); /* IPv4 too, as ::ffff:a.b.c.d */
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (s < 0 || bind(s, (void *)&me, sizeof me) < 0) {
      perror("udpflood sink");
      return 1;
    }
    static char bufs[BATCH][2048];
    struct iovec iov[BATCH];
    struct mmsghdr m[BATCH];
    memset(m, 0, sizeof m);
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = sizeof bufs[i];
      m[i].msg_hdr.msg_iov = &iov[i];
      m[i].msg_hdr.msg_iovlen = 1;
    }
    double end = now() + atof(argv[3]);
    while (now() < end) {
      recvmmsg(s, m, BATCH, 0, NULL);
    }
    return 0;
  }
  fprintf(stderr, "usage: udpflood send DST PORT SECONDS | udpflood sink PORT SECONDS\n");
  return 2;
}
