/*
 * trafficgen: a paced traffic generator for Loopy's capture benchmark.
 *
 * Sends a realistic mix of Ethernet frames on the loopback interface (and
 * only there: it refuses any interface that is not ARPHRD_LOOPBACK) through
 * an AF_PACKET/SOCK_RAW socket with sendmmsg(2), paced to a rate for a
 * duration; or writes the same frames to a pcap file instead of sending.
 *
 * The mix is a pool of frames built once from a seed:
 *   - TCP connections: SYN, SYN-ACK, ACK; a request and a response of data
 *     segments of varied sizes both ways with ACKs; FIN/ACK, FIN/ACK, ACK;
 *   - DNS transactions: a query (A) and its response (an A answer, or
 *     NXDOMAIN), valid RFC 1035 wire format, UDP port 53;
 *   - other UDP flows (several datagrams each way);
 *   - ICMP echo request and reply;
 *   - ARP request and reply.
 * Every time the pool has been sent once, the client ports of its TCP and UDP
 * frames move on (checksums updated incrementally, RFC 1624), so every pass
 * carries new connections, as an ephemeral port allocator would.
 *
 * All addresses are in 127.0.0.0/8.  Every frame is addressed to a unicast
 * MAC address that is not lo's (02:TT:TT:TT:00:01 or :02), so the loopback
 * receive path marks it PACKET_OTHERHOST and ip_rcv/arp_rcv drop it at once:
 * packet sockets see every frame, the host's stacks answer none (no RST).
 *
 * With --flows N it sends N TCP SYNs instead, each with its own 5-tuple
 * (source 127.64.0.0 + i mod 65536, source port 1024 + i / 65536, to
 * 127.0.0.80:80), for memory tests.
 *
 * At the end it prints one JSON line on stdout: what it sent, in how long,
 * the achieved rate and the requested one.
 *
 * Build: gcc -O2 -Wall -o trafficgen trafficgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME 1514
#define MAX_BATCH 256
#define PORT_BASE 1024
#define PORT_SPAN 64000

enum kind { K_TCP, K_DNS, K_UDP, K_ICMP, K_ARP, K_COUNT };
static const char *kind_names[K_COUNT] = {"tcp", "dns", "udp", "icmp", "arp"};

struct frame {
    uint8_t *data;
    uint16_t len;
    int16_t port_off;  /* offset of the client port, or -1 */
    int16_t csum_off;  /* offset of the L4 checksum, or -1 */
    uint8_t udp;       /* the checksum is UDP's (0 means none) */
    uint8_t kind;
};

struct pool {
    struct frame *frames;
    size_t n, cap;
    unsigned sessions;
    unsigned long kinds[K_COUNT];
};

/* ---- pseudo-random numbers (xorshift64*) ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static uint32_t between(uint32_t lo, uint32_t hi) /* inclusive */
{
    return lo + rnd() % (hi - lo + 1);
}

/* ---- checksums (RFC 1071, RFC 1624) ---- */

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
    while (len > 1) {
        sum += (uint32_t)p[0] << 8 | p[1];
        p += 2;
        len -= 2;
    }
    if (len)
        sum += (uint32_t)p[0] << 8;
    return sum;
}

static uint16_t fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xffff); }

/* Replace the 16-bit field at off by value and fix the checksum at csum. */
static void patch16(uint8_t *frame, int off, int csum, uint16_t value, int udp)
{
    uint16_t old = get16(frame + off);
    put16(frame + off, value);
    if (csum < 0)
        return;
    uint16_t hc = get16(frame + csum);
    if (udp && hc == 0)
        return;
    uint32_t sum = (uint16_t)~hc;
    sum += (uint16_t)~old;
    sum += value;
    uint16_t fixed = fold(sum);
    if (udp && fixed == 0)
        fixed = 0xffff;
    put16(frame + csum, fixed);
}

/* ---- frame building ---- */

/* Locally administered unicast addresses 02:TT:TT:TT:00:01 and :02, where
 * TTTTTT is --tag (0 by default): a listener can filter one run's frames by
 * `ether host 02:TT:TT:TT:00:01` (every frame has it as source or destination). */
static uint8_t MAC_A[6] = {0x02, 0, 0, 0, 0, 0x01};
static uint8_t MAC_B[6] = {0x02, 0, 0, 0, 0, 0x02};

static void set_tag(uint32_t tag)
{
    for (int i = 0; i < 3; i++)
        MAC_A[1 + i] = MAC_B[1 + i] = (uint8_t)(tag >> (16 - 8 * i));
}

/* Ethernet header; toward_b: from A to B (the client side is A). */
static size_t eth(uint8_t *p, int toward_b, uint16_t type)
{
    memcpy(p, toward_b ? MAC_B : MAC_A, 6);
    memcpy(p + 6, toward_b ? MAC_A : MAC_B, 6);
    put16(p + 12, type);
    return 14;
}

static uint16_t ip_id;

static size_t ipv4(uint8_t *p, uint32_t src, uint32_t dst, uint8_t proto, size_t payload)
{
    p[0] = 0x45;
    p[1] = 0;
    put16(p + 2, (uint16_t)(20 + payload));
    put16(p + 4, ip_id++);
    put16(p + 6, 0x4000); /* DF */
    p[8] = 64;
    p[9] = proto;
    put16(p + 10, 0);
    put32(p + 12, src);
    put32(p + 16, dst);
    put16(p + 10, fold(sum16(p, 20, 0)));
    return 20;
}

static uint32_t pseudo(uint32_t src, uint32_t dst, uint8_t proto, size_t len)
{
    return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + (uint32_t)len;
}

/* Payload octets: pseudo-random, as TLS records and compressed data look. */
static void fill(uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i += 4) {
        uint32_t r = rnd();
        for (size_t j = 0; j < 4 && i + j < len; j++)
            p[i + j] = (uint8_t)(r >> (8 * j));
    }
}

static struct frame *add(struct pool *pool, size_t len, enum kind kind)
{
    if (pool->n == pool->cap) {
        pool->cap = pool->cap ? pool->cap * 2 : 4096;
        pool->frames = realloc(pool->frames, pool->cap * sizeof *pool->frames);
        if (!pool->frames) {
            perror("realloc");
            exit(1);
        }
    }
    struct frame *f = &pool->frames[pool->n++];
    f->data = calloc(1, len < 60 ? 60 : len);
    if (!f->data) {
        perror("calloc");
        exit(1);
    }
    f->len = (uint16_t)(len < 60 ? 60 : len); /* Ethernet minimum, as a NIC pads */
    f->port_off = f->csum_off = -1;
    f->udp = 0;
    f->kind = kind;
    pool->kinds[kind]++;
    return f;
}

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_PSH 0x08
#define TCP_ACK 0x10

struct tcp_side { uint32_t ip; uint16_t port; uint32_t seq; };

/* One TCP segment from `from` to `to`; payload bytes of fill(). */
static void tcp_segment(struct pool *pool, struct tcp_side *from, struct tcp_side *to,
                        int from_client, uint8_t flags, size_t payload, int syn_opts)
{
    size_t hdr = syn_opts ? 24 : 20;
    size_t len = 14 + 20 + hdr + payload;
    struct frame *f = add(pool, len, K_TCP);
    uint8_t *p = f->data;
    size_t o = eth(p, from_client, ETHERTYPE_IP);
    o += ipv4(p + o, from->ip, to->ip, IPPROTO_TCP, hdr + payload);
    uint8_t *t = p + o;
    put16(t, from->port);
    put16(t + 2, to->port);
    put32(t + 4, from->seq);
    put32(t + 8, (flags & TCP_ACK) ? to->seq : 0);
    t[12] = (uint8_t)((hdr / 4) << 4);
    t[13] = flags;
    put16(t + 14, 64240);
    if (syn_opts) {
        t[20] = 2; t[21] = 4; put16(t + 22, 1460); /* MSS */
    }
    fill(t + hdr, payload);
    put16(t + 16, fold(sum16(t, hdr + payload,
                             pseudo(from->ip, to->ip, IPPROTO_TCP, hdr + payload))));
    f->port_off = (int16_t)(o + (from_client ? 0 : 2));
    f->csum_off = (int16_t)(o + 16);
    from->seq += (uint32_t)payload + ((flags & (TCP_SYN | TCP_FIN)) ? 1 : 0);
}

static uint32_t client_ip(void) { return 0x7f010000u | between(1, 0x3ff); } /* 127.1.0.0/22 */

static uint16_t next_port;

static uint16_t client_port(void)
{
    uint16_t port = (uint16_t)(PORT_BASE + next_port);
    next_port = (uint16_t)((next_port + 1) % PORT_SPAN);
    return port;
}

static void tcp_connection(struct pool *pool)
{
    static const uint16_t ports[] = {80, 443, 443, 443, 8080, 5432, 6379, 22};
    struct tcp_side c = {client_ip(), client_port(), rnd()};
    struct tcp_side s = {0x7f020000u | between(1, 16), ports[rnd() % 8], rnd()};
    tcp_segment(pool, &c, &s, 1, TCP_SYN, 0, 1);
    tcp_segment(pool, &s, &c, 0, TCP_SYN | TCP_ACK, 0, 1);
    tcp_segment(pool, &c, &s, 1, TCP_ACK, 0, 0);
    unsigned exchanges = between(1, 3);
    for (unsigned x = 0; x < exchanges; x++) {
        unsigned request = between(1, 2);
        for (unsigned i = 0; i < request; i++)
            tcp_segment(pool, &c, &s, 1, TCP_PSH | TCP_ACK, between(40, 700), 0);
        tcp_segment(pool, &s, &c, 0, TCP_ACK, 0, 0);
        unsigned response = between(1, 12);
        for (unsigned i = 0; i < response; i++) {
            size_t size = i + 1 < response ? 1448 : between(60, 1448);
            if (rnd() % 4 == 0)
                size = between(100, 1448);
            tcp_segment(pool, &s, &c, 0, TCP_PSH | TCP_ACK, size, 0);
            if (i % 2 == 1 || i + 1 == response)
                tcp_segment(pool, &c, &s, 1, TCP_ACK, 0, 0);
        }
    }
    tcp_segment(pool, &c, &s, 1, TCP_FIN | TCP_ACK, 0, 0);
    tcp_segment(pool, &s, &c, 0, TCP_FIN | TCP_ACK, 0, 0);
    tcp_segment(pool, &c, &s, 1, TCP_ACK, 0, 0);
}

/* A UDP datagram; returns a pointer to its payload. */
static uint8_t *udp_datagram(struct pool *pool, enum kind kind, uint32_t src, uint16_t sport,
                             uint32_t dst, uint16_t dport, int from_client,
                             const uint8_t *payload, size_t plen)
{
    size_t len = 14 + 20 + 8 + plen;
    struct frame *f = add(pool, len, kind);
    uint8_t *p = f->data;
    size_t o = eth(p, from_client, ETHERTYPE_IP);
    o += ipv4(p + o, src, dst, IPPROTO_UDP, 8 + plen);
    uint8_t *u = p + o;
    put16(u, sport);
    put16(u + 2, dport);
    put16(u + 4, (uint16_t)(8 + plen));
    if (payload)
        memcpy(u + 8, payload, plen);
    else
        fill(u + 8, plen);
    uint16_t csum = fold(sum16(u, 8 + plen, pseudo(src, dst, IPPROTO_UDP, 8 + plen)));
    put16(u + 6, csum ? csum : 0xffff);
    f->port_off = (int16_t)(o + (from_client ? 0 : 2));
    f->csum_off = (int16_t)(o + 6);
    f->udp = 1;
    return u + 8;
}

/* A DNS name in wire format (RFC 1035 3.1); returns its length. */
static size_t dns_name(uint8_t *p, const char *name)
{
    size_t o = 0;
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t label = dot ? (size_t)(dot - name) : strlen(name);
        p[o++] = (uint8_t)label;
        memcpy(p + o, name, label);
        o += label;
        name += label + (dot ? 1 : 0);
    }
    p[o++] = 0;
    return o;
}

static void dns_transaction(struct pool *pool)
{
    static const char *zones[] = {"example.com", "example.net", "svc.cluster.local",
                                  "api.example.org", "cdn.example.com", "corp.example"};
    static const char *hosts[] = {"www", "api", "db", "cache", "auth", "mail", "static", "ntp"};
    char name[128];
    snprintf(name, sizeof name, "%s%u.%s", hosts[rnd() % 8], between(1, 40), zones[rnd() % 6]);
    int nxdomain = rnd() % 10 == 0;
    uint8_t msg[512];
    uint16_t id = (uint16_t)rnd();
    uint32_t client = client_ip(), server = 0x7f000035u; /* 127.0.0.53 */
    uint16_t cport = client_port();

    /* query: id, RD, one question (A, IN) */
    put16(msg, id);
    put16(msg + 2, 0x0100);
    put16(msg + 4, 1);
    put16(msg + 6, 0);
    put16(msg + 8, 0);
    put16(msg + 10, 0);
    size_t q = 12 + dns_name(msg + 12, name);
    put16(msg + q, 1);
    put16(msg + q + 2, 1);
    q += 4;
    udp_datagram(pool, K_DNS, client, cport, server, 53, 1, msg, q);

    /* response: QR RD RA (+NXDOMAIN), the question, one A answer (0xc00c) */
    put16(msg + 2, nxdomain ? 0x8183 : 0x8180);
    put16(msg + 6, nxdomain ? 0 : 1);
    size_t r = q;
    if (!nxdomain) {
        put16(msg + r, 0xc00c);
        put16(msg + r + 2, 1);
        put16(msg + r + 4, 1);
        put32(msg + r + 6, between(30, 3600));
        put16(msg + r + 10, 4);
        put32(msg + r + 12, 0xc0000200u | between(1, 254)); /* 192.0.2.0/24 */
        r += 16;
    }
    udp_datagram(pool, K_DNS, server, 53, client, cport, 0, msg, r);
}

static void udp_flow(struct pool *pool)
{
    static const uint16_t ports[] = {123, 514, 443, 5060, 8125, 4789};
    uint32_t client = client_ip(), server = 0x7f030000u | between(1, 16);
    uint16_t cport = client_port(), sport = ports[rnd() % 6];
    unsigned n = between(1, 4);
    for (unsigned i = 0; i < n; i++) {
        udp_datagram(pool, K_UDP, client, cport, server, sport, 1, NULL, between(48, 1200));
        if (rnd() % 2)
            udp_datagram(pool, K_UDP, server, sport, client, cport, 0, NULL, between(48, 1200));
    }
}

static void icmp_echo(struct pool *pool)
{
    uint32_t a = client_ip(), b = 0x7f040000u | between(1, 16);
    uint16_t id = (uint16_t)rnd(), seq = (uint16_t)between(1, 1000);
    for (int reply = 0; reply < 2; reply++) {
        size_t len = 14 + 20 + 8 + 56;
        struct frame *f = add(pool, len, K_ICMP);
        uint8_t *p = f->data;
        size_t o = eth(p, !reply, ETHERTYPE_IP);
        o += ipv4(p + o, reply ? b : a, reply ? a : b, IPPROTO_ICMP, 8 + 56);
        uint8_t *m = p + o;
        m[0] = reply ? 0 : 8;
        m[1] = 0;
        put16(m + 4, id);
        put16(m + 6, seq);
        for (int i = 0; i < 56; i++)
            m[8 + i] = (uint8_t)(0x10 + i);
        put16(m + 2, fold(sum16(m, 8 + 56, 0)));
    }
}

static void arp_exchange(struct pool *pool)
{
    uint32_t a = client_ip(), b = 0x7f050000u | between(1, 16);
    for (int reply = 0; reply < 2; reply++) {
        struct frame *f = add(pool, 14 + 28, K_ARP);
        uint8_t *p = f->data;
        size_t o = eth(p, !reply, ETHERTYPE_ARP);
        uint8_t *r = p + o;
        put16(r, 1);           /* Ethernet */
        put16(r + 2, 0x0800);  /* IPv4 */
        r[4] = 6;
        r[5] = 4;
        put16(r + 6, reply ? 2 : 1);
        memcpy(r + 8, reply ? MAC_B : MAC_A, 6);
        put32(r + 14, reply ? b : a);
        if (reply)
            memcpy(r + 18, MAC_A, 6);
        put32(r + 24, reply ? a : b);
    }
}

/* Sessions until the pool holds at least `target` frames.  The weights give
 * about 90 % TCP, 3 % DNS, 4 % other UDP, 1 % ICMP and 0.5 % ARP frames:
 * TCP carries most of a typical server's packets. */
static void build_pool(struct pool *pool, size_t target)
{
    while (pool->n < target) {
        unsigned r = rnd() % 100;
        if (r < 45)
            tcp_connection(pool);
        else if (r < 70)
            dns_transaction(pool);
        else if (r < 88)
            udp_flow(pool);
        else if (r < 96)
            icmp_echo(pool);
        else
            arp_exchange(pool);
        pool->sessions++;
    }
}

/* After each full pass, move every client port on by the ports used per pass. */
static void next_pass(struct pool *pool, unsigned long pass)
{
    (void)pass;
    uint32_t step = next_port ? next_port : PORT_SPAN; /* ports the pool used */
    for (size_t i = 0; i < pool->n; i++) {
        struct frame *f = &pool->frames[i];
        if (f->port_off < 0)
            continue;
        uint16_t port = get16(f->data + f->port_off);
        uint16_t moved = (uint16_t)(PORT_BASE + (port - PORT_BASE + step) % PORT_SPAN);
        patch16(f->data, f->port_off, f->csum_off, moved, f->udp);
    }
}

/* ---- SYN flows ---- */

static void syn_frame(uint8_t *p, unsigned long i)
{
    uint32_t src = 0x7f400000u + (uint32_t)(i % 65536);  /* 127.64.0.0/16 */
    uint16_t sport = (uint16_t)(PORT_BASE + (i / 65536) % PORT_SPAN);
    uint32_t dst = 0x7f000050u;                         /* 127.0.0.80 */
    memset(p, 0, 60);
    size_t o = eth(p, 1, ETHERTYPE_IP);
    o += ipv4(p + o, src, dst, IPPROTO_TCP, 24);
    uint8_t *t = p + o;
    put16(t, sport);
    put16(t + 2, 80);
    put32(t + 4, (uint32_t)(i * 2654435761u));
    t[12] = 6 << 4;
    t[13] = TCP_SYN;
    put16(t + 14, 64240);
    t[20] = 2; t[21] = 4; put16(t + 22, 1460);
    put16(t + 16, fold(sum16(t, 24, pseudo(src, dst, IPPROTO_TCP, 24))));
}

/* ---- output: socket or pcap ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static int open_socket(const char *iface)
{
    char path[256];
    snprintf(path, sizeof path, "/sys/class/net/%s/type", iface);
    FILE *t = fopen(path, "r");
    int type = -1;
    if (!t || fscanf(t, "%d", &type) != 1) {
        fprintf(stderr, "trafficgen: no interface %s\n", iface);
        exit(2);
    }
    fclose(t);
    if (type != 772) {
        fprintf(stderr, "trafficgen: %s is not a loopback interface; refusing to send\n", iface);
        exit(2);
    }
    /* protocol 0: this socket sends only and never receives a frame */
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) {
        perror("trafficgen: socket(AF_PACKET) (needs root or CAP_NET_RAW)");
        exit(2);
    }
    struct sockaddr_ll addr = {0};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = 0;
    addr.sll_ifindex = (int)if_nametoindex(iface);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("trafficgen: bind");
        exit(2);
    }
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    return fd;
}

struct output {
    int fd;            /* packet socket, or -1 */
    FILE *pcap;        /* pcap file, or NULL */
    double pcap_ts, pcap_gap;
    unsigned long errors;
};

/* Send (or write) n frames; returns how many went out. */
static int emit(struct output *out, uint8_t **data, uint16_t *lens, int n)
{
    if (out->pcap) {
        for (int i = 0; i < n; i++) {
            uint32_t rec[4];
            double ts = out->pcap_ts;
            rec[0] = (uint32_t)ts;
            rec[1] = (uint32_t)((ts - (uint32_t)ts) * 1e6);
            rec[2] = rec[3] = lens[i];
            fwrite(rec, sizeof rec, 1, out->pcap);
            fwrite(data[i], lens[i], 1, out->pcap);
            out->pcap_ts += out->pcap_gap;
        }
        return n;
    }
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    memset(msgs, 0, sizeof(msgs[0]) * (size_t)n);
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = data[i];
        iov[i].iov_len = lens[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(out->fd, msgs, (unsigned)n, 0);
    if (sent < 0) {
        out->errors++;
        if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
            perror("trafficgen: sendmmsg");
            exit(1);
        }
        return 0;
    }
    return sent;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: trafficgen [--iface lo] [--rate PPS] [--seconds S] [--count N]\n"
            "                  [--flows N] [--seed N] [--pool N] [--pcap FILE] [--cpu N]\n"
            "                  [--tag N] [--describe]\n"
            "  --rate PPS     frames per second to send (default 10000)\n"
            "  --seconds S    how long to send (default 5)\n"
            "  --count N      stop after N frames instead (with --pcap: frames to write)\n"
            "  --flows N      send N TCP SYNs, each a new 5-tuple, instead of the mix\n"
            "  --seed N       pool seed (default 1)\n"
            "  --pool N       frames in the pool (default 50000)\n"
            "  --pcap FILE    write the frames to a pcap file instead of sending\n"
            "  --cpu N        pin to this CPU\n"
            "  --tag N        24-bit tag in the MAC addresses: 02:TT:TT:TT:00:01, :02\n"
            "  --describe     print the pool's mix and exit\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *iface = "lo", *pcap_path = NULL;
    double rate = 10000, seconds = 5;
    unsigned long count = 0, flows = 0, seed = 1, pool_size = 50000;
    int cpu = -1, describe = 0;
    static const struct option options[] = {
        {"iface", required_argument, 0, 'i'}, {"rate", required_argument, 0, 'r'},
        {"seconds", required_argument, 0, 's'}, {"count", required_argument, 0, 'n'},
        {"flows", required_argument, 0, 'f'}, {"seed", required_argument, 0, 'S'},
        {"pool", required_argument, 0, 'p'}, {"pcap", required_argument, 0, 'w'},
        {"cpu", required_argument, 0, 'c'}, {"describe", no_argument, 0, 'd'},
        {"tag", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "i:r:s:n:f:S:p:w:c:t:dh", options, NULL)) != -1) {
        switch (opt) {
        case 'i': iface = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 's': seconds = atof(optarg); break;
        case 'n': count = strtoul(optarg, NULL, 10); break;
        case 'f': flows = strtoul(optarg, NULL, 10); break;
        case 'S': seed = strtoul(optarg, NULL, 10); break;
        case 'p': pool_size = strtoul(optarg, NULL, 10); break;
        case 'w': pcap_path = optarg; break;
        case 'c': cpu = atoi(optarg); break;
        case 'd': describe = 1; break;
        case 't': set_tag((uint32_t)strtoul(optarg, NULL, 0) & 0xffffff); break;
        default: usage();
        }
    }
    if (rate <= 0 || seconds <= 0 || pool_size == 0)
        usage();
    rng_state ^= seed * 0x100000001B3ULL;
    if (!rng_state)
        rng_state = 1;

    struct pool pool = {0};
    if (!flows)
        build_pool(&pool, pool_size);
    if (describe) {
        printf("{\"frames\": %zu, \"sessions\": %u", pool.n, pool.sessions);
        for (int k = 0; k < K_COUNT; k++)
            printf(", \"%s\": %lu", kind_names[k], pool.kinds[k]);
        printf("}\n");
        return 0;
    }
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    prctl(PR_SET_TIMERSLACK, 1UL);

    struct output out = {-1, NULL, 0, 0, 0};
    if (pcap_path) {
        out.pcap = fopen(pcap_path, "wb");
        if (!out.pcap) {
            perror(pcap_path);
            return 2;
        }
        setvbuf(out.pcap, NULL, _IOFBF, 1 << 20);
        uint32_t hdr[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1}; /* LINKTYPE_ETHERNET */
        fwrite(hdr, sizeof hdr, 1, out.pcap);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        out.pcap_ts = (double)ts.tv_sec;
        out.pcap_gap = 1.0 / rate;
        if (!count)
            count = (unsigned long)(rate * seconds);
    } else {
        out.fd = open_socket(iface);
    }
    if (flows)
        count = flows;

    /* Batches: small at low rates (one frame per wake-up at 1k pps), up to
     * MAX_BATCH when behind. */
    int min_batch = (int)(rate / 20000);
    if (min_batch < 1)
        min_batch = 1;
    if (min_batch > 64)
        min_batch = 64;
    static uint8_t syn_buf[MAX_BATCH][60];
    uint8_t *data[MAX_BATCH];
    uint16_t lens[MAX_BATCH];
    unsigned long sent = 0, pass = 0;
    size_t idx = 0;
    double start = now_s(), stop = start + seconds, t = start;
    for (;;) {
        if (count ? sent >= count : t >= stop)
            break;
        long due;
        if (out.pcap) {
            due = MAX_BATCH;
        } else {
            due = (long)((t - start) * rate) - (long)sent;
            if (due < min_batch) {
                sleep_s((min_batch - due) / rate);
                t = now_s();
                continue;
            }
        }
        if (due > MAX_BATCH)
            due = MAX_BATCH;
        if (count && (unsigned long)due > count - sent)
            due = (long)(count - sent);
        int n = 0;
        if (flows) {
            for (; n < due; n++) {
                syn_frame(syn_buf[n], sent + (unsigned long)n);
                data[n] = syn_buf[n];
                lens[n] = 60;
            }
        } else {
            for (; n < due && idx + (size_t)n < pool.n; n++) {
                data[n] = pool.frames[idx + (size_t)n].data;
                lens[n] = pool.frames[idx + (size_t)n].len;
            }
        }
        int done = emit(&out, data, lens, n);
        sent += (unsigned long)done;
        if (!flows) {
            idx += (size_t)done;
            if (idx == pool.n) {
                idx = 0;
                next_pass(&pool, ++pass);
            }
        }
        t = now_s();
    }
    double elapsed = now_s() - start;
    if (out.pcap && fclose(out.pcap) != 0) {
        perror(pcap_path);
        return 1;
    }
    if (out.pcap)
        elapsed = (double)sent / rate;
    printf("{\"sent\": %lu, \"seconds\": %.6f, \"pps\": %.1f, \"requested_pps\": %.1f, "
           "\"send_errors\": %lu, \"passes\": %lu, \"pool\": %zu, \"mode\": \"%s\"}\n",
           sent, elapsed, elapsed > 0 ? sent / elapsed : 0.0, rate, out.errors, pass, pool.n,
           flows ? "flows" : pcap_path ? "pcap" : "mix");
    return 0;
}
