/*
 * ucprobe: the lab guest's probe sender (compiled with gcc -static by GuestImage, runs as a child
 * of the guest's /init).
 *
 * Every uc.interval ms (default 20) it sends one round of probes to the observer, all carrying the
 * same round number in an ASCII payload "UCP1 <kind> <seq> " so the observer can tell them apart
 * and measure gaps:
 *   legit4    UDP from the guest's own IPv4 (uc.ip4)                 kernel socket
 *   legit6    UDP from the guest's own global IPv6 (uc.ip6)          kernel socket
 *   legitnet6 UDP from an address of its routed prefix (uc.net6)     kernel socket
 *   spoof4    UDP from a foreign IPv4 (uc.spoof4)                    raw frame
 *   spoof6    UDP from a foreign IPv6 (uc.spoof6)                    raw frame
 *   spoofarp  ARP reply "uc.arp4 is-at <own MAC>", payload as trailer raw frame
 *   spoofmac  UDP from the own IPv4 but source MAC uc.spoofmac      raw frame
 * Legit probes go through the guest kernel (real ARP/ND, like any guest); spoofed ones are built
 * byte by byte on an AF_PACKET socket with destination MAC uc.obsmac (or the observer's MAC from
 * the ARP cache, or broadcast until that is known).
 *
 * All parameters come from the kernel command line (/proc/cmdline, or the file given as argv[1]):
 *   uc.ip4=A/len uc.ip6=A/len uc.net6=A uc.obs4=A uc.obs6=A uc.obsmac=M uc.spoof4=A uc.spoof6=A
 *   uc.arp4=A uc.spoofmac=M uc.interval=ms uc.port=N uc.kinds=legit4,spoof4,... (default: all)
 *   uc.if=eth0 (given: the legit sockets are also bound to that device)
 *   uc.tcp=8080,8081 uc.tcppeer=A:port uc.tcpinterval=ms (the TCP part below)
 * Missing addresses disable the probes that need them. Errors are counted, never fatal: the
 * sender keeps going whatever the network does (that is what a migrating guest must survive).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXP 64
static char *keys[MAXP], *vals[MAXP];
static int nparams;

static const char *param(const char *k) {
    for (int i = 0; i < nparams; i++)
        if (!strcmp(keys[i], k)) return vals[i];
    return NULL;
}

static void read_params(const char *file) {
    static char buf[4096];
    FILE *f = fopen(file, "r");
    if (!f) { perror(file); exit(2); }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    for (char *tok = strtok(buf, " \t\n"); tok && nparams < MAXP; tok = strtok(NULL, " \t\n")) {
        if (strncmp(tok, "uc.", 3)) continue;
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        keys[nparams] = tok + 3;
        vals[nparams++] = eq + 1;
    }
}

/* "addr" or "addr/len" -> addr only */
static int parse_addr(int af, const char *s, void *out) {
    char tmp[64];
    if (!s) return 0;
    snprintf(tmp, sizeof tmp, "%s", s);
    char *sl = strchr(tmp, '/');
    if (sl) *sl = 0;
    return inet_pton(af, tmp, out) == 1;
}

static int parse_mac(const char *s, uint8_t *mac) {
    unsigned m[6];
    if (!s || sscanf(s, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) return 0;
    for (int i = 0; i < 6; i++) mac[i] = (uint8_t)m[i];
    return 1;
}

static int want(const char *kind) {
    const char *k = param("kinds");
    if (!k) return 1;
    size_t l = strlen(kind);
    for (const char *p = k; (p = strstr(p, kind)); p += l)
        if ((p == k || p[-1] == ',') && (p[l] == 0 || p[l] == ',')) return 1;
    return 0;
}

static uint16_t csum_add(uint32_t sum, const void *data, size_t len) {
    const uint8_t *b = data;
    for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)(b[i] << 8 | b[i + 1]);
    if (len & 1) sum += (uint32_t)(b[len - 1] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

static size_t put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; return 2; }

static uint8_t ownmac[6], obsmac[6], spoofmac[6];
static int have_obsmac_fixed;
static unsigned port = 9999;

static size_t eth(uint8_t *f, const uint8_t *src, uint16_t type) {
    memcpy(f, obsmac, 6);
    memcpy(f + 6, src, 6);
    put16(f + 12, type);
    return 14;
}

/* IPv4 + UDP frame; returns frame length */
static size_t frame4(uint8_t *f, const uint8_t *srcmac, struct in_addr src, struct in_addr dst,
                     const char *payload) {
    size_t pl = strlen(payload), n = eth(f, srcmac, 0x0800);
    uint8_t *ip = f + n, *udp = ip + 20;
    memset(ip, 0, 28);
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(28 + pl));
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, &src, 4);
    memcpy(ip + 16, &dst, 4);
    put16(ip + 10, (uint16_t)~csum_add(0, ip, 20));
    put16(udp, (uint16_t)port);
    put16(udp + 2, (uint16_t)port);
    put16(udp + 4, (uint16_t)(8 + pl));
    memcpy(udp + 8, payload, pl); /* UDP checksum 0 = none (IPv4) */
    return n + 28 + pl;
}

static size_t frame6(uint8_t *f, struct in6_addr src, struct in6_addr dst, const char *payload) {
    size_t pl = strlen(payload), n = eth(f, ownmac, 0x86dd);
    uint8_t *ip = f + n, *udp = ip + 40;
    memset(ip, 0, 48);
    ip[0] = 0x60;
    put16(ip + 4, (uint16_t)(8 + pl));
    ip[6] = 17;
    ip[7] = 64;
    memcpy(ip + 8, &src, 16);
    memcpy(ip + 24, &dst, 16);
    put16(udp, (uint16_t)port);
    put16(udp + 2, (uint16_t)port);
    put16(udp + 4, (uint16_t)(8 + pl));
    memcpy(udp + 8, payload, pl);
    uint8_t pseudo[40];
    memcpy(pseudo, ip + 8, 32);
    uint32_t s = csum_add(0, pseudo, 32);
    s += 8 + pl;
    s += 17;
    uint16_t c = (uint16_t)~csum_add(s, udp, 8 + pl);
    put16(udp + 6, c ? c : 0xffff);
    return n + 48 + pl;
}

static size_t frame_arp(uint8_t *f, struct in_addr claimed, struct in_addr target, const char *payload) {
    size_t n = eth(f, ownmac, 0x0806);
    uint8_t *a = f + n;
    put16(a, 1);
    put16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, 2); /* reply */
    memcpy(a + 8, ownmac, 6);
    memcpy(a + 14, &claimed, 4);
    memcpy(a + 18, obsmac, 6);
    memcpy(a + 24, &target, 4);
    size_t pl = strlen(payload);
    memcpy(a + 28, payload, pl); /* trailer after the ARP body: the observer reads the kind/seq */
    return n + 28 + pl;
}

/* the observer's MAC from the guest's ARP cache, once the kernel has resolved it */
static void learn_obsmac(const char *obs4) {
    if (have_obsmac_fixed || !obs4) return;
    FILE *f = fopen("/proc/net/arp", "r");
    if (!f) return;
    char line[256], ip[64], mac[64];
    unsigned flags;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%63s %*s %x %63s", ip, &flags, mac) == 3 && !strcmp(ip, obs4) && (flags & 2)
            && parse_mac(mac, obsmac) && memcmp(obsmac, "\0\0\0\0\0\0", 6))
            have_obsmac_fixed = 1;
    fclose(f);
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/*
 * TCP (issue 17, live migration with inbound rules), each in a child process of its own:
 *   uc.tcp=8080,8081   a service on each port (IPv4): accept, send "UCT <port>\n", close
 *   uc.tcppeer=A:port  a long-lived connection the guest opens itself: every uc.tcpinterval ms
 *                      (default 50) it sends "UCT1 <seq> <echoed>\n", the peer (lab/tcppeer.py)
 *                      answers "UCE1 <seq>\n", and <echoed> is the highest seq answered so far, so
 *                      the peer sees both directions work. On "UCR1" from the peer, or if the
 *                      connection fails, the guest closes it and connects again.
 */
static void tcp_service(const char *ports) {
    struct pollfd fds[8];
    int port_of[8], n = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", ports);
    for (char *t = strtok(buf, ","); t && n < 8; t = strtok(NULL, ",")) {
        int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(t))};
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (s < 0 || bind(s, (void *)&a, sizeof a) < 0 || listen(s, 64) < 0) { perror("ucprobe: tcp service"); continue; }
        fds[n].fd = s;
        fds[n].events = POLLIN;
        port_of[n++] = atoi(t);
    }
    fprintf(stderr, "ucprobe: tcp service on %s (%d ports)\n", ports, n);
    for (;;) {
        if (poll(fds, (nfds_t)n, -1) < 0) continue;
        for (int i = 0; i < n; i++) {
            if (!(fds[i].revents & POLLIN)) continue;
            int c = accept(fds[i].fd, NULL, NULL);
            if (c < 0) continue;
            char msg[32];
            int l = snprintf(msg, sizeof msg, "UCT %d\n", port_of[i]);
            if (send(c, msg, (size_t)l, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {}
            close(c);
        }
    }
}

static void tcp_peer(const char *peer, int interval) {
    char host[64];
    snprintf(host, sizeof host, "%s", peer);
    char *colon = strrchr(host, ':');
    if (!colon) { fprintf(stderr, "ucprobe: uc.tcppeer=%s is not A:port\n", peer); exit(2); }
    *colon = 0;
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1) { fprintf(stderr, "ucprobe: bad uc.tcppeer %s\n", peer); exit(2); }
    unsigned long seq = 0, echoed = 0, conns = 0;
    for (;;) {
        int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (s < 0 || connect(s, (void *)&dst, sizeof dst) < 0) {
            if (s >= 0) close(s);
            struct timespec w = {0, 200000000};
            nanosleep(&w, NULL);
            continue;
        }
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* the first six retransmissions at one RTO each, not doubling: after an outage the connection
           resumes at most one RTO after the path is back, not whenever the backoff comes round */
        setsockopt(s, IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, &one, sizeof one);
        fprintf(stderr, "ucprobe: tcp peer %s connected (connection %lu)\n", peer, ++conns);
        char rx[512];
        size_t have = 0;
        int64_t next = now_ns();
        for (int up = 1; up;) {
            int64_t wait = (next - now_ns()) / 1000000;
            struct pollfd p = {.fd = s, .events = POLLIN};
            if (poll(&p, 1, wait > 0 ? (int)wait : 0) > 0) {
                ssize_t r = recv(s, rx + have, sizeof rx - 1 - have, 0);
                if (r <= 0) { fprintf(stderr, "ucprobe: tcp peer connection %lu lost (%s)\n", conns, r ? strerror(errno) : "EOF"); break; }
                have += (size_t)r;
                rx[have] = 0;
                char *nl;
                while ((nl = strchr(rx, '\n'))) {
                    *nl = 0;
                    unsigned long e;
                    if (sscanf(rx, "UCE1 %lu", &e) == 1 && e > echoed) echoed = e;
                    if (!strncmp(rx, "UCR1", 4)) up = 0;
                    have -= (size_t)(nl + 1 - rx);
                    memmove(rx, nl + 1, have + 1);
                }
                if (have == sizeof rx - 1) have = 0;
            }
            if (up && now_ns() >= next) {
                char l[64];
                int n = snprintf(l, sizeof l, "UCT1 %lu %lu\n", ++seq, echoed);
                /* never block: while the peer is unreachable the data waits in the socket buffer */
                if (send(s, l, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
                    fprintf(stderr, "ucprobe: tcp peer connection %lu lost (%s)\n", conns, strerror(errno));
                    break;
                }
                next += (int64_t)interval * 1000000;
                if (next < now_ns()) next = now_ns() + (int64_t)interval * 1000000; /* paused: no burst */
            }
        }
        close(s);
    }
}

int main(int argc, char **argv) {
    read_params(argc > 1 ? argv[1] : "/proc/cmdline");
    if (param("tcp") && fork() == 0) tcp_service(param("tcp"));
    if (param("tcppeer") && fork() == 0)
        tcp_peer(param("tcppeer"), param("tcpinterval") ? atoi(param("tcpinterval")) : 50);
    const char *ifn = param("if") ? param("if") : "eth0";
    int interval = param("interval") ? atoi(param("interval")) : 20;
    if (param("port")) port = (unsigned)atoi(param("port"));
    struct in_addr ip4, obs4, spoof4, arp4;
    struct in6_addr ip6, net6, obs6, spoof6;
    int h_ip4 = parse_addr(AF_INET, param("ip4"), &ip4), h_obs4 = parse_addr(AF_INET, param("obs4"), &obs4);
    int h_sp4 = parse_addr(AF_INET, param("spoof4"), &spoof4), h_arp4 = parse_addr(AF_INET, param("arp4"), &arp4);
    int h_ip6 = parse_addr(AF_INET6, param("ip6"), &ip6), h_net6 = parse_addr(AF_INET6, param("net6"), &net6);
    int h_obs6 = parse_addr(AF_INET6, param("obs6"), &obs6), h_sp6 = parse_addr(AF_INET6, param("spoof6"), &spoof6);
    int h_spmac = parse_mac(param("spoofmac"), spoofmac);
    memset(obsmac, 0xff, 6);
    have_obsmac_fixed = parse_mac(param("obsmac"), obsmac);

    int raw = socket(AF_PACKET, SOCK_RAW, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifn);
    if (raw < 0 || ioctl(raw, SIOCGIFHWADDR, &ifr) < 0) { perror("raw socket / SIOCGIFHWADDR"); return 1; }
    memcpy(ownmac, ifr.ifr_hwaddr.sa_data, 6);
    struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(ifn), .sll_halen = 6};

    /* legit sockets, bound to their source address (kernel does ARP/ND and routing) */
    struct { const char *kind; int fd, af; } legit[3] = {{"legit4", -1, AF_INET}, {"legit6", -1, AF_INET6}, {"legitnet6", -1, AF_INET6}};
    struct sockaddr_in dst4 = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = obs4};
    struct sockaddr_in6 dst6 = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = obs6};
    const struct in6_addr *src6[3] = {NULL, &ip6, &net6};
    int have[3] = {h_ip4 && h_obs4, h_ip6 && h_obs6, h_net6 && h_obs6};
    for (int i = 0; i < 3; i++) {
        if (!have[i] || !want(legit[i].kind)) continue;
        legit[i].fd = socket(legit[i].af, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(legit[i].fd, SOL_IP, IP_FREEBIND, &one, sizeof one); /* bind before DAD is done */
        if (param("if")) /* a second NIC on the same subnet: leave through it, not the first route's NIC */
            setsockopt(legit[i].fd, SOL_SOCKET, SO_BINDTODEVICE, ifn, (socklen_t)strlen(ifn) + 1);
        if (i == 0) {
            struct sockaddr_in b = {.sin_family = AF_INET, .sin_addr = ip4};
            bind(legit[i].fd, (void *)&b, sizeof b);
        } else {
            struct sockaddr_in6 b = {.sin6_family = AF_INET6, .sin6_addr = *src6[i]};
            bind(legit[i].fd, (void *)&b, sizeof b);
        }
    }
    int s_sp4 = want("spoof4") && h_sp4 && h_obs4, s_sp6 = want("spoof6") && h_sp6 && h_obs6;
    int s_arp = want("spoofarp") && h_arp4 && h_obs4, s_mac = want("spoofmac") && h_spmac && h_ip4 && h_obs4;

    fprintf(stderr, "ucprobe: if=%s interval=%dms port=%u legit4=%d legit6=%d legitnet6=%d spoof4=%d spoof6=%d spoofarp=%d spoofmac=%d\n",
            ifn, interval, port, legit[0].fd >= 0, legit[1].fd >= 0, legit[2].fd >= 0, s_sp4, s_sp6, s_arp, s_mac);

    uint8_t f[256];
    char pl[64];
    unsigned long errors = 0;
    int64_t next = now_ns();
    for (unsigned long seq = 1;; seq++) {
        learn_obsmac(param("obs4"));
        for (int i = 0; i < 3; i++) {
            if (legit[i].fd < 0) continue;
            snprintf(pl, sizeof pl, "UCP1 %s %lu ", legit[i].kind, seq);
            int r = i == 0 ? (int)sendto(legit[i].fd, pl, strlen(pl), 0, (void *)&dst4, sizeof dst4)
                           : (int)sendto(legit[i].fd, pl, strlen(pl), 0, (void *)&dst6, sizeof dst6);
            if (r < 0) errors++;
        }
        size_t n;
#define RAW(cond, kind, build)                                                                   \
        if (cond) {                                                                              \
            snprintf(pl, sizeof pl, "UCP1 %s %lu ", kind, seq);                                  \
            n = build;                                                                           \
            if (sendto(raw, f, n, 0, (void *)&ll, sizeof ll) < 0) errors++;                      \
        }
        RAW(s_sp4, "spoof4", frame4(f, ownmac, spoof4, obs4, pl))
        RAW(s_sp6, "spoof6", frame6(f, spoof6, obs6, pl))
        RAW(s_arp, "spoofarp", frame_arp(f, arp4, obs4, pl))
        RAW(s_mac, "spoofmac", frame4(f, spoofmac, ip4, obs4, pl))
        if (seq % 500 == 0) fprintf(stderr, "ucprobe: seq %lu errors %lu\n", seq, errors);
        next += (int64_t)interval * 1000000;
        int64_t now = now_ns();
        if (next < now - (int64_t)interval * 1000000) next = now; /* paused (migration): no burst */
        struct timespec ts = {.tv_sec = next / 1000000000, .tv_nsec = next % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
    }
}
