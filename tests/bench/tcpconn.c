/*
 * TCP connection setup rate for tests/bench (issue 17): how many connections per second one client
 * opens through the bridge and its filter, each a full handshake (SYN, SYN-ACK, ACK) and then a reset
 * (SO_LINGER 0), so no TIME_WAIT state limits the client's ports or the rate.
 *
 *   tcpconn serve PORT SECONDS          accepts IPv4 and IPv6 and closes each connection at once;
 *                                       prints connections accepted and the CPU seconds it used
 *   tcpconn connect DST PORT SECONDS    one connection after the other to DST (IPv4 or IPv6); prints
 *                                       connections made, failed connects and the CPU seconds it used
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "serve") == 0) {
    int s = socket(AF_INET6, SOCK_STREAM, 0), one = 1, no = 0;
    struct sockaddr_in6 me = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[2])), .sin6_addr = IN6ADDR_ANY_INIT};
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof no);
    if (s < 0 || bind(s, (void *)&me, sizeof me) < 0 || listen(s, 4096) < 0) {
      perror("tcpconn serve");
      return 1;
    }
    double end = now() + atof(argv[3]);
    unsigned long long n = 0;
    struct pollfd p = {.fd = s, .events = POLLIN};
    while (now() < end) {
      if (poll(&p, 1, 100) <= 0) {
        continue;
      }
      int c = accept(s, NULL, NULL);
      if (c >= 0) {
        n++;
        close(c);
      }
    }
    printf("%llu %.3f\n", n, cpu());
    return 0;
  }
  if (argc == 5 && strcmp(argv[1], "connect") == 0) {
    int v6 = strchr(argv[2], ':') != NULL;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
    struct sockaddr_in6 to6 = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[3]))};
    if ((v6 ? inet_pton(AF_INET6, argv[2], &to6.sin6_addr) : inet_pton(AF_INET, argv[2], &to.sin_addr)) != 1) {
      fprintf(stderr, "tcpconn connect: bad address %s\n", argv[2]);
      return 1;
    }
    struct linger rst = {.l_onoff = 1, .l_linger = 0};
    struct timeval limit = {.tv_sec = 1, .tv_usec = 0}; /* a dropped SYN fails after 1 s, not after minutes */
    double end = now() + atof(argv[4]);
    unsigned long long n = 0, failed = 0;
    while (now() < end) {
      int c = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
      if (c < 0) {
        perror("tcpconn socket");
        return 1;
      }
      setsockopt(c, SOL_SOCKET, SO_LINGER, &rst, sizeof rst);
      setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
      int r = v6 ? connect(c, (void *)&to6, sizeof to6) : connect(c, (void *)&to, sizeof to);
      if (r == 0) {
        n++;
      } else {
        failed++;
      }
      close(c);
    }
    printf("%llu %llu %.3f\n", n, failed, cpu());
    return 0;
  }
  fprintf(stderr, "usage: tcpconn serve PORT SECONDS | tcpconn connect DST PORT SECONDS\n");
  return 2;
}
